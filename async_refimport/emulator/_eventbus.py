"""Job status events, sent as HealthOmics sends them: to EventBridge, best effort.

HealthOmics emits a "Reference Import Job Status Change" event (source ``aws.omics``) on the
default event bus of the job's account and Region whenever an import job changes status. The
emulator puts the same events into an EventBridge endpoint — its embedded moto server by default —
so a user's rule and SQS queue receive them as on AWS. Faults can drop, duplicate or delay a share
of them (delays reorder them), as best-effort delivery may.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from .._log import get_logger
from ._faults import Faults

log = get_logger(__name__)

__all__ = ["DETAIL_TYPE", "EVENT_SOURCE", "EventPublisher"]

#: The event's ``source`` and ``detail-type``, as HealthOmics documents them.
EVENT_SOURCE = "aws.omics"
DETAIL_TYPE = "Reference Import Job Status Change"
OMICS_VERSION = "1.0.0"
#: Counters of ``stats()["events"]`` ("withheld": status changes AWS sends no event for, a
#: cancellation unless ``Unknowns.cancel_events``).
EVENT_COUNTERS = ("published", "dropped", "duplicated", "failed", "withheld")


class EventPublisher:
    """Puts job status events into EventBridge (one client per Region), in background tasks.

    Args:
        endpoint_url: The EventBridge endpoint (the embedded moto server's URL).
        credentials: (key id, secret) to sign with; ``None`` uses the default chain.
        faults: Returns the current fault settings (drops, duplicates, delays).
    """

    def __init__(
        self,
        endpoint_url: str,
        credentials: tuple[str, str] | None,
        faults: Callable[[], Faults],
    ) -> None:
        self.endpoint_url = endpoint_url
        self._credentials = credentials
        self._faults = faults
        self._seeded: Faults | None = None
        self._rng = random.Random(0)
        self._stack = AsyncExitStack()
        self._clients: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.counters: Counter[str] = Counter()

    async def aclose(self) -> None:
        """Cancel events still on their way and close the clients."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._stack.aclose()
        self._clients.clear()

    def reset(self) -> None:
        """Drop events on their way and zero the counters (the clients are kept)."""
        for task in list(self._tasks):
            task.cancel()
        self.counters.clear()
        self._seeded = None

    def publish(
        self, *, region: str, job_id: str, store_id: str, status: str, message: str | None
    ) -> None:
        """Send one status change (returns at once; delivery happens in the background)."""
        faults = self._faults()
        if faults is not self._seeded:
            # Reseeded whenever faults change, so runs with one seed see the same deliveries.
            self._rng, self._seeded = random.Random(faults.seed + 1), faults
        if faults.p_event_drop and self._rng.random() < faults.p_event_drop:
            self.counters["dropped"] += 1
            return
        copies = 1
        if faults.p_event_duplicate and self._rng.random() < faults.p_event_duplicate:
            copies = 2
            self.counters["duplicated"] += 1
        detail: dict[str, Any] = {
            "omicsVersion": OMICS_VERSION,
            "id": job_id,
            "referenceStoreId": store_id,
            "status": status,
        }
        if message:
            detail["statusMessage"] = message
        for _ in range(copies):
            task = asyncio.get_running_loop().create_task(
                self._send(region, detail, self._delay(faults))
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _delay(self, faults: Faults) -> float:
        delay = faults.event_delay
        if isinstance(delay, tuple):
            low, high = delay
            return self._rng.uniform(low, high) if high > 0 else 0.0
        return float(delay)

    async def _send(self, region: str, detail: dict[str, Any], delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            client = await self._client(region)
            response = await client.put_events(
                Entries=[
                    {
                        "Source": EVENT_SOURCE,
                        "DetailType": DETAIL_TYPE,
                        "Detail": json.dumps(detail),
                        "Resources": [],
                    }
                ]
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # best effort, like the service: a lost event is not an error
            self.counters["failed"] += 1
            log.debug("emulator.event.failed", job_id=detail["id"], error=str(exc))
            return
        if response.get("FailedEntryCount"):
            self.counters["failed"] += 1
        else:
            self.counters["published"] += 1

    async def _client(self, region: str) -> Any:
        client = self._clients.get(region)
        if client is not None:
            return client
        async with self._lock:
            client = self._clients.get(region)
            if client is None:
                import aioboto3

                creds: dict[str, str] = {}
                if self._credentials is not None:
                    key, secret = self._credentials
                    creds = {"aws_access_key_id": key, "aws_secret_access_key": secret}
                client = await self._stack.enter_async_context(
                    aioboto3.Session().client(
                        "events", endpoint_url=self.endpoint_url, region_name=region, **creds
                    )
                )
                self._clients[region] = client
        return client
