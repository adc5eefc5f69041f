"""Filters at recommendation time: which candidates a request's ``filterArn`` removes.

Shared by the runtime (GetRecommendations, GetPersonalizedRanking) and batch inference.
`prepare` checks the filter can serve the request and binds its ``filterValues``; `blocked`
gathers what the expression reads -- the Items records (`catalog`), the user's recent
interactions per event type (`history`: every stored event and imported interaction of
the user, so an event counts from the moment it is accepted), the current item and the
current user's Users record -- and evaluates it (`filter_eval`). Parsed expressions are
cached per filter ARN until the filter is deleted.

Errors (`FilterError`, the caller renders them): an unknown filter is "not found"; one that
is not ACTIVE, belongs to another dataset group, uses ``CurrentItem`` with a recipe that is
not RELATED_ITEMS, or gets unusable ``filterValues`` is invalid input. The service does
not document the code for a filter that is not ACTIVE yet; InvalidInputException is the
runtime's only other modeled code, and the guide tells clients to check DescribeFilter
first.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from clickstream_devkit.personalize.control import control_store as kinds
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.catalog import Catalog
from clickstream_devkit.personalize.control.control_store import Resource
from clickstream_devkit.personalize.control.datasets_api import group_datasets
from clickstream_devkit.personalize.control.deps import Deps
from clickstream_devkit.personalize.control.filter_eval import (
    BoundFilter,
    FilterValuesError,
    Subject,
    bind,
    recent_interactions,
)
from clickstream_devkit.personalize.control.filter_expr import (
    INTERACTIONS,
    ITEMS,
    USERS,
    FilterExpression,
    parse,
)
from clickstream_devkit.personalize.control.history import HistoryIndex
from clickstream_devkit.personalize.control.trackers_api import group_tracking_ids


class FilterError(Exception):
    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.not_found = not_found


@dataclass(frozen=True)
class PreparedFilter:
    arn: str
    group: str
    expression: FilterExpression
    bound: BoundFilter


class Filtering:
    def __init__(self, deps: Deps, history: HistoryIndex, catalog: Catalog) -> None:
        self._deps = deps
        self._history = history
        self._catalog = catalog
        self._parsed: dict[str, FilterExpression] = {}
        deps.on_deleted.append(self._forget)

    def prepare(
        self, filter_arn: str, filter_values: Mapping[str, str] | None, group_arn: str, *, related_items: bool
    ) -> PreparedFilter:
        resource = self._deps.resources.get(filter_arn, kinds.FILTER)
        if resource is None:
            raise FilterError(f"Could not find filter with ARN {filter_arn}.", not_found=True)
        if resource.status != st.ACTIVE:
            raise FilterError(f"Filter {filter_arn} is not ACTIVE (status {resource.status}).")
        if resource.parent != group_arn:
            raise FilterError(
                f"Filter {filter_arn} belongs to dataset group {resource.parent}, not to {group_arn}, whose solution "
                "serves this request."
            )
        expression = self._expression(resource)
        if expression.uses_current_item and not related_items:
            raise FilterError(
                f"Filter {filter_arn} uses CurrentItem, which applies only to related-items recommendations "
                "(a RELATED_ITEMS recipe such as SIMS)."
            )
        try:
            bound = bind(expression, filter_values)
        except FilterValuesError as exc:
            raise FilterError(str(exc)) from None
        return PreparedFilter(filter_arn, group_arn, expression, bound)

    def blocked(
        self, prepared: PreparedFilter, candidates: Collection[str], *, user_id: str | None, item_id: str | None
    ) -> set[str]:
        """The candidates the filter removes for this user (and current item)."""
        fields = {dataset for dataset, _ in prepared.expression.fields}
        datasets = group_datasets(self._deps, prepared.group)
        items = self._records(datasets.get("items")) if ITEMS in fields else {}
        users = self._records(datasets.get("users")) if USERS in fields else {}
        interactions: dict[str, frozenset[str]] = {}
        if INTERACTIONS in fields and user_id:
            source = datasets.get("interactions")
            rows = self._history.history(
                user_id, group_tracking_ids(self._deps, prepared.group), None if source is None else source.arn
            )
            interactions = recent_interactions((r.event_type, r.item_id) for r in rows)
        subject = Subject(
            items=items,
            interactions=interactions,
            current_item=items.get(item_id) if item_id else None,
            current_user=users.get(user_id) if user_id else None,
        )
        return prepared.bound.blocked(candidates, subject)

    def _forget(self, resource: Resource) -> None:
        self._parsed.pop(resource.arn, None)

    def _expression(self, resource: Resource) -> FilterExpression:
        parsed = self._parsed.get(resource.arn)
        if parsed is None:
            parsed = self._parsed[resource.arn] = parse(resource.doc["filterExpression"])
        return parsed

    def _records(self, dataset: Resource | None) -> Mapping[str, Mapping[str, str]]:
        if dataset is None or dataset.status != st.ACTIVE:
            return {}
        return self._catalog.records(dataset)
