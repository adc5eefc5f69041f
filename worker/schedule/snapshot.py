"""The leader's published observation of one solution, and how readers judge it (pure).

Only the leader observes Personalize. After every tick it publishes, per solution, one
`Snapshot` on the control topic (key ``observation/<solution ARN>``, compacted like the
memory records): what it observed (the `Observation`, compacted, with the memory as it
stood after acting), what it decided and did, when, and who it was (replica name and the
lease group's generation). The other replicas and ``clickstream-worker status`` read these
instead of calling Personalize themselves.

A snapshot is never acted on: a replica that becomes leader observes Personalize afresh
in its first tick (the reconciler's leader path takes no snapshot as input).

Each leadership starts with a *claim*: a record (key ``leader``) naming the replica,
written when it acquires the lease. Its offset in the control topic is the leadership's
``generation``, stamped on every snapshot it publishes: offsets only grow, so a larger
generation is a later leadership, across replicas and restarts. Readers apply records in
offset order and drop a snapshot whose generation is older than the newest claim: it was
written by a leader deposed in the meantime (a zombie that had not noticed yet).

Readers judge a snapshot with `freshness`:

* ``released``: its leader stopped cleanly after publishing it; nobody refreshes it;
* ``stale``: not republished for `stale_after` (three of its leader's ticks plus a
  grace): the leader may be down or stuck;
* ``unobserved``: the leader is alive but has not observed the solution successfully
  (``error`` says why), so there is no observation to show;
* ``fresh``: otherwise (an ``error`` may still say the latest attempt failed; the
  observation is then the last good one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from worker.schedule.decisions import Decision
from worker.schedule.state import (
    CampaignView,
    ImportView,
    Memory,
    Observation,
    SolutionView,
    UpdateView,
    VersionView,
)

KEY_PREFIX = "observation/"
LEADER_KEY = b"leader"
FORMAT_VERSION = 1
#: Versions kept in a published snapshot (the newest; versions a campaign refers to are kept too).
MAX_VERSIONS = 50
#: Import jobs kept (the newest).
MAX_IMPORTS = 5
#: A snapshot not republished for this many of its leader's ticks (plus the grace) is stale.
STALE_TICKS = 3
STALE_GRACE_S = 30.0

Freshness = Literal["fresh", "stale", "released", "unobserved"]
Source = Literal["leader", "live", "none"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One solution as the leader last saw it.

    ``observation`` is the last successful observation (None if there was none yet);
    ``error`` is set when the latest attempt failed. ``generation`` is the offset of the
    publishing leader's claim (None when its claim could not be written).
    """

    solution_arn: str
    replica: str
    generation: int | None
    published_at: float
    tick_interval_s: float
    observation: Observation | None = None
    decision: str | None = None
    reason: str | None = None
    alerts: tuple[str, ...] = ()
    action: str | None = None
    error: str | None = None
    released: bool = False
    omitted_versions: int = 0

    @property
    def observed_at(self) -> float | None:
        return None if self.observation is None else self.observation.now

    def age(self, now: float) -> float | None:
        """Seconds since the observation was made (None without one)."""
        observed = self.observed_at
        return None if observed is None else max(0.0, now - observed)


@dataclass(frozen=True, slots=True)
class Claim:
    """A leadership announced on the control topic: who, when, and its generation (the record's offset)."""

    replica: str
    claimed_at: float
    generation: int


def stale_after(tick_interval_s: float) -> float:
    """Seconds without a republication after which a snapshot is stale."""
    return STALE_TICKS * tick_interval_s + STALE_GRACE_S


def freshness(snapshot: Snapshot, now: float) -> Freshness:
    if snapshot.released:
        return "released"
    if now - snapshot.published_at > stale_after(snapshot.tick_interval_s):
        return "stale"
    if snapshot.observation is None:
        return "unobserved"
    return "fresh"


