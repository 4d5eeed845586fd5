"""A process that stages sources and can be killed at any moment (the staging crash test).

    python -m tests.helpers.staging_child '{"ledger": ..., "endpoint": ..., "area": [region,
        bucket, prefix], "sources": [[source, md5 or null], ...]}'

Prints ``ready`` once its Stager is open, one JSON line per source staged (``uri``, ``size``,
``reused``), then ``orphans N`` after :meth:`Stager.abort_orphans`, and exits 0. Staged with
:data:`tests.helpers.staging_s3.SMALL`'s limits (64 KiB parts).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio

from async_refimport.staging import Stager, StagingArea
from tests.helpers.staging_s3 import SMALL


async def main(spec: dict[str, Any]) -> None:
    """Stage every source of ``spec`` in turn, then abort the area's orphans."""
    region, bucket, prefix = spec["area"]
    area = StagingArea(str(region), str(bucket), str(prefix))
    endpoint = str(spec["endpoint"])
    async with Stager(str(spec["ledger"]), limits=SMALL) as stager:
        print("ready", flush=True)
        for source, md5 in spec["sources"]:
            staged = await stager.stage(source, area, md5=md5, endpoint_url=endpoint)
            print(
                json.dumps({"uri": staged.uri, "size": staged.size, "reused": staged.reused}),
                flush=True,
            )
        print(f"orphans {await stager.abort_orphans(area, endpoint_url=endpoint)}", flush=True)


if __name__ == "__main__":
    anyio.run(main, json.loads(sys.argv[1]))
