"""Recommendations from a solution version: what the runtime and batch inference share.

A query is answered from the version's model and the user's *current* history (every
stored event and imported interaction of the user, filtered by the solution's
``eventType`` and ``eventValueThreshold`` like the training data), so events received
after training change a known user's recommendations at once; a filter's removed items are
excluded before ranking (`filtering`). Per recipe type (contract §10): RELATED_ITEMS
answers for an ``itemId``, the others for a ``userId``; PERSONALIZED_RANKING re-ranks an
input list (items the model does not know go last).

Errors are `QueryError` (invalid input, or "not found" for an unknown filter); the caller
renders them as an API error (runtime) or as the line's ``error`` (batch inference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from clickstream_devkit.personalize.control.control_store import Resource
from clickstream_devkit.personalize.control.datasets_api import group_datasets
from clickstream_devkit.personalize.control.deps import Deps
from clickstream_devkit.personalize.control.filtering import FilterError, Filtering, PreparedFilter
from clickstream_devkit.personalize.control.history import HistoryIndex, Interaction
from clickstream_devkit.personalize.control.models import ModelCache
from clickstream_devkit.personalize.control.trackers_api import group_tracking_ids
from clickstream_devkit.recsys.models.knn import KnnModel
from clickstream_devkit.recsys.models.sims import SimsModel
from clickstream_devkit.recsys.recipes import Model, RecipeType, recipe_info

Ranked = list[tuple[str, float]]


class QueryError(Exception):
    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.not_found = not_found


@dataclass(frozen=True)
class Exploration:
    """``itemExplorationConfig`` of a campaign or batch job (None: the model's own values)."""

    weight: float | None = None
    item_age_cut_off: float | None = None

    @classmethod
    def of(cls, config: Mapping[str, str] | None) -> Exploration:
        weight, cut_off = (config or {}).get("explorationWeight"), (config or {}).get("explorationItemAgeCutOff")
        return cls(None if weight is None else float(weight), None if cut_off is None else float(cut_off))


class Serving:
    def __init__(self, deps: Deps, history: HistoryIndex, models: ModelCache, filtering: Filtering) -> None:
        self._deps = deps
        self._history = history
        self._models = models
        self._filtering = filtering

    def model(self, version: Resource) -> Model:
        return self._models.get(version.meta["model"], version.doc["recipeArn"])

    @staticmethod
    def recipe_type(version: Resource) -> RecipeType:
        return recipe_info(version.doc["recipeArn"]).recipe_type

    def prepare_filter(
        self, version: Resource, filter_arn: str | None, filter_values: Mapping[str, str] | None
    ) -> PreparedFilter | None:
        if not filter_arn:
            return None
        related = self.recipe_type(version) == "RELATED_ITEMS"
        try:
            return self._filtering.prepare(filter_arn, filter_values, version.doc["datasetGroupArn"],
                                           related_items=related)  # fmt: skip
        except FilterError as exc:
            raise QueryError(exc.message, not_found=exc.not_found) from None

    def recommend(
        self,
        version: Resource,
        model: Model,
        *,
        user_id: str | None,
        item_id: str | None,
        n: int,
        prepared: PreparedFilter | None = None,
        exploration: Exploration | None = None,
    ) -> Ranked:
        """GetRecommendations for a USER_PERSONALIZATION or RELATED_ITEMS version."""
        kind = self.recipe_type(version)
        if kind == "PERSONALIZED_RANKING":
            raise QueryError("The recipe is of type PERSONALIZED_RANKING: use GetPersonalizedRanking.")
        if kind == "RELATED_ITEMS" and not item_id:
            raise QueryError("itemId is required for a campaign with a RELATED_ITEMS recipe.")
        if kind != "RELATED_ITEMS" and not user_id:
            raise QueryError("userId is required for a campaign with a USER_PERSONALIZATION recipe.")
        blocked = self._blocked(prepared, model.known_items, user_id, item_id)
        if isinstance(model, SimsModel) and item_id:
            return model.related(item_id, n, exclude=blocked)
        history = self.item_history(version, user_id or "")
        if isinstance(model, KnnModel):
            explore = exploration or Exploration()
            return model.recommend(history, n, exclude=blocked, exploration_weight=explore.weight,
                                   exploration_item_age_cut_off=explore.item_age_cut_off)  # fmt: skip
        return model.recommend(history, n, exclude=blocked)

    def rank(
        self, version: Resource, model: Model, *, user_id: str, items: Sequence[str], prepared: PreparedFilter | None
    ) -> Ranked:
        """GetPersonalizedRanking: `items` re-ordered for the user, filtered-out items dropped."""
        if self.recipe_type(version) != "PERSONALIZED_RANKING" or not isinstance(model, KnnModel):
            raise QueryError("GetPersonalizedRanking needs a campaign whose recipe is of type PERSONALIZED_RANKING.")
        ranked = model.rank(self.item_history(version, user_id), items)
        blocked = self._blocked(prepared, items, user_id, None)
        return [(item, score) for item, score in ranked if item not in blocked]

    def _blocked(
        self, prepared: PreparedFilter | None, candidates: Sequence[str] | frozenset[str], user_id: str | None,
        item_id: str | None,
    ) -> set[str]:  # fmt: skip
        if prepared is None:
            return set()
        return self._filtering.blocked(prepared, candidates, user_id=user_id, item_id=item_id)

    def item_history(self, version: Resource, user_id: str) -> list[str]:
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
