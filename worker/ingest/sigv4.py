"""SigV4 for the one request shape the lean client sends: POST of a JSON body.

botocore's `SigV4Auth` over an `AWSRequest` is correct but spends most of its time outside
the cryptography: `AWSRequest`/`HTTPHeaders` are built on
`email.message.Message` (header sanitising, case-folding lists), the URL is re-parsed
with `urllib.parse` several times, and the signing key is derived again (four HMACs) on
every call although it only changes once a day. This module does the same computation
for a POST with a JSON body and the three signed headers botocore signs for Personalize
Events (content-type, host, x-amz-date, plus x-amz-security-token with session
credentials), caching the derived key per (secret, date, region, service).

Measured: 43 µs per call with AWSRequest + SigV4Auth, 5 µs here. tests/integration/
test_lean_client.py re-derives every signature with botocore's own signer, and
`bench.micro` compares the two byte for byte, with and without a session token.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

ALGORITHM = "AWS4-HMAC-SHA256"


@lru_cache(maxsize=16)
def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")."""
    key = hmac.new(("AWS4" + secret_key).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign_post_json(
    *, access_key: str, secret_key: str, token: str | None, region: str, service: str, host: str, path: str,
    body: bytes, amz_date: str, content_type: str = "application/json",
) -> dict[str, str]:
    """Headers (X-Amz-Date, optional X-Amz-Security-Token, Authorization) for ``POST path`` with `body`.

    `amz_date` is ``YYYYMMDDTHHMMSSZ``; `host` is what the Host header carries (with the
    port when it is not the scheme's default, as botocore does).
    """
    headers = {"content-type": content_type, "host": host, "x-amz-date": amz_date}
    if token:
        headers["x-amz-security-token"] = token
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join((
        "POST", path, "", "".join(f"{n}:{headers[n]}\n" for n in names), signed,
        hashlib.sha256(body).hexdigest(),
    ))  # fmt: skip
    date = amz_date[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(signing_key(secret_key, date, region, service), to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    out = {"X-Amz-Date": amz_date, "Authorization": authorization}
    if token:
        out["X-Amz-Security-Token"] = token
    return out
