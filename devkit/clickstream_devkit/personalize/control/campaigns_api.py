"""CreateCampaign / UpdateCampaign / DescribeCampaign / ListCampaigns.

A campaign serves the solution version in its ``solutionVersionArn`` (a version ARN,
or ``<solutionArn>/$LATEST`` resolved to the solution's newest ACTIVE version). The
version must be ACTIVE: one still training is ResourceInUseException, a failed or
stopped one InvalidInputException.

UpdateCampaign (contract §8.8): allowed when the campaign is ACTIVE or CREATE FAILED;
an update while the previous one is CREATE PENDING / CREATE IN_PROGRESS is
ResourceInUseException. The update is reported in ``latestCampaignUpdate`` (present only
after the first update) and goes PENDING → IN_PROGRESS → ACTIVE, one step each; only then
do the campaign's ``solutionVersionArn``, ``minProvisionedTPS`` and ``campaignConfig``
change, so the runtime keeps serving the previous version meanwhile. An update that
fails (``fail_next_campaign_updates`` fault) ends CREATE FAILED with a failureReason and
changes nothing. The top-level ``status`` stays ACTIVE during an update: the model has
no update-specific value for it (contract §11 gap #13).

``campaignConfig.syncWithLatestSolutionVersion`` requires the ``$LATEST`` form; such a
campaign switches to every new ACTIVE version of its solution without an update.
"""

from __future__ import annotations

import math
from typing import Any, Final

from clickstream_devkit.personalize.control import control_store as kinds
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.arns import RequestContext, campaign_arn, split_latest
from clickstream_devkit.personalize.control.control_store import Resource
from clickstream_devkit.personalize.control.deletion import solution_of
from clickstream_devkit.personalize.control.deps import (
    Deps,
    OpHandler,
    check_new,
    drive_simple,
    in_use,
    invalid,
    new_resource,
    require,
    summary,
)
from clickstream_devkit.personalize.control.pagination import listing, paginate

INJECTED_UPDATE_FAILURE: Final = "Injected campaign update failure (local-personalize fault injection)."
_UPDATE_KEY: Final = "#update"


