"""One solution-version training, run in a background thread: read data, `train`, write the model.

`TrainingJob` carries plain values only (paths, strings, numbers), so the function
shares nothing with the event loop and could run in another process unchanged. The
model is written to a temporary file and renamed into place, so a crash never leaves a
half-written model that a restarted server would try to serve.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clickstream_devkit.personalize.control.training_data import interaction_rows, items_metadata
from clickstream_devkit.recsys.train import TrainingMode, train


@dataclass(frozen=True)
class TrainingJob:
    version_arn: str
    events_db: Path
    tracking_ids: tuple[str, ...]
    bulk_db: Path
    interactions_dataset: str | None
    items_dataset: str | None
    #: Items ``properties`` key (camelCase) -> schema column, for the metadata columns.
    items_columns: Mapping[str, str]
    recipe: str
    event_type: str | None
    event_value_threshold: float | None
    hyperparameters: Mapping[str, str]
    perform_hpo: bool
    #: The solution's ``solutionConfig.hpoConfig`` as sent (JSON values only).
    hpo_config: Mapping[str, Any] | None
    seed: int
    training_mode: TrainingMode
    previous_model: Path | None
    model_path: Path


@dataclass(frozen=True)
class TrainingOutcome:
    failure_reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    tuned_hyperparameters: dict[str, str] = field(default_factory=dict)
    hyperparameters: dict[str, str] = field(default_factory=dict)
    training_seconds: float = 0.0
    num_interactions: int = 0
    hpo_trials: tuple[tuple[dict[str, str], float], ...] = ()


def run_training(job: TrainingJob) -> TrainingOutcome:
    rows = interaction_rows(job.events_db, job.tracking_ids, job.bulk_db, job.interactions_dataset)
    metadata = items_metadata(job.events_db, job.bulk_db, job.items_dataset, job.items_columns)
    previous = None
    if job.previous_model is not None:
        try:
            previous = job.previous_model.read_bytes()
        except OSError as exc:
            return TrainingOutcome(failure_reason=f"Create failed. The previous solution version is unreadable: {exc}")
    result = train(
        rows,
        recipe=job.recipe,
        event_type=job.event_type,
        event_value_threshold=job.event_value_threshold,
        hyperparameters=job.hyperparameters,
        perform_hpo=job.perform_hpo,
        hpo_config=job.hpo_config,
        items_metadata=metadata,
        seed=job.seed,
        training_mode=job.training_mode,
        previous=previous,
    )
    if result.succeeded and result.model_bytes is not None:
        _write_atomically(job.model_path, result.model_bytes)
    return TrainingOutcome(
        failure_reason=result.failure_reason,
        metrics=dict(result.metrics),
        tuned_hyperparameters=dict(result.tuned_hyperparameters),
        hyperparameters=dict(result.hyperparameters),
        training_seconds=result.training_seconds,
        num_interactions=result.num_interactions,
        hpo_trials=result.hpo_trials,
    )


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
