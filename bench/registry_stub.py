"""A minimal Confluent-compatible schema registry on loopback, for the benchmark and the tests.

No registry server can be installed here, so this serves only the documented REST endpoints
the worker and confluent-kafka's serializers use, in memory:

  POST /subjects/{subject}/versions   register {"schema", "schemaType"?, "references"?} -> {"id"}
  GET  /schemas/ids/{id}              {"schema", "schemaType" (absent for AVRO), "references"?}
  GET  /subjects/{subject}/versions/{version|latest}

Unknown IDs/subjects answer 404 with the registry's error body (error_code 40403 / 40401).
`down = True` makes every request answer 503 (an outage); optional basic auth and TLS.
It is a test stand-in, not a registry: no compatibility checks, no persistence, no deletes.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class LoopbackRegistry:
    def __init__(self, *, username: str | None = None, password: str | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.schemas: dict[int, dict[str, Any]] = {}
        self.subjects: dict[str, list[int]] = {}
        self.down = False
        self.requests: list[str] = []
        self._auth = (None if username is None else
                      "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode())
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-registry", daemon=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LoopbackRegistry:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def register(self, subject: str, schema: str, schema_type: str = "AVRO",
                 references: list[dict[str, Any]] | None = None) -> int:
        with self._lock:
            for schema_id, doc in self.schemas.items():
                if doc["schema"] == schema and doc.get("schemaType", "AVRO") == schema_type:
                    self.subjects.setdefault(subject, []).append(schema_id)
                    return schema_id
            schema_id = len(self.schemas) + 1
            doc: dict[str, Any] = {"schema": schema}
            if schema_type != "AVRO":
                doc["schemaType"] = schema_type
            if references:
                doc["references"] = references
            self.schemas[schema_id] = doc
            self.subjects.setdefault(subject, []).append(schema_id)
            return schema_id

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:  # quiet: tests must not print
                return

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _refused(self) -> bool:
                registry.requests.append(f"{self.command} {self.path}")
                if registry.down:
                    self._send(503, {"error_code": 50301, "message": "Service Unavailable"})
                    return True
                if registry._auth is not None and self.headers.get("Authorization") != registry._auth:
                    self._send(401, {"error_code": 401, "message": "Unauthorized"})
                    return True
                return False

            def do_GET(self) -> None:
                if self._refused():
                    return
                parts = self.path.split("?")[0].strip("/").split("/")
                if parts[:2] == ["schemas", "ids"] and len(parts) == 3 and parts[2].isdigit():
                    doc = registry.schemas.get(int(parts[2]))
                    if doc is None:
                        self._send(404, {"error_code": 40403, "message": f"Schema {parts[2]} not found"})
                    else:
                        self._send(200, doc)
                    return
                if parts[0] == "subjects" and len(parts) == 4 and parts[2] == "versions":
                    versions = registry.subjects.get(parts[1], [])
                    index = len(versions) if parts[3] == "latest" else int(parts[3]) if parts[3].isdigit() else 0
                    if not 1 <= index <= len(versions):
                        self._send(404, {"error_code": 40401, "message": f"Subject '{parts[1]}' not found."})
                        return
                    schema_id = versions[index - 1]
                    self._send(200, {"subject": parts[1], "version": index, "id": schema_id,
                                     **registry.schemas[schema_id]})
                    return
                self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

            def do_POST(self) -> None:
                if self._refused():
                    return
                parts = self.path.split("?")[0].strip("/").split("/")
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if parts[0] == "subjects" and len(parts) == 3 and parts[2] == "versions":
                    schema_id = registry.register(parts[1], body["schema"], body.get("schemaType") or "AVRO",
                                                  body.get("references"))
                    self._send(200, {"id": schema_id})
                    return
                self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

        return Handler
