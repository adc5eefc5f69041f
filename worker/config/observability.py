"""Logs, metrics and probes."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    model_validator,
)

from worker.config.base import _Section


class ObservabilitySettings(_Section):
    """Logs, metrics, probes."""

    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    redact_user_ids: bool = Field(True, description="Hash user/session IDs in logs (personal data).")
    redaction_salt: SecretStr = Field(SecretStr(""), description="Salt for the redaction hash.")
    require_redaction_salt: bool = Field(
        False,
        description="Refuse to start while redaction is on and the salt is empty: unsalted hashes of guessable "
        "user IDs can be reversed with a dictionary. The Kubernetes manifests turn it on.",
    )
    http_host: str = "0.0.0.0"
    http_port: int = Field(9108, ge=0, le=65535, description="Serves /metrics, /healthz, /readyz.")

    @model_validator(mode="after")
    def _salt_when_required(self) -> ObservabilitySettings:
        if self.require_redaction_salt and self.redact_user_ids and not self.redaction_salt.get_secret_value():
            raise ValueError(
                "observability.redaction_salt is empty while redact_user_ids and require_redaction_salt are on: "
                "set WORKER_OBSERVABILITY__REDACTION_SALT (in Kubernetes: the redaction-salt key of the "
                "clickstream-worker-secrets Secret) to a long random string"
            )
        return self
