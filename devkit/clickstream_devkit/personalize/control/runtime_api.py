"""``personalize-runtime``: GetRecommendations (``POST /recommendations``) and
GetPersonalizedRanking (``POST /personalize-ranking``).

A campaign serves the model of the solution version in its ``solutionVersionArn``
(which changes only when a campaign update is ACTIVE). The user's history is read at
request time from `history.HistoryIndex` - every stored event and imported interaction
of the user, filtered by the solution's ``eventType`` and ``eventValueThreshold`` like
the training data - so events received after training change the recommendations of a
known user at once. A user without (known) history gets popular items.

Per recipe type (contract §10): USER_PERSONALIZATION needs ``userId``; RELATED_ITEMS
(SIMS) needs ``itemId``; PERSONALIZED_RANKING serves only GetPersonalizedRanking, whose
``inputList`` comes back re-ordered with items the model does not know appended at the
end. ``numResults`` defaults to 25, at most 500 (``inputList`` too). Every answer
carries ``recommendationId`` = ``RID-`` + a UUID (40 characters, the documented form)
and a score per item.

Errors use the runtime's modeled statuses: InvalidInputException 400,
ResourceNotFoundException 404. Filters, promotions, recommenders and metadata columns
are not implemented here: a request that uses them is refused with a clear message.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from clickstream_devkit.personalize.control import control_store as kinds
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.control_store import Resource
from clickstream_devkit.personalize.control.datasets_api import group_datasets
from clickstream_devkit.personalize.control.deps import Deps
from clickstream_devkit.personalize.control.history import HistoryIndex, Interaction
from clickstream_devkit.personalize.control.models import ModelCache
from clickstream_devkit.personalize.control.trackers_api import group_tracking_ids
from clickstream_devkit.personalize.errors import INVALID_INPUT, RESOURCE_NOT_FOUND, ApiError, validation_error
from clickstream_devkit.personalize.events_api import Handler
from clickstream_devkit.personalize.shape_validation import RequestValidator
from clickstream_devkit.recsys.models.knn import KnnModel
from clickstream_devkit.recsys.models.sims import SimsModel
from clickstream_devkit.recsys.recipes import Model, recipe_info

DEFAULT_NUM_RESULTS: Final = 25
MAX_NUM_RESULTS: Final = 500
MAX_INPUT_LIST: Final = 500


def recommendation_id() -> str:
    return f"RID-{uuid.uuid4()}"


def _invalid(message: str) -> ApiError:
    return ApiError(INVALID_INPUT, message)


class RuntimeApi:
    def __init__(self, deps: Deps, history: HistoryIndex, models: ModelCache, validator: RequestValidator) -> None:
        self._deps = deps
        self._history = history
        self._models = models
        self._validator = validator

    def routes(self) -> dict[str, tuple[str, Handler]]:
        return {
            "GetRecommendations": ("/recommendations", self.get_recommendations),
            "GetPersonalizedRanking": ("/personalize-ranking", self.get_personalized_ranking),
        }

    def get_recommendations(self, body: Any) -> dict[str, Any]:
        self._validate("GetRecommendations", body)
        if body.get("recommenderArn"):
            raise _invalid(
                "Recommenders are not supported by local-personalize (development stand-in): use a campaign."
            )
        if not body.get("campaignArn"):
            raise _invalid("campaignArn is required.")
        _refuse_unsupported(body)
        n = body.get("numResults", DEFAULT_NUM_RESULTS)
        if n > MAX_NUM_RESULTS:
            raise _invalid(f"numResults must be at most {MAX_NUM_RESULTS}.")
        campaign, version, model = self._serving(body["campaignArn"])
        kind = recipe_info(version.doc["recipeArn"]).recipe_type
        if kind == "PERSONALIZED_RANKING":
            raise _invalid("The campaign's recipe is of type PERSONALIZED_RANKING: use GetPersonalizedRanking.")
        if kind == "RELATED_ITEMS":
            if not body.get("itemId"):
                raise _invalid("itemId is required for a campaign with a RELATED_ITEMS recipe.")
            assert isinstance(model, SimsModel)
            ranked = model.related(body["itemId"], n)
        else:
            if not body.get("userId"):
                raise _invalid("userId is required for a campaign with a USER_PERSONALIZATION recipe.")
            history = self._item_history(version, body["userId"])
            if isinstance(model, KnnModel):
                weight, cut_off = _exploration(campaign)
                ranked = model.recommend(history, n, exploration_weight=weight, exploration_item_age_cut_off=cut_off)
            else:
                ranked = model.recommend(history, n)
        return {"itemList": _items(ranked), "recommendationId": recommendation_id()}

    def get_personalized_ranking(self, body: Any) -> dict[str, Any]:
        self._validate("GetPersonalizedRanking", body)
        _refuse_unsupported(body)
        if len(body["inputList"]) > MAX_INPUT_LIST:
            raise _invalid(f"inputList must have at most {MAX_INPUT_LIST} items.")
        _, version, model = self._serving(body["campaignArn"])
        if recipe_info(version.doc["recipeArn"]).recipe_type != "PERSONALIZED_RANKING" or not isinstance(
            model, KnnModel
        ):
            raise _invalid("GetPersonalizedRanking needs a campaign whose recipe is of type PERSONALIZED_RANKING.")
        ranked = model.rank(self._item_history(version, body["userId"]), body["inputList"])
        return {"personalizedRanking": _items(ranked), "recommendationId": recommendation_id()}

    # -- helpers ---------------------------------------------------------------------------

    def _validate(self, operation: str, body: Any) -> None:
        violation = self._validator.validate(operation, body)
        if violation is not None:
            raise validation_error(violation)

    def _serving(self, campaign_arn: str) -> tuple[Resource, Resource, Model]:
        campaign = self._deps.resources.get(campaign_arn, kinds.CAMPAIGN)
        if campaign is None:
            raise ApiError(RESOURCE_NOT_FOUND, f"Could not find campaign with ARN {campaign_arn}.")
        if campaign.status != st.ACTIVE:
            raise ApiError(RESOURCE_NOT_FOUND, f"Campaign {campaign_arn} is not ACTIVE (status {campaign.status}).")
        version = self._deps.resources.get(campaign.doc["solutionVersionArn"], kinds.SOLUTION_VERSION)
        if version is None or "model" not in version.meta:
            raise ApiError(RESOURCE_NOT_FOUND, f"Campaign {campaign_arn} has no usable solution version.")
        model = self._models.get(version.meta["model"], version.doc["recipeArn"])
        return campaign, version, model

    def _item_history(self, version: Resource, user_id: str) -> list[str]:
        """The user's current interactions, filtered like the solution's training data, oldest first."""
        group = version.doc["datasetGroupArn"]
        interactions = group_datasets(self._deps, group).get("interactions")
        rows = self._history.history(
            user_id, group_tracking_ids(self._deps, group), None if interactions is None else interactions.arn
        )
        solution = self._deps.resources.get(version.doc["solutionArn"])
        threshold = None if solution is None else solution.meta.get("eventValueThreshold")
        return [r.item_id for r in rows if _kept(r, version.doc.get("eventType"), threshold)]


def _kept(row: Interaction, event_type: str | None, threshold: float | None) -> bool:
    """The training filter (`clickstream_devkit.recsys.data.prepare`): exact event type, value >= threshold."""
    if event_type is not None and row.event_type != event_type:
        return False
    return threshold is None or (row.event_value is not None and row.event_value >= threshold)


def _exploration(campaign: Resource) -> tuple[float | None, float | None]:
    config = (campaign.doc.get("campaignConfig") or {}).get("itemExplorationConfig") or {}
    weight = config.get("explorationWeight")
    cut_off = config.get("explorationItemAgeCutOff")
    return (None if weight is None else float(weight), None if cut_off is None else float(cut_off))


def _refuse_unsupported(body: dict[str, Any]) -> None:
    if body.get("filterArn"):
        raise ApiError(RESOURCE_NOT_FOUND, f"Could not find filter with ARN {body['filterArn']}.")
    if body.get("promotions"):
        raise _invalid("Promotions are not supported by local-personalize (development stand-in).")
    if body.get("metadataColumns"):
        raise _invalid("metadataColumns is not supported by local-personalize (development stand-in).")


def _items(ranked: list[tuple[str, float]]) -> list[dict[str, Any]]:
    return [{"itemId": item, "score": float(score)} for item, score in ranked]
