"""MSK IAM token provider: real signer output, caching and renewal; security settings."""

from __future__ import annotations

import base64
import urllib.parse

import pytest

from worker.config import ConfigError, KafkaSettings
from worker.kafka_security import REFRESH_MARGIN_S, MskIamTokenProvider


def test_real_signer_produces_a_presigned_kafka_connect_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    token = MskIamTokenProvider("eu-west-1").token()
    url = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert url.startswith("https://kafka.eu-west-1.amazonaws.com/")
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")
    assert "secret" not in url


def test_token_is_cached_and_renewed_before_expiry() -> None:
    now = [1000.0]
    calls: list[str] = []

    def source(region: str) -> tuple[str, int]:
        calls.append(region)
        return f"token-{len(calls)}", int((now[0] + 900) * 1000)

    provider = MskIamTokenProvider("us-east-1", source=source, clock=lambda: now[0])
    assert provider.token() == "token-1"
    now[0] += 900 - REFRESH_MARGIN_S - 1
    assert provider.token() == "token-1", "reused while comfortably valid"
    now[0] += 2
    assert provider.token() == "token-2", "renewed inside the refresh margin"
    assert calls == ["us-east-1", "us-east-1"]


def test_oauthbearer_settings_build_a_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    settings = KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER", msk_iam_region="eu-west-1")
    config = settings.client_config()
    assert isinstance(config["sasl_oauth_token_provider"], MskIamTokenProvider)
    assert config["sasl_mechanism"] == "OAUTHBEARER" and config["security_protocol"] == "SASL_SSL"
    with pytest.raises(ValueError, match="msk_iam_region"):  # refused when the settings load, not at connect
        KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    valid = KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER")
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(ConfigError, match="msk_iam_region"):  # and again should the region vanish meanwhile
        valid.client_config()


def test_scram_and_tls_settings_pass_through() -> None:
    settings = KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                             sasl_plain_username="svc", sasl_plain_password="pw", ssl_cafile="/ca.pem")
    config = settings.client_config()
    assert config["sasl_plain_password"] == "pw" and config["ssl_cafile"] == "/ca.pem"
    assert "pw" not in repr(settings)
