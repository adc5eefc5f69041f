"""At least 100 distinct malformed inputs in one run, each dead-lettered with the right reason.

The inputs come from two independent sources of truth: the generator's malformed kinds
(each built on several different realistic events) and the decoder corpus of the unit
tests (tests/unit/malformed_corpus.py). Each carries the stage and rule the worker must
report; the audit compares them with the DLQ record's Kafka Connect headers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from clickstream_devkit.generator import BAD_KINDS

from tests.faults.audit import BadRecord
from tests.faults.stack import FaultStack
from tests.unit.malformed_corpus import INTERACTION_CASES, NOW_ISO

pytestmark = pytest.mark.faults

VARIANTS_PER_KIND = 3
#: Corpus cases whose verdict depends on the corpus's fixed clock, not on their bytes.
CLOCK_RELATIVE = {"timestamp_2_days_ahead"}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def generator_kinds(now: float) -> list[BadRecord]:
    """Every generator kind, built on VARIANTS_PER_KIND different realistic events."""
    out = []
    for kind in BAD_KINDS:
        for v in range(VARIANTS_PER_KIND):
            rng = random.Random(f"{kind.name}:{v}")
            base: dict[str, Any] = {
                "type": "track",
                "messageId": f"bad-{kind.name}-{v}",
                "userId": None if v == 2 else f"u-{v}",
                "anonymousId": f"anon-{kind.name}-{v}",
                "event": ("view", "click", "purchase")[v],
                "timestamp": _iso(now - 60 - v),
                "context": {"sessionId": f"s-{kind.name}-{v}"},
                "properties": {"productId": f"item-{v}", "value": 1.0 + v, "device": ("ios", "web", "android")[v]},
            }
            out.append(BadRecord(kind.build(rng, base), f"generator:{kind.name}:{v}", kind.stage, kind.rule))
    return out


def corpus_cases(now: float) -> list[BadRecord]:
    """The unit corpus's cases for the default mapping, re-stamped from its fixed clock to now."""
    stamp = _iso(now - 60).encode()
    out = []
    for case in INTERACTION_CASES:
        if case.decoder != "interactions" or case.name in CLOCK_RELATIVE:
            continue
        value = None if case.value is None else case.value.replace(NOW_ISO.encode(), stamp)
        out.append(BadRecord(value, f"corpus:{case.name}", case.stage, case.rule, case.field))
    return out


def distinct(records: list[BadRecord]) -> list[BadRecord]:
    seen: dict[bytes | None, BadRecord] = {}
    for record in records:
        seen.setdefault(record.value, record)
    return list(seen.values())


def test_at_least_100_distinct_malformed_inputs_each_dead_lettered_with_its_reason(
    fault_stack: Callable[..., FaultStack],
) -> None:
    stack = fault_stack("100+ distinct malformed inputs")
    worker = stack.worker()
    now = time.time()
    crafted = distinct(generator_kinds(now) + corpus_cases(now))
    assert len(crafted) >= 100, f"only {len(crafted)} distinct malformed inputs"
    worker.wait_ready()
    truth = stack.produce_bad(crafted) + stack.generate(3000, bad_fraction=0.2)
    stack.wait_delivered(truth, timeout_s=90)
    rules = {(b.stage, b.rule) for b in crafted}
    row = stack.audit(truth, survivors=[worker], notes={"distinct_crafted": len(crafted), "rules": len(rules)})
    assert row.distinct_invalid >= 100
    assert worker.terminate() == 0