class CampaignsApi:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        deps.on_version_active.append(self._follow_latest)

    def operations(self) -> dict[str, OpHandler]:
        return {
            "CreateCampaign": self.create_campaign,
            "UpdateCampaign": self.update_campaign,
            "DescribeCampaign": self.describe_campaign,
            "ListCampaigns": self.list_campaigns,
        }

    def resume(self, resource: Resource) -> None:
        self._deps.jobs.spawn(resource.arn, drive_simple(self._deps, resource.arn))
        update = resource.doc.get("latestCampaignUpdate")
        if update is not None and update["status"] in (st.PENDING, st.IN_PROGRESS):
            self._deps.jobs.spawn(resource.arn + _UPDATE_KEY, self._drive_update(resource.arn))

    # -- operations -----------------------------------------------------------------------------

    def create_campaign(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        config = body.get("campaignConfig")
        version = self._serving_version(body["solutionVersionArn"], config)
        arn = campaign_arn(ctx, body["name"])
        check_new(self._deps, arn)
        doc: dict[str, Any] = {
            "name": body["name"],
            "campaignArn": arn,
            "solutionVersionArn": version.arn,
            "minProvisionedTPS": int(body.get("minProvisionedTPS") or 1),
        }
        if config is not None:
            doc["campaignConfig"] = config
        meta = {"follows": split_latest(body["solutionVersionArn"])} if _syncs(config) else {}
        self._deps.resources.add(new_resource(ctx, arn, kinds.CAMPAIGN, doc, parent=version.parent, meta=meta))
        self._deps.jobs.spawn(arn, drive_simple(self._deps, arn))
        return {"campaignArn": arn}

    def update_campaign(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        campaign = require(self._deps, body["campaignArn"], kinds.CAMPAIGN, "campaign")
        if campaign.status not in (st.ACTIVE, st.FAILED):
            raise in_use(f"Campaign {campaign.arn} is {campaign.status}; it can be updated once it is ACTIVE.")
        previous = campaign.doc.get("latestCampaignUpdate")
        if previous is not None and previous["status"] in (st.PENDING, st.IN_PROGRESS):
            raise in_use(f"Campaign {campaign.arn} has an update in progress (status {previous['status']}).")
        config = body.get("campaignConfig", campaign.doc.get("campaignConfig"))
        requested = body.get("solutionVersionArn") or campaign.doc["solutionVersionArn"]
        version = self._serving_version(requested, config)
        update: dict[str, Any] = {
            "solutionVersionArn": version.arn,
            "minProvisionedTPS": int(body.get("minProvisionedTPS") or campaign.doc["minProvisionedTPS"]),
            "status": st.PENDING,
            "creationDateTime": ctx.now,
            "lastUpdatedDateTime": ctx.now,
        }
        if config is not None:
            update["campaignConfig"] = config
        campaign.doc["latestCampaignUpdate"] = update
        campaign.meta["pendingFollows"] = split_latest(requested) if _syncs(config) else None
        if self._deps.faults.take_campaign_update_failure():
            campaign.meta["updateFailure"] = INJECTED_UPDATE_FAILURE
        self._deps.resources.save(campaign)
        self._deps.jobs.spawn(campaign.arn + _UPDATE_KEY, self._drive_update(campaign.arn))
        return {"campaignArn": campaign.arn}

    def describe_campaign(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        return {"campaign": require(self._deps, body["campaignArn"], kinds.CAMPAIGN, "campaign").describe()}

    def list_campaigns(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        solution = body.get("solutionArn")
        campaigns = [
            c
            for c in self._deps.resources.all(kinds.CAMPAIGN)
            if solution is None or solution_of(c.doc["solutionVersionArn"]) == solution
        ]
        page, token = paginate(campaigns, body, key=lambda r: r.sort_key(), scope=f"campaigns|{solution}")
        return listing("campaigns", [summary(c, "name", "campaignArn") for c in page], token)

    # -- helpers --------------------------------------------------------------------------------

    def _serving_version(self, requested: str, config: dict[str, Any] | None) -> Resource:
        """The ACTIVE version a campaign may serve for `requested` (checks the config too)."""
        _check_config(config)
        solution = split_latest(requested)
        if _syncs(config) and solution is None:
            raise invalid("campaignConfig.syncWithLatestSolutionVersion requires a solutionVersionArn of the form "
                          "<solutionArn>/$LATEST.")  # fmt: skip
        if solution is not None:
            require(self._deps, solution, kinds.SOLUTION, "solution")
            active = [v for v in self._deps.resources.all(kinds.SOLUTION_VERSION, solution) if v.status == st.ACTIVE]
            if not active:
                raise in_use(f"Solution {solution} has no ACTIVE solution version yet.")
            return max(active, key=lambda v: v.sort_key())
        version = require(self._deps, requested, kinds.SOLUTION_VERSION, "solution version")
        if version.status in st.BUSY:
            raise in_use(f"Solution version {version.arn} is {version.status}; a campaign needs an ACTIVE version.")
        if version.status != st.ACTIVE:
            raise invalid(f"Solution version {version.arn} is {version.status}; a campaign needs an ACTIVE version.")
        return version

    async def _drive_update(self, arn: str) -> None:
        deps = self._deps
        while True:
            campaign = deps.resources.get(arn)
            if campaign is None:
                return
            update: dict[str, Any] | None = campaign.doc.get("latestCampaignUpdate")
            if update is None:
                return
            status = update["status"]
            target = st.next_status(status)
            if target is None or status == st.STOPPING:
                return
            await deps.jobs.sleep(arn + _UPDATE_KEY, update["lastUpdatedDateTime"] + deps.step - deps.clock())
            replaced = update is not campaign.doc.get("latestCampaignUpdate")
            if replaced or update["status"] != status:
                continue
            now = deps.clock()
            failure = campaign.meta.pop("updateFailure", None) if target == st.ACTIVE else None
            if failure is not None:
                update.update(status=st.FAILED, failureReason=failure, lastUpdatedDateTime=now)
                campaign.meta.pop("pendingFollows", None)
                deps.resources.save(campaign)
            elif target == st.ACTIVE:
                update.update(status=st.ACTIVE, lastUpdatedDateTime=now)
                campaign.doc["solutionVersionArn"] = update["solutionVersionArn"]
                campaign.doc["minProvisionedTPS"] = update["minProvisionedTPS"]
                if "campaignConfig" in update:
                    campaign.doc["campaignConfig"] = update["campaignConfig"]
                campaign.meta["follows"] = campaign.meta.pop("pendingFollows", None)
                if campaign.status == st.FAILED:
                    campaign.status = st.ACTIVE
                    campaign.doc.pop("failureReason", None)
                deps.resources.save(campaign, now=now)
            else:
                update.update(status=target, lastUpdatedDateTime=now)
                deps.resources.save(campaign)

    def _follow_latest(self, version: Resource) -> None:
        """A new ACTIVE version: campaigns that sync with their solution's latest switch to it."""
        solution = solution_of(version.arn)
        for campaign in self._deps.resources.all(kinds.CAMPAIGN):
            if campaign.meta.get("follows") == solution and campaign.status == st.ACTIVE:
                campaign.doc["solutionVersionArn"] = version.arn
                self._deps.resources.save(campaign, now=self._deps.clock())


def _syncs(config: dict[str, Any] | None) -> bool:
    return bool((config or {}).get("syncWithLatestSolutionVersion"))


def _check_config(config: dict[str, Any] | None) -> None:
    """itemExplorationConfig values are numbers: explorationWeight in [0, 1], explorationItemAgeCutOff > 0."""
    exploration = (config or {}).get("itemExplorationConfig") or {}
    for key, lo, hi in (("explorationWeight", 0.0, 1.0), ("explorationItemAgeCutOff", 0.0, math.inf)):
        if key not in exploration:
            continue
        try:
            value = float(exploration[key])
        except ValueError:
            value = math.nan
        if not (lo <= value <= hi) or (key == "explorationItemAgeCutOff" and value <= 0):
            raise invalid(
                f"campaignConfig.itemExplorationConfig.{key} must be a number in range, got {exploration[key]!r}."
            )
