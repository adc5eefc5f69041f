"""CreateSchema / DescribeSchema / ListSchemas.

The schema text is parsed and checked by `worker.schemas.parse_schema`, the very code the
worker derives its record validation from, so a schema the stand-in accepts is one the
worker can validate against, and a rejected one names the offending field. Actions and
ActionInteractions schemas, which `worker.schemas` does not know yet, are checked by
`action_schemas` with the same conventions. Schemas have no status on the real API; they
exist as soon as CreateSchema answers.
"""

from __future__ import annotations

from typing import Any

from clickstream_devkit.personalize.control import control_store as kinds
from clickstream_devkit.personalize.control.action_schemas import is_action_schema, parse_action_schema
from clickstream_devkit.personalize.control.arns import RequestContext, schema_arn
from clickstream_devkit.personalize.control.deps import Deps, OpHandler, check_new, invalid, new_resource, require
from clickstream_devkit.personalize.control.pagination import listing, paginate
from worker.schemas import DatasetSchema, SchemaError, parse_schema


class SchemasApi:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def operations(self) -> dict[str, OpHandler]:
        return {
            "CreateSchema": self.create_schema,
            "DescribeSchema": self.describe_schema,
            "ListSchemas": self.list_schemas,
        }

    def create_schema(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        arn = schema_arn(ctx, body["name"])
        check_new(self._deps, arn)
        try:
            dataset_type = schema_type(body["schema"])
        except SchemaError as exc:
            raise invalid(f"Invalid schema: {exc}") from None
        doc: dict[str, Any] = {"name": body["name"], "schemaArn": arn, "schema": body["schema"]}
        if body.get("domain"):
            doc["domain"] = body["domain"]
        self._deps.resources.add(
            new_resource(ctx, arn, kinds.SCHEMA, doc, status=None, meta={"datasetType": dataset_type})
        )
        return {"schemaArn": arn}

    def describe_schema(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        return {"schema": require(self._deps, body["schemaArn"], kinds.SCHEMA, "schema").describe()}

    def list_schemas(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        page, token = paginate(
            self._deps.resources.all(kinds.SCHEMA), body, key=lambda r: r.sort_key(), scope="schemas"
        )
        keys = ("name", "schemaArn", "creationDateTime", "lastUpdatedDateTime", "domain")
        return listing("schemas", [{k: v for k, v in r.describe().items() if k in keys} for r in page], token)


def schema_type(text: str) -> str:
    """The lower-case dataset type a schema text is for, once it passed every CreateSchema check."""
    if is_action_schema(text):
        return parse_action_schema(text).dataset_type
    return parse_schema(text).dataset_type.value


def dataset_type_of(deps: Deps, arn: str) -> str:
    """The lower-case dataset type of the schema at `arn` (ResourceNotFoundException when there is none)."""
    return str(require(deps, arn, kinds.SCHEMA, "schema").meta["datasetType"])


def load(deps: Deps, arn: str) -> DatasetSchema:
    """The parsed schema behind a schema ARN (it was checked at CreateSchema)."""
    resource = require(deps, arn, kinds.SCHEMA, "schema")
    return parse_schema(resource.doc["schema"])
