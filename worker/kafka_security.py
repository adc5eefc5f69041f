"""Kafka authentication helpers: SASL/OAUTHBEARER tokens for Amazon MSK IAM.

kafka-python calls `token()` whenever it (re)connects; MSK IAM tokens are SigV4-presigned
URLs valid for ~15 minutes, generated from the standard AWS credential chain by the maintained
`aws-msk-iam-sasl-signer-python` package. The token is cached and renewed a minute before it
expires, so reconnect storms do not sign thousands of tokens and never use an expired one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kafka.net.sasl.oauth import AbstractTokenProvider

#: Renew this long before the token expires.
REFRESH_MARGIN_S = 60.0

TokenSource = Callable[[str], tuple[str, int]]


def _msk_signer() -> TokenSource:
    try:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider  # noqa: PLC0415 - optional dependency
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise RuntimeError(
            "kafka.sasl_mechanism=OAUTHBEARER with MSK IAM needs the signer: "
            "pip install 'clickstream-worker[msk]' (aws-msk-iam-sasl-signer-python)"
        ) from exc
    generate: TokenSource = MSKAuthTokenProvider.generate_auth_token
    return generate


class MskIamTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """OAUTHBEARER token provider for MSK IAM, thread-safe (kafka-python calls it from its IO thread)."""

    def __init__(
        self,
        region: str,
        *,
        source: TokenSource | None = None,
        clock: Callable[[], float] = time.time,
        **config: Any,
    ) -> None:
        super().__init__(**config)
        self._region = region
        self._source = source or _msk_signer()
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at - REFRESH_MARGIN_S:
                token, expiry_ms = self._source(self._region)
                self._token, self._expires_at = token, expiry_ms / 1000.0
            return self._token
