"""Status vocabulary and transitions of the control-plane resources (pure).

The wire values contain a space (contract §8.2): ``CREATE PENDING`` →
``CREATE IN_PROGRESS`` → ``ACTIVE`` or ``CREATE FAILED``. Solution versions add the stop
path: ``CREATE PENDING`` → ``CREATE STOPPED`` and ``CREATE IN_PROGRESS`` →
``CREATE STOPPING`` → ``CREATE STOPPED`` (DG stop-solution-version). A campaign update
(``latestCampaignUpdate.status``) uses the campaign's list. Delete* moves a resource to
``DELETE PENDING`` → ``DELETE IN_PROGRESS``, after which it is gone (Describe answers
ResourceNotFoundException); the model lists these two for dataset groups, datasets,
solutions, campaigns and event trackers, and the stand-in uses them for filters too.

Every transition is a function of the persisted status alone, so a restarted server
resumes each resource from where it stood.
"""

from __future__ import annotations

from typing import Final

PENDING: Final = "CREATE PENDING"
IN_PROGRESS: Final = "CREATE IN_PROGRESS"
ACTIVE: Final = "ACTIVE"
FAILED: Final = "CREATE FAILED"
STOPPING: Final = "CREATE STOPPING"
STOPPED: Final = "CREATE STOPPED"
DELETE_PENDING: Final = "DELETE PENDING"
DELETE_IN_PROGRESS: Final = "DELETE IN_PROGRESS"

#: Statuses after which nothing happens to the resource any more.
TERMINAL: Final = frozenset({ACTIVE, FAILED, STOPPED})
#: Statuses that count against "resources with PENDING or IN_PROGRESS status" limits.
BUSY: Final = frozenset({PENDING, IN_PROGRESS, STOPPING})
#: Statuses of a resource on its way out (it still exists, and still blocks its parent's deletion).
DELETING: Final = frozenset({DELETE_PENDING, DELETE_IN_PROGRESS})

_NEXT: Final = {PENDING: IN_PROGRESS, IN_PROGRESS: ACTIVE, STOPPING: STOPPED}


def next_status(status: str) -> str | None:
    """The status a resource moves to when its current step completes without failure."""
    return _NEXT.get(status)


def next_delete_status(status: str) -> str | None:
    """DELETE PENDING → DELETE IN_PROGRESS; None after that (the resource is then removed)."""
    return DELETE_IN_PROGRESS if status == DELETE_PENDING else None


def stop_transition(status: str) -> str | None:
    """StopSolutionVersionCreation: the status to set now, or None when it cannot stop."""
    if status == PENDING:
        return STOPPED
    if status == IN_PROGRESS:
        return STOPPING
    return None
