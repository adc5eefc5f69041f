"""Personalize's request quotas, stated once per dataset group for the whole fleet.

Each replica takes its share of a group's quota (its fraction of the partitions feeding the
group, recomputed on every rebalance) and adapts from there; see
`worker.ingest.quota_control`. The quota written here is the group's whole quota, the
number in the AWS Service Quotas console, whatever the number of replicas.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from worker.config.base import _Section

#: The quota fields and the Personalize operation each one paces.
API_OF_FIELD = {
    "put_events_rps": "PutEvents",
    "put_items_rps": "PutItems",
    "put_users_rps": "PutUsers",
    "put_actions_rps": "PutActions",
    "put_action_interactions_rps": "PutActionInteractions",
}
_UNPUBLISHED = "no published quota; treated like PutItems until measured"


class GroupQuota(_Section):
    """One dataset group's quotas; an absent value is the `quotas.default` one."""

    put_events_rps: float | None = Field(None, gt=0, description="PutEvents requests/s of the group.")
    put_items_rps: float | None = Field(None, gt=0, description="PutItems requests/s of the group.")
    put_users_rps: float | None = Field(None, gt=0, description="PutUsers requests/s of the group.")
    put_actions_rps: float | None = Field(None, gt=0, description="PutActions requests/s of the group.")
    put_action_interactions_rps: float | None = Field(
        None, gt=0, description="PutActionInteractions requests/s of the group.")

    def rates(self) -> dict[str, float]:
        """API -> quota for the values set here."""
        return {api: value for name, api in API_OF_FIELD.items() if (value := getattr(self, name)) is not None}


class DefaultQuota(_Section):
    """The quotas of every dataset group not listed under `quotas.groups` (AWS's defaults)."""

    put_events_rps: float = Field(1000.0, gt=0, description="PutEvents requests/s per dataset group.")
    put_items_rps: float = Field(10.0, gt=0, description="PutItems requests/s per dataset group.")
    put_users_rps: float = Field(10.0, gt=0, description="PutUsers requests/s per dataset group.")
    put_actions_rps: float = Field(10.0, gt=0, description=f"PutActions requests/s per dataset group ({_UNPUBLISHED}).")
    put_action_interactions_rps: float = Field(
        10.0, gt=0, description=f"PutActionInteractions requests/s per dataset group ({_UNPUBLISHED}).")

    def rates(self) -> dict[str, float]:
        return {api: float(getattr(self, name)) for name, api in API_OF_FIELD.items()}


class QuotaSettings(_Section):
    """Each dataset group's Personalize quota, for the whole fleet, and how replicas share it."""

    default: DefaultQuota = Field(
        default_factory=DefaultQuota,
        description="Quotas of every dataset group not named under groups (AWS's defaults: PutEvents "
        "1000/s, PutItems and PutUsers 10/s; PutActions and PutActionInteractions have no published quota and "
        "are treated like PutItems until measured).",
    )
    groups: dict[str, GroupQuota] = Field(
        default_factory=dict,
        description="Raised quotas by dataset group, e.g. {my-group: {put_events_rps: 2500}}. The name is a "
        "topic's dataset group: topics[].dataset_group, else the group in its dataset ARN, else its tracking ID.",
    )
    sharing: Literal["partitions", "static"] = Field(
        "partitions",
        description="partitions: each replica starts from quota x (its partitions feeding the group / all of "
        "them), recomputed on every rebalance, then probes up while it has a backlog and backs off on "
        "throttling. static: the quota is this replica's own rate (the old quota / replicas by hand).",
    )