def status_source(snapshot: Snapshot | None, now: float, mode: str = "auto") -> tuple[Source, str]:
    """What ``status`` shows for one solution, and why: the leader's snapshot, a live observation, or nothing.

    `mode` is ``auto`` (the leader's snapshot while fresh, else observe live), ``live``
    (always observe) or ``published`` (never call Personalize: the snapshot, however old).
    """
    if mode == "live":
        return "live", "asked with --live"
    if snapshot is None or snapshot.observation is None:
        why = "no leader has published an observation of this solution"
        if snapshot is not None:
            why = f"the leader has not observed it successfully yet ({snapshot.error or 'no observation'})"
        return ("none" if mode == "published" else "live"), why
    if mode == "published" or freshness(snapshot, now) == "fresh":
        return "leader", describe_freshness(snapshot, now)
    return "live", describe_freshness(snapshot, now)


def describe_freshness(snapshot: Snapshot, now: float) -> str:
    """A human sentence about where a snapshot comes from and whether it can be trusted."""
    who = f"replica {snapshot.replica}"
    if snapshot.generation is not None:
        who += f", lease generation {snapshot.generation}"
    age = snapshot.age(now)
    observed = "never observed" if age is None else f"observed {age:.0f} s ago"
    state = freshness(snapshot, now)
    if state == "released":
        return f"{observed} by the last leader ({who}), which has stopped; no leader has published since"
    if state == "stale":
        silent = now - snapshot.published_at
        return (f"{observed} by the leader ({who}), silent for {silent:.0f} s "
                f"(stale after {stale_after(snapshot.tick_interval_s):.0f} s): the leader may be down")  # fmt: skip
    text = f"{observed} by the leader ({who})"
    if snapshot.error:
        text += f"; its latest attempt failed: {snapshot.error}"
    return text


def leader_snapshot(
    obs: Observation,
    decision: Decision | None,
    *,
    arn: str,
    replica: str,
    generation: int | None,
    now: float,
    tick_interval_s: float,
    action: str | None = None,
) -> Snapshot:
    """What a leader publishes after a tick: the compacted observation, its decision and its action."""
    compacted, omitted = compact(obs)
    return Snapshot(
        arn, replica, generation, now, tick_interval_s, compacted,
        decision=None if decision is None else decision.kind,
        reason=None if decision is None else decision.reason,
        alerts=() if decision is None else tuple(decision.alerts),
        action=action, omitted_versions=omitted,
    )  # fmt: skip


# -- compaction ------------------------------------------------------------------------------


def compact(obs: Observation, max_versions: int = MAX_VERSIONS, max_imports: int = MAX_IMPORTS) -> tuple[
    Observation, int
]:
    """The observation with its newest versions (and those a campaign refers to); how many were left out."""
    referenced: set[str] = set()
    for c in obs.campaigns:
        referenced.update(a for a in (c.version_arn, c.serving_version_arn) if a)
        if c.latest_update is not None:
            referenced.add(c.latest_update.version_arn)
    newest = {v.arn for v in sorted(obs.versions, key=lambda v: (v.created_at, v.arn))[-max_versions:]}
    versions = tuple(v for v in obs.versions if v.arn in newest or v.arn in referenced)
    imports = tuple(sorted(obs.imports, key=lambda j: (j.created_at, j.arn))[-max_imports:])
    return replace(obs, versions=versions, imports=imports), len(obs.versions) - len(versions)


# -- encoding ---------------------------------------------------------------------------------


def observation_to_dict(obs: Observation) -> dict[str, Any]:
    return {
        "now": obs.now,
        "solution": asdict(obs.solution),
        "versions": [asdict(v) for v in obs.versions],
        "campaigns": [asdict(c) for c in obs.campaigns],
        "imports": [asdict(j) for j in obs.imports],
        "new_interactions": obs.new_interactions,
        "memory": obs.memory.to_dict(),
    }


