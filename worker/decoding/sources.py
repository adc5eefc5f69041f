"""Where schemas come from (I/O edge): a Confluent-compatible registry's REST API, or AWS Glue.

Both clients are blocking and run in a worker thread: a schema is fetched once per ID for
the life of the process, so a thread per fetch costs nothing and keeps these clients free
of session lifecycles. Each answer is one of: a reader (`readers.build_reader`), the schema
does not exist (`SchemaNotFoundError`: records naming it are dead-lettered), or the registry
cannot answer now (`RegistryUnavailableError`: a transient fault; the topic waits).

A Confluent 404 counts as "not found" only with the registry's own error body (error_code
404xx): a wrong URL or a proxy also answers 404, and must not dead-letter the stream.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Protocol

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from worker.config.topics import ConfluentRegistrySettings, GlueRegistrySettings
from worker.decoding.outcomes import SchemaRef
from worker.decoding.readers import Reader, RegistrySchema, build_reader

#: Longest schema answer read (a registry response is a few KiB).
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_MAX_REFERENCE_DEPTH = 16


class SchemaNotFoundError(Exception):
    """The registry says this schema does not exist."""


class RegistryUnavailableError(Exception):
    """The registry cannot answer now (unreachable, 5xx, refused credentials, nonsense)."""


class SchemaSource(Protocol):
    def describe(self) -> str: ...

    async def fetch(self, ref: SchemaRef) -> Reader:
        """The reader for `ref`; raises SchemaNotFoundError, RegistryUnavailableError or SchemaParseError."""
        ...


class ConfluentRegistry:
    """GET /schemas/ids/{id} (or /schemas/guids/{guid}), and /subjects/{s}/versions/{v} for references."""

    def __init__(self, settings: ConfluentRegistrySettings) -> None:
        self._base = settings.url.rstrip("/")
        self._timeout = settings.timeout_s
        self._headers = {"Accept": "application/vnd.schemaregistry.v1+json, application/json"}
        password = (settings.password.get_secret_value() if settings.password is not None
                    else os.environ.get(settings.password_env, "") if settings.password_env else None)
        if settings.username:
            token = base64.b64encode(f"{settings.username}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._ssl: ssl.SSLContext | None = None
        if self._base.startswith("https:"):
            context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
            context.check_hostname = settings.check_hostname
            if settings.cert_file and settings.key_file:
                context.load_cert_chain(str(settings.cert_file), str(settings.key_file))
            self._ssl = context

    def describe(self) -> str:
        return f"schema registry {self._base}"

    async def fetch(self, ref: SchemaRef) -> Reader:
        return await asyncio.get_running_loop().run_in_executor(None, self.fetch_blocking, ref)

    def fetch_blocking(self, ref: SchemaRef) -> Reader:
        path = f"/schemas/ids/{int(ref.key)}" if ref.kind == "id" else f"/schemas/guids/{urllib.parse.quote(ref.key)}"
        doc = self._get(path, missing=f"the registry has no {ref.describe()}")
        references = tuple(self._references(doc.get("references") or [], 0))
        schema = RegistrySchema(str(doc.get("schemaType") or "AVRO"), str(doc["schema"]), references)
        return build_reader(schema, "confluent")

    def _references(self, refs: list[Any], depth: int) -> list[tuple[str, str]]:
        """Referenced schemas, dependencies first (depth-first, as each must be known before its user)."""
        if depth > _MAX_REFERENCE_DEPTH:
            raise RegistryUnavailableError("schema references nest deeper than 16 levels")
        out: list[tuple[str, str]] = []
        for ref in refs:
            subject = urllib.parse.quote(str(ref["subject"]), safe="")
            doc = self._get(f"/subjects/{subject}/versions/{int(ref['version'])}",
                            missing=f"referenced subject {ref['subject']} version {ref['version']} does not exist")
            out.extend(self._references(doc.get("references") or [], depth + 1))
            out.append((str(ref["name"]), str(doc["schema"])))
        return out

    def _get(self, path: str, *, missing: str) -> dict[str, Any]:
        request = urllib.request.Request(self._base + path, headers=self._headers)  # noqa: S310 - http(s) only
        try:
            with urllib.request.urlopen(request, timeout=self._timeout, context=self._ssl) as response:  # noqa: S310
                body = response.read(MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as exc:
            error_code = _error_code(exc)
            if exc.code == 404 and error_code is not None and 40400 <= error_code < 40500:
                raise SchemaNotFoundError(f"{missing} (HTTP 404, error_code {error_code})") from None
            raise RegistryUnavailableError(f"{self.describe()} answered HTTP {exc.code} for {path}"
                                      + (f" (error_code {error_code})" if error_code else "")) from None
        except (OSError, ValueError) as exc:  # URLError, timeouts, TLS failures are OSErrors
            raise RegistryUnavailableError(f"{self.describe()} unreachable: {type(exc).__name__}: {exc}") from None
        try:
            doc = json.loads(body)
        except ValueError:
            raise RegistryUnavailableError(f"{self.describe()} answered {path} with non-JSON") from None
        if type(doc) is not dict or "schema" not in doc:
            raise RegistryUnavailableError(f"{self.describe()} answered {path} without a `schema` member")
        return doc


def _error_code(exc: urllib.error.HTTPError) -> int | None:
    try:
        doc = json.loads(exc.read(64 * 1024) or b"{}")
    except (ValueError, OSError):
        return None
    code = doc.get("error_code") if isinstance(doc, dict) else None
    return code if isinstance(code, int) else None


class GlueRegistry:
    """glue:GetSchemaVersion by the schema version UUID a record names."""

    def __init__(self, settings: GlueRegistrySettings) -> None:
        self._settings = settings
        self._client: Any = None

    def describe(self) -> str:
        return "AWS Glue Schema Registry" + (f" ({self._settings.endpoint_url})" if self._settings.endpoint_url else "")

    def _glue(self) -> Any:
        if self._client is None:
            self._client = boto3.client(
                "glue", region_name=self._settings.region, endpoint_url=self._settings.endpoint_url,
                config=BotoConfig(connect_timeout=self._settings.timeout_s, read_timeout=self._settings.timeout_s,
                                  retries={"total_max_attempts": 2, "mode": "standard"}),
            )
        return self._client

    async def fetch(self, ref: SchemaRef) -> Reader:
        return await asyncio.get_running_loop().run_in_executor(None, self.fetch_blocking, ref)

    def fetch_blocking(self, ref: SchemaRef) -> Reader:
        try:
            answer = self._glue().get_schema_version(SchemaVersionId=ref.key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "EntityNotFoundException":
                raise SchemaNotFoundError(f"Glue has no {ref.describe()}") from None
            raise RegistryUnavailableError(f"{self.describe()}: {code or 'error'}: "
                                      f"{exc.response.get('Error', {}).get('Message', '')}") from None
        except (BotoCoreError, OSError) as exc:
            raise RegistryUnavailableError(f"{self.describe()} unreachable: {type(exc).__name__}: {exc}") from None
        schema = RegistrySchema(str(answer.get("DataFormat") or "AVRO"), str(answer["SchemaDefinition"]))
        return build_reader(schema, "glue")
