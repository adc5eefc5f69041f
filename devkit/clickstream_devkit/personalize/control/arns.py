"""ARN formats of the local Personalize's resources and the region of a request.

Formats follow the examples in the developer guide (contract §8.1):
``arn:aws:personalize:<region>:<account>:<type>/<name>``, with
``dataset/<DatasetGroupName>/<TYPE>``, ``solution/<name>/<version-id>`` and recipe ARNs
without region or account (``arn:aws:personalize:::recipe/<name>``). The guide shows no
solution-version ID or tracker ID format; both are 8 lower-case hex digits here, which is
what ARNs seen in the wild look like.

The region comes from the SigV4 credential scope of the request when there is one
(``Credential=<key>/<date>/<region>/personalize/aws4_request``), so a client configured
for ``eu-west-1`` gets ``eu-west-1`` ARNs; the account is fixed per server.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Final

PARTITION: Final = "aws"
DEFAULT_ACCOUNT: Final = "123456789012"
DEFAULT_REGION: Final = "us-east-1"

#: CreateDataset's datasetType values (case-insensitive) -> the ARN's type segment.
DATASET_TYPE_SEGMENTS: Final = {
    "interactions": "INTERACTIONS",
    "items": "ITEMS",
    "users": "USERS",
    "actions": "ACTIONS",
    "action_interactions": "ACTION_INTERACTIONS",
}
#: The same, as DescribeDataset reports them (the model documents "Interactions", "Items", "Users",
#: "Actions", "Action_Interactions").
DATASET_TYPE_NAMES: Final = {
    "interactions": "Interactions",
    "items": "Items",
    "users": "Users",
    "actions": "Actions",
    "action_interactions": "Action_Interactions",
}

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/")


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Where a control-plane request lands: its region, the server's account, its time."""

    region: str
    account: str
    now: float

    def arn(self, resource: str) -> str:
        return f"arn:{PARTITION}:personalize:{self.region}:{self.account}:{resource}"


def region_from_authorization(header: str | None, default: str = DEFAULT_REGION) -> str:
    """The region of a SigV4 ``Authorization`` header's credential scope, else `default`."""
    if header:
        match = _CREDENTIAL_SCOPE.search(header)
        if match:
            return match.group(1)
    return default


def new_short_id() -> str:
    """8 lower-case hex digits: solution-version and event-tracker IDs."""
    return secrets.token_hex(4)


def schema_arn(ctx: RequestContext, name: str) -> str:
    return ctx.arn(f"schema/{name}")


def dataset_group_arn(ctx: RequestContext, name: str) -> str:
    return ctx.arn(f"dataset-group/{name}")


def dataset_arn(group_arn: str, dataset_type: str) -> str:
    """``…:dataset-group/G`` + ``Items`` -> ``…:dataset/G/ITEMS`` (same region and account)."""
    prefix, _, group = group_arn.partition(":dataset-group/")
    return f"{prefix}:dataset/{group}/{DATASET_TYPE_SEGMENTS[dataset_type.lower()]}"


def event_tracker_arn(ctx: RequestContext, tracker_id: str) -> str:
    return ctx.arn(f"event-tracker/{tracker_id}")


def import_job_arn(ctx: RequestContext, name: str) -> str:
    return ctx.arn(f"dataset-import-job/{name}")


def data_deletion_job_arn(ctx: RequestContext, name: str) -> str:
    return ctx.arn(f"data-deletion-job/{name}")


def solution_arn(ctx: RequestContext, name: str) -> str:
    return ctx.arn(f"solution/{name}")


def solution_version_arn(solution: str, version_id: str) -> str:
    return f"{solution}/{version_id}"


def campaign_arn(ctx: RequestContext, name: str) -> str:
    return ctx.arn(f"campaign/{name}")


def resource_path(arn: str) -> str:
    """The part after the fifth colon: ``solution/name/abcd1234``."""
    parts = arn.split(":", 5)
    return parts[5] if len(parts) == 6 else ""


def resource_name(arn: str) -> str:
    """The name segment: ``…:dataset-group/Shop`` -> ``Shop``; ``…:dataset/Shop/ITEMS`` -> ``Shop``."""
    path = resource_path(arn)
    return path.split("/")[1] if path.count("/") >= 1 else ""


LATEST_SUFFIX: Final = "/$LATEST"


def split_latest(arn: str) -> str | None:
    """``<solutionArn>/$LATEST`` -> the solution ARN; None for any other ARN."""
    return arn[: -len(LATEST_SUFFIX)] if arn.endswith(LATEST_SUFFIX) else None
