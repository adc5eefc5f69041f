"""Retraining scheduler: pure decision core (state, triggers, gate, policy) and its settings.

The reconciler (I/O: observing Personalize and Kafka offsets, acting, leader lease,
lifecycle events) builds an :class:`Observation`, calls :func:`decide`, performs the one
returned action and updates :class:`Memory` with its ``record_*`` transitions.
"""

from worker.config.solutions import SolutionSchedule
from worker.schedule.decisions import (
    Action,
    Blocked,
    Conflict,
    Decision,
    Import,
    Nothing,
    Promote,
    Refuse,
    Rollback,
    Stop,
    Train,
    Wait,
)
from worker.schedule.policy import check_conflicts, decide
from worker.schedule.state import (
    CampaignView,
    ImportView,
    Memory,
    Observation,
    SolutionView,
    UpdateView,
    VersionView,
)

__all__ = [
    "Action",
    "Blocked",
    "CampaignView",
    "Conflict",
    "Decision",
    "Import",
    "ImportView",
    "Memory",
    "Nothing",
    "Observation",
    "Promote",
    "Refuse",
    "Rollback",
    "SolutionSchedule",
    "SolutionView",
    "Stop",
    "Train",
    "UpdateView",
    "VersionView",
    "Wait",
    "check_conflicts",
    "decide",
]
