"""A child process for the crash test: imports a manifest, and may SIGKILL itself right after a
StartReferenceImportJob succeeded, before the job id reaches the journal (the worst moment)."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sys
from collections.abc import Sequence

import anyio

from async_refimport import (
    Importer,
    ImporterSettings,
    ImportRequest,
    PollingPolicy,
    RetryPolicy,
    StoreRef,
)
from async_refimport._pacing import Pacer
from async_refimport.gateway.aws import AwsGateway, SourceSpec


class CrashingGateway(AwsGateway):
    def __init__(self, p_crash: float, seed: int) -> None:
        super().__init__(
            pacer=Pacer(), retry=RetryPolicy(attempts=10, initial=0.02, max_backoff=0.3)
        )
        self._p = p_crash
        self._rng = random.Random(seed)

    async def start_import(
        self, store: StoreRef, role_arn: str, sources: Sequence[SourceSpec], client_token: str
    ) -> str:
        job_id = await super().start_import(store, role_arn, sources, client_token)
        if self._rng.random() < self._p:
            os.kill(os.getpid(), signal.SIGKILL)
        return job_id


async def main(journal: str, manifest: str, p_crash: float, seed: int) -> int:
    with open(manifest) as f:
        requests = [ImportRequest(**row) for row in json.load(f)]
    settings = ImporterSettings(
        max_sources_per_job=10,
        polling=PollingPolicy(first_poll=0.02, min_interval=0.01, max_interval=0.3),
        busy_wait=0.1,
        lease_ttl=1.0,
        lookup_margin=5.0,
        # A job written ahead moments before the kill is looked for this long before it is
        # sent again (the List may lag); the token also covers that window.
        consistency_grace=0.5,
    )
    async with Importer(journal, settings=settings, gateway=CrashingGateway(p_crash, seed)) as imp:
        results = await imp.wait(await imp.submit(requests))
    print(json.dumps({"done": len(results)}), flush=True)
    return 0


if __name__ == "__main__":
    # The test reads the engine's events (import_job.adopted) from this process's output.
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    sys.exit(anyio.run(main, sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
