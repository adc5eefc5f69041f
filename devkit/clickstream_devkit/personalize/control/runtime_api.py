"""``personalize-runtime``: GetRecommendations (``POST /recommendations``) and
GetPersonalizedRanking (``POST /personalize-ranking``).

A campaign serves the model of the solution version in its ``solutionVersionArn``
(which changes only when a campaign update is ACTIVE); `serving` computes the answer
from the user's current history, so events received after training change the
recommendations of a known user at once. A user without (known) history gets popular
items.

Per recipe type (contract §10): USER_PERSONALIZATION needs ``userId``; RELATED_ITEMS
(SIMS) needs ``itemId``; PERSONALIZED_RANKING serves only GetPersonalizedRanking, whose
``inputList`` comes back re-ordered with items the model does not know appended at the
end. A campaign's ``campaignConfig.itemExplorationConfig`` applies to its answers.
``numResults`` defaults to 25, at most 500 (``inputList`` too). Every answer carries
``recommendationId`` = ``RID-`` + a UUID (40 characters, the documented form) and a
score per item.

``filterArn`` + ``filterValues`` apply a filter (`filtering`): the model ranks with the
filtered-out items excluded, so a filtered list still has ``numResults`` items when the
catalogue allows; GetPersonalizedRanking drops filtered-out items from the ranking.

Errors use the runtime's modeled statuses: InvalidInputException 400,
ResourceNotFoundException 404 (an unknown campaign or filter). Promotions, recommenders
and metadata columns are not implemented here: a request that uses them is refused with a
clear message.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from clickstream_devkit.personalize.control import control_store as kinds
from clickstream_devkit.personalize.control import status as st
from clickstream_devkit.personalize.control.control_store import Resource
from clickstream_devkit.personalize.control.deps import Deps
from clickstream_devkit.personalize.control.serving import Exploration, QueryError, Serving
from clickstream_devkit.personalize.errors import INVALID_INPUT, RESOURCE_NOT_FOUND, ApiError, validation_error
from clickstream_devkit.personalize.events_api import Handler
from clickstream_devkit.personalize.shape_validation import RequestValidator
from clickstream_devkit.recsys.recipes import Model

DEFAULT_NUM_RESULTS: Final = 25
MAX_NUM_RESULTS: Final = 500
MAX_INPUT_LIST: Final = 500


def recommendation_id() -> str:
    return f"RID-{uuid.uuid4()}"


def _invalid(message: str) -> ApiError:
    return ApiError(INVALID_INPUT, message)


class RuntimeApi:
    def __init__(self, deps: Deps, serving: Serving, validator: RequestValidator) -> None:
        self._deps = deps
        self._serving = serving
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
        campaign, version, model = self._campaign(body["campaignArn"])
        try:
            prepared = self._serving.prepare_filter(version, body.get("filterArn"), body.get("filterValues"))
            config = (campaign.doc.get("campaignConfig") or {}).get("itemExplorationConfig")
            ranked = self._serving.recommend(
                version, model, user_id=body.get("userId"), item_id=body.get("itemId"), n=n, prepared=prepared,
                exploration=Exploration.of(config),
            )  # fmt: skip
        except QueryError as exc:
            raise _query_error(exc) from None
        return {"itemList": _items(ranked), "recommendationId": recommendation_id()}

    def get_personalized_ranking(self, body: Any) -> dict[str, Any]:
        self._validate("GetPersonalizedRanking", body)
        _refuse_unsupported(body)
        if len(body["inputList"]) > MAX_INPUT_LIST:
            raise _invalid(f"inputList must have at most {MAX_INPUT_LIST} items.")
        _, version, model = self._campaign(body["campaignArn"])
        try:
            prepared = self._serving.prepare_filter(version, body.get("filterArn"), body.get("filterValues"))
            ranked = self._serving.rank(version, model, user_id=body["userId"], items=body["inputList"],
                                        prepared=prepared)  # fmt: skip
        except QueryError as exc:
            raise _query_error(exc) from None
        return {"personalizedRanking": _items(ranked), "recommendationId": recommendation_id()}

    # -- helpers ---------------------------------------------------------------------------

    def _validate(self, operation: str, body: Any) -> None:
        violation = self._validator.validate(operation, body)
        if violation is not None:
            raise validation_error(violation)

    def _campaign(self, campaign_arn: str) -> tuple[Resource, Resource, Model]:
        campaign = self._deps.resources.get(campaign_arn, kinds.CAMPAIGN)
        if campaign is None:
            raise ApiError(RESOURCE_NOT_FOUND, f"Could not find campaign with ARN {campaign_arn}.")
        if campaign.status != st.ACTIVE:
            raise ApiError(RESOURCE_NOT_FOUND, f"Campaign {campaign_arn} is not ACTIVE (status {campaign.status}).")
        version = self._deps.resources.get(campaign.doc["solutionVersionArn"], kinds.SOLUTION_VERSION)
        if version is None or "model" not in version.meta:
            raise ApiError(RESOURCE_NOT_FOUND, f"Campaign {campaign_arn} has no usable solution version.")
        return campaign, version, self._serving.model(version)


def _query_error(exc: QueryError) -> ApiError:
    return ApiError(RESOURCE_NOT_FOUND if exc.not_found else INVALID_INPUT, exc.message)


def _refuse_unsupported(body: dict[str, Any]) -> None:
    if body.get("promotions"):
        raise _invalid("Promotions are not supported by local-personalize (development stand-in).")
    if body.get("metadataColumns"):
        raise _invalid("metadataColumns is not supported by local-personalize (development stand-in).")


def _items(ranked: list[tuple[str, float]]) -> list[dict[str, Any]]:
    return [{"itemId": item, "score": float(score)} for item, score in ranked]