def _known(cls: type[Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """The fields `cls` has (a newer writer may add fields; they are ignored)."""
    return {f.name: data[f.name] for f in fields(cls) if f.name in data}


def _campaign(data: Mapping[str, Any]) -> CampaignView:
    values = _known(CampaignView, data)
    update = values.get("latest_update")
    values["latest_update"] = None if update is None else UpdateView(**_known(UpdateView, update))
    values["config"] = dict(values.get("config") or {})
    return CampaignView(**values)


def observation_from_dict(data: Mapping[str, Any]) -> Observation:
    return Observation(
        now=float(data["now"]),
        solution=SolutionView(**_known(SolutionView, data["solution"])),
        versions=tuple(VersionView(**_known(VersionView, v)) for v in data.get("versions", [])),
        campaigns=tuple(_campaign(c) for c in data.get("campaigns", [])),
        imports=tuple(ImportView(**_known(ImportView, j)) for j in data.get("imports", [])),
        new_interactions=data.get("new_interactions"),
        memory=Memory.from_dict(data.get("memory", {})),
    )


def encode(snapshot: Snapshot) -> tuple[bytes, bytes]:
    """(key, value) of the control-topic record."""
    body = {
        "format": FORMAT_VERSION,
        "solution_arn": snapshot.solution_arn,
        "replica": snapshot.replica,
        "generation": snapshot.generation,
        "published_at": snapshot.published_at,
        "tick_interval_s": snapshot.tick_interval_s,
        "observation": None if snapshot.observation is None else observation_to_dict(snapshot.observation),
        "decision": snapshot.decision,
        "reason": snapshot.reason,
        "alerts": list(snapshot.alerts),
        "action": snapshot.action,
        "error": snapshot.error,
        "released": snapshot.released,
        "omitted_versions": snapshot.omitted_versions,
    }
    key = (KEY_PREFIX + snapshot.solution_arn).encode()
    return key, json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def decode(key: bytes | None, value: bytes | None) -> tuple[str, Snapshot | None] | None:
    """(solution ARN, snapshot) of one control-topic record; None for other records or unreadable ones.

    A null value (a tombstone) removes the solution's snapshot.
    """
    if key is None or not key.startswith(KEY_PREFIX.encode()):
        return None
    arn = key[len(KEY_PREFIX) :].decode("utf-8", "replace")
    if value is None:
        return arn, None
    try:
        data = json.loads(value)
        if not isinstance(data, dict) or int(data.get("format", 0)) > FORMAT_VERSION:
            return None
        obs = data.get("observation")
        return arn, Snapshot(
            solution_arn=arn,
            replica=str(data.get("replica", "?")),
            generation=None if data.get("generation") is None else int(data["generation"]),
            published_at=float(data["published_at"]),
            tick_interval_s=float(data.get("tick_interval_s", 60.0)),
            observation=None if obs is None else observation_from_dict(obs),
            decision=data.get("decision"),
            reason=data.get("reason"),
            alerts=tuple(str(a) for a in data.get("alerts", [])),
            action=data.get("action"),
            error=data.get("error"),
            released=bool(data.get("released", False)),
            omitted_versions=int(data.get("omitted_versions", 0)),
        )
    except (ValueError, KeyError, TypeError):
        return None


def encode_claim(replica: str, now: float) -> tuple[bytes, bytes]:
    """(key, value) of a leadership claim; its offset, once written, is the generation."""
    body = {"format": FORMAT_VERSION, "replica": replica, "claimed_at": now}
    return LEADER_KEY, json.dumps(body, sort_keys=True).encode()


def decode_claim(key: bytes | None, value: bytes | None, offset: int) -> Claim | None:
    if key != LEADER_KEY or value is None:
        return None
    try:
        data = json.loads(value)
        if not isinstance(data, dict) or int(data.get("format", 0)) > FORMAT_VERSION:
            return None
        return Claim(str(data.get("replica", "?")), float(data["claimed_at"]), offset)
    except (ValueError, KeyError, TypeError):
        return None


class SnapshotIndex:
    """The latest snapshot per solution and the newest claim, from control-topic records in offset order.

    Pure: feed it records (`apply`) as they are read. ``superseded`` counts snapshots
    dropped because a newer leadership had been claimed before they were written.
    """

    def __init__(self) -> None:
        self.snapshots: dict[str, Snapshot] = {}
        self.leader: Claim | None = None
        self.superseded = 0

    def apply(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        claim = decode_claim(key, value, offset)
        if claim is not None:
            if self.leader is None or claim.generation > self.leader.generation:
                self.leader = claim
            return
        decoded = decode(key, value)
        if decoded is None:
            return
        arn, snapshot = decoded
        if snapshot is None:
            self.snapshots.pop(arn, None)
        elif (snapshot.generation is not None and self.leader is not None
              and snapshot.generation < self.leader.generation):  # fmt: skip
            self.superseded += 1
        else:
            self.snapshots[arn] = snapshot
