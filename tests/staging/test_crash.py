"""kill -9 at random moments while staging multi-part sources (issue 22's acceptance, the
library's half): after 20 kills and a last run, every object is complete and correct, no object
was uploaded or completed twice (counted by the S3 server itself), no multipart upload is left
open under the prefix, and the ledger holds no upload still in progress."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from async_refimport.staging import LedgerUpload, StagingArea, StagingLedger, UploadState
from tests.helpers.sources import SourceServer
from tests.helpers.staging_s3 import ROOT, StagingS3

KILLS = 20


def _noise(size: int, seed: int) -> bytes:
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def _child(spec: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.staging_child", json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", (line, proc.stderr.read() if proc.stderr else "")


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_kill_9_at_random_moments_then_one_complete_correct_object_each(
    staging_s3: StagingS3, source_server: SourceServer, tmp_path: Path
) -> None:
    area = StagingArea("eu-west-1", staging_s3.bucket("eu-west-1"), "crash/")
    web = _noise(3_000_000, 1)  # 46 parts of 64 KiB, read slowly: kills land mid-download
    url = source_server.add("/crash/web.fa.gz", web, chunk_delay=0.1)
    disk = _noise(4_000_000, 2)  # 62 parts
    path = tmp_path / "disk.fa"
    path.write_bytes(disk)
    copied = _noise(2_000_000, 3)  # over the copy threshold: 31 UploadPartCopy
    src_bucket = staging_s3.bucket("us-west-2")
    staging_s3.client("us-west-2").put_object(Bucket=src_bucket, Key="c/copied.fa", Body=copied)
    spec: dict[str, Any] = {
        "ledger": str(tmp_path / "journal.sqlite"),
        "endpoint": staging_s3.endpoint,
        "area": [area.region, area.bucket, area.prefix],
        "sources": [
            [url, None],
            [str(path), hashlib.md5(disk).hexdigest()],
            [f"s3://{src_bucket}/c/copied.fa", None],
        ],
    }
    rng = random.Random(22)
    cut_short = 0  # runs killed before they had staged every source
    for _ in range(KILLS):
        proc = _child(spec)
        try:
            _ready(proc)
            time.sleep(rng.uniform(0.0, 0.5))
        finally:
            proc.kill()
            out, _ = proc.communicate(timeout=60)
        cut_short += "orphans" not in out
    assert cut_short >= 3  # the kills did land while staging

    last = _child(spec)
    out, err = last.communicate(timeout=240)
    assert last.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == "ready" and lines[-1].startswith("orphans ")
    staged = [json.loads(line) for line in lines[1:-1]]
    s3 = staging_s3.client(area.region)
    for item, data in zip(staged, (web, disk, copied), strict=True):
        key = item["uri"].removeprefix(f"s3://{area.bucket}/")
        assert s3.get_object(Bucket=area.bucket, Key=key)["Body"].read() == data
        made = staging_s3.writes()
        name = f"{area.bucket}/{key}"
        # Made once, whichever run made it; never completed twice.
        assert made["put"].get(name, 0) + made["complete"].get(name, 0) == 1, (name, made)
    assert (
        s3.list_multipart_uploads(Bucket=area.bucket, Prefix=area.prefix).get("Uploads", []) == []
    )
    uploads = anyio.run(_ledger_uploads, Path(str(spec["ledger"])), area.bucket)
    assert not [u for u in uploads if u.state in (UploadState.UPLOADING, UploadState.COMPLETING)]
    assert {u.key for u in uploads if u.state is UploadState.COMPLETED} <= {
        i["uri"].removeprefix(f"s3://{area.bucket}/") for i in staged
    }


async def _ledger_uploads(path: Path, bucket: str) -> list[LedgerUpload]:
    async with StagingLedger(path) as ledger:
        return await ledger.uploads(bucket)
