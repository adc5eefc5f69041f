"""AWS credentials for signing on the event loop without ever blocking it.

botocore's refreshable credentials (IRSA web identity, ECS task role, instance profile,
assumed roles) refresh inside `get_frozen_credentials()` when they come within 15 minutes
of expiry: an STS or metadata round trip, synchronous. Called on the event loop for every
signature, a slow STS stalled every call by seconds and STS down during that window
failed liveness. Here the loop only reads a snapshot; a background task asks botocore for
fresh credentials in a thread every `refresh_every_s`, so the refresh happens off the loop
and well ahead of expiry, and a failed refresh keeps the current credentials (still valid
for at least 10 minutes by botocore's rules) and is retried at the next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from botocore.exceptions import NoCredentialsError

log = structlog.get_logger(__name__)

#: How often credentials are re-read in a thread; botocore refreshes 15 minutes before expiry.
REFRESH_EVERY_S = 60.0


class CredentialCache:
    """The latest frozen credentials of a botocore credentials object, refreshed off the loop."""

    def __init__(self, credentials: Any, *, refresh_every_s: float = REFRESH_EVERY_S) -> None:
        self._credentials = credentials
        self._refresh_every_s = refresh_every_s
        self._frozen: Any = None
        self._task: asyncio.Task[None] | None = None
        self.refreshes = 0
        self.failures = 0

    async def start(self) -> None:
        """Read the credentials once (in a thread) and start refreshing them in the background."""
        if self._credentials is None:
            return
        await self._refresh()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="credential-refresh")

    def current(self) -> Any:
        """The snapshot to sign with; no I/O. Raises NoCredentialsError when there are none."""
        if self._frozen is None:
            raise NoCredentialsError()
        return self._frozen

    async def _refresh(self) -> None:
        try:
            self._frozen = await asyncio.to_thread(self._credentials.get_frozen_credentials)
            self.refreshes += 1
        except Exception as exc:  # noqa: BLE001 - keep signing with what we have; retried next interval
            self.failures += 1
            log.warning("credential refresh failed; keeping the current credentials", error_class=type(exc).__name__,
                        error=str(exc)[:300], retry_in_s=self._refresh_every_s)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_every_s)
            await self._refresh()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
