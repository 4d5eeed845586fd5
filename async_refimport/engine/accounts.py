"""An account done lets its clients go: a long fan-out holds clients only for the accounts still
working (issue 23).

Each account (a profile) has an omics client per Region, and an S3 client for its sources' checks:
about 1,300 objects each, which every full garbage collection walks, and their connections.
Once every store of a profile is idle with nothing of its own calling AWS
(:attr:`Lane.quiet <async_refimport.engine.lane.Lane.quiet>`), :class:`IdleAccounts` releases
those clients from the Importer's pool. More work for the account later makes new ones (its
session, and so its credentials, is kept); a request still in flight on a released client ends
as it would have (the pool closes it only after a linger).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import anyio

from async_refimport.aws.clients import ClientPool
from async_refimport.engine.lane import Lane

__all__ = ["LANE_SERVICES", "LINGER", "IdleAccounts"]

LANE_SERVICES = ("omics", "s3")
"""The services whose clients an account's lanes use (the gateway, the sources' checks)."""
LINGER = 90.0
"""Seconds a released client is kept for a request in flight on it (past the gateway's connect and
read timeouts)."""


class IdleAccounts:
    """Releases the lane clients of every profile whose stores are all quiet.

    Args:
        pool: The pool the lanes' clients come from.
        lanes: The Importer's lanes (read at each :meth:`check`).
        spawn: Runs a release in the background (the Importer's task group's ``start_soon``).
        scopes: The cancel scopes stopped with the lanes: a release lingering is among them
            while it lingers (stopping closes its clients at once).
        linger: Seconds between a release and the close of its clients (:data:`LINGER`).
    """

    def __init__(
        self,
        pool: ClientPool,
        lanes: Callable[[], Iterable[Lane]],
        spawn: Callable[..., Any],
        scopes: list[anyio.CancelScope],
        *,
        linger: float = LINGER,
    ) -> None:
        self._pool = pool
        self._lanes = lanes
        self._spawn = spawn
        self._scopes = scopes
        self._linger = linger

    def done(self) -> set[str | None]:
        """The profiles whose every store is quiet.

        Returns:
            Those profiles (``None``: the default chain's).
        """
        lanes = list(self._lanes())
        working = {lane.store.profile for lane in lanes if not lane.quiet}
        return {lane.store.profile for lane in lanes} - working

    def check(self) -> None:
        """Release the clients of the profiles done that still hold any (a lane changed)."""
        done = self.done()
        if not done or not self._pool.clients(profiles=done, services=LANE_SERVICES):
            return
        for profile in done:
            self._spawn(self._release, profile, name=f"release {profile or 'default'}")

    async def _release(self, profile: str | None) -> None:
        with anyio.CancelScope() as scope:
            self._scopes.append(scope)
            try:
                await self._pool.release(
                    profile=profile, services=LANE_SERVICES, linger=self._linger
                )
            finally:
                self._scopes.remove(scope)
