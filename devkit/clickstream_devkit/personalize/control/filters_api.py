"""CreateFilter / DescribeFilter / ListFilters (DeleteFilter is in `deletes_api`).

CreateFilter checks the expression at once -- the grammar and the rules in `filter_expr`,
against the schemas of the datasets the dataset group has -- so a malformed filter is
InvalidInputException with a message naming the position or the field, never a filter
that fails later. The dataset group must be ACTIVE (ResourceInUseException) and may have
at most 10 filters (DG limits; LimitExceededException). A filter then goes CREATE PENDING
→ CREATE IN_PROGRESS → ACTIVE, one step each, and can be used by GetRecommendations,
GetPersonalizedRanking and CreateBatchInferenceJob once ACTIVE. ``ListFilters`` answers
under the key ``Filters`` (capital F), as the model spells it.
"""

from __future__ import annotations

from typing import Any, Final

from clickstream_devkit.personalize.control import control_store as kinds
from clickstream_devkit.personalize.control import schemas_api
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.arns import RequestContext
from clickstream_devkit.personalize.control.control_store import Resource
from clickstream_devkit.personalize.control.datasets_api import group_datasets
from clickstream_devkit.personalize.control.deps import (
    Deps,
    OpHandler,
    check_new,
    drive_simple,
    invalid,
    limit_exceeded,
    new_resource,
    require,
    require_active,
    summary,
)
from clickstream_devkit.personalize.control.filter_expr import (
    INTERACTIONS,
    ITEMS,
    USERS,
    FieldKind,
    FilterExpressionError,
    check,
    parse,
)
from clickstream_devkit.personalize.control.pagination import listing, paginate

MAX_FILTERS_PER_GROUP: Final = 10
_NUMERIC: Final = frozenset({"int", "long", "float", "double"})


class FiltersApi:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def operations(self) -> dict[str, OpHandler]:
        return {
            "CreateFilter": self.create_filter,
            "DescribeFilter": self.describe_filter,
            "ListFilters": self.list_filters,
        }

    def resume(self, resource: Resource) -> None:
        self._deps.jobs.spawn(resource.arn, drive_simple(self._deps, resource.arn))

    def create_filter(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        deps = self._deps
        group = require(deps, body["datasetGroupArn"], kinds.DATASET_GROUP, "dataset group")
        require_active(group, "dataset group")
        arn = ctx.arn(f"filter/{body['name']}")
        check_new(deps, arn)
        expression = body["filterExpression"]
        try:
            check(parse(expression), group_schemas(deps, group.arn))
        except FilterExpressionError as exc:
            raise invalid(str(exc)) from None
        if len(deps.resources.all(kinds.FILTER, group.arn)) >= MAX_FILTERS_PER_GROUP:
            raise limit_exceeded(f"Dataset group {group.arn} already has {MAX_FILTERS_PER_GROUP} filters.")
        doc = {"name": body["name"], "filterArn": arn, "datasetGroupArn": group.arn, "filterExpression": expression}
        deps.resources.add(new_resource(ctx, arn, kinds.FILTER, doc, parent=group.arn))
        deps.jobs.spawn(arn, drive_simple(deps, arn))
        return {"filterArn": arn}

    def describe_filter(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        return {"filter": require(self._deps, body["filterArn"], kinds.FILTER, "filter").describe()}

    def list_filters(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        group = body.get("datasetGroupArn")
        filters = self._deps.resources.all(kinds.FILTER, group)
        page, token = paginate(filters, body, key=lambda r: r.sort_key(), scope=f"filters|{group}")
        return listing("Filters", [summary(r, "name", "filterArn", "datasetGroupArn") for r in page], token)


def group_schemas(deps: Deps, group_arn: str) -> dict[str, dict[str, FieldKind]]:
    """ITEMS / USERS / INTERACTIONS -> {FIELD: kind} for the datasets the group has."""
    out: dict[str, dict[str, FieldKind]] = {}
    names = {"items": ITEMS, "users": USERS, "interactions": INTERACTIONS}
    for kind, dataset in group_datasets(deps, group_arn).items():
        if dataset.status in st.DELETING:
            continue
        schema = schemas_api.load(deps, dataset.doc["schemaArn"])
        out[names[kind]] = {f.name.upper(): _kind(f.avro_type, textual=f.textual) for f in schema.fields}
    return out


def _kind(avro_type: str, *, textual: bool) -> FieldKind:
    if textual:
        return "textual"
    if avro_type == "boolean":
        return "boolean"
    return "numeric" if avro_type in _NUMERIC else "categorical"
