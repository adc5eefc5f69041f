"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.scenario import Scenario


@pytest.fixture
def scenario(tmp_path: Path, broker: Any, kafka_topic: Any, local_personalize: Any) -> Iterator[Any]:
    created: list[Scenario] = []

    def make(**kwargs: Any) -> Scenario:
        s = Scenario(tmp_path, broker, kafka_topic, local_personalize, **kwargs)
        created.append(s)
        return s

    yield make
    for s in created:
        s.stop_all()
