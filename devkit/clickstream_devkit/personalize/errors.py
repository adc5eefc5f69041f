"""AWS-format error replies for the local Personalize (a development/test stand-in).

botocore finds a rest-json error code in the ``x-amzn-ErrorType`` header first and
falls back to the body's ``__type``; the json-1.1 parser (control plane) reads only
``__type``. Every reply here carries both, plus an ``x-amzn-RequestId``, so one
format satisfies every parser path (contract §4.2). Statuses follow contract §4.1:
the events routes model InvalidInput 400, ResourceNotFound 404, ResourceInUse 409.
"""

from __future__ import annotations

import json
import uuid
from typing import Final

from aiohttp import web

from clickstream_devkit.personalize.shape_validation import Violation

#: Sent on every reply so nobody mistakes this process for the real service.
SERVER_HEADER: Final = "local-personalize (development stand-in)"

REST_JSON: Final = "application/json"
AMZ_JSON_1_1: Final = "application/x-amz-json-1.1"

INVALID_INPUT: Final = "InvalidInputException"
RESOURCE_NOT_FOUND: Final = "ResourceNotFoundException"
RESOURCE_IN_USE: Final = "ResourceInUseException"
SERIALIZATION: Final = "SerializationException"
THROTTLING: Final = "ThrottlingException"
INTERNAL_FAILURE: Final = "InternalFailure"
UNKNOWN_OPERATION: Final = "UnknownOperationException"
TOO_LARGE: Final = "RequestEntityTooLargeException"

#: HTTP status of each code on the data-plane (rest-json) routes. ThrottlingException
#: is 400 because every botocore retry mode retries 400+ThrottlingException while a
#: bare 429 is not retried in standard mode (contract §4.3).
EVENTS_STATUS: Final[dict[str, int]] = {
    INVALID_INPUT: 400,
    RESOURCE_NOT_FOUND: 404,
    RESOURCE_IN_USE: 409,
    SERIALIZATION: 400,
    THROTTLING: 400,
    INTERNAL_FAILURE: 500,
    UNKNOWN_OPERATION: 404,
    TOO_LARGE: 413,
}


class ApiError(Exception):
    """A request that must be answered with an AWS error.

    `rule` is a short stable reason (``max_length``, ``unknown_tracker`` …) used only
    for the inspection statistics; it never reaches the wire.
    """

    def __init__(self, code: str, message: str, *, status: int | None = None, rule: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status if status is not None else EVENTS_STATUS.get(code, 400)
        self.rule = rule or code


def new_request_id() -> str:
    return str(uuid.uuid4())


def base_headers(request_id: str) -> dict[str, str]:
    return {"x-amzn-RequestId": request_id, "Server": SERVER_HEADER}


def error_response(error: ApiError, request_id: str, *, content_type: str = REST_JSON) -> web.Response:
    """Render `error` exactly as AWS does: status, ErrorType header, ``__type`` body."""
    headers = base_headers(request_id)
    headers["x-amzn-ErrorType"] = error.code
    body = json.dumps({"__type": error.code, "message": error.message})
    return web.Response(status=error.status, text=body, content_type=content_type, headers=headers)


def empty_success(request_id: str) -> web.Response:
    """The Put* success reply: 200 with an empty body (the operations have no output shape)."""
    return web.Response(status=200, body=b"", content_type=REST_JSON, headers=base_headers(request_id))


def json_response(payload: object, request_id: str, *, status: int = 200) -> web.Response:
    """A JSON reply for the inspection API (not an AWS operation)."""
    return web.Response(
        status=status, text=json.dumps(payload), content_type=REST_JSON, headers=base_headers(request_id)
    )


def validation_error(violation: Violation) -> ApiError:
    """Map a model violation to the AWS error a JSON service answers with.

    A value of the wrong JSON type cannot even be deserialized into the shape, which
    AWS JSON services report as SerializationException; every constraint breach
    (required, length, pattern, enum, range) is the modeled InvalidInputException.
    """
    code = SERIALIZATION if violation.rule == "type" else INVALID_INPUT
    return ApiError(code, violation.message, rule=violation.rule)
