"""An SQS message naming a manifest: the object is downloaded into a temporary file, checked whole,
and journaled a chunk at a time read again (never held whole), and manifests are read one at a time
while messages of inline rows go on; with fakes for S3 and the Importer."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

import anyio
import pytest

from async_refimport._application import SUBMIT_CHUNK
from async_refimport._errors import FieldError, ManifestError, RequestValidationError
from async_refimport._models import ImportRequest
from async_refimport.aws.sqs import Message
from async_refimport.manifest.reader import ManifestDefaults
from async_refimport.worker.intakes.sqs.intake import SqsIntake
from async_refimport.worker.intakes.sqs.messages import MessageBody, journal_manifest
from async_refimport.worker.intakes.sqs.options import SqsIntakeSettings
from tests.helpers.common import ROLE_ARN, STORE_ID

DEFAULTS = ManifestDefaults(store_id=STORE_ID, role_arn=ROLE_ARN, region="us-east-1")
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/requests"
URI = "s3://manifests/big.csv"


def manifest(rows: int, *, bad_line: int | None = None) -> bytes:
    lines = ["name,source_file"]
    for i in range(rows):
        source = "" if bad_line == i + 2 else f"s3://genomes/r{i}.fa"
        lines.append(f"ref{i},{source}")
    return ("\n".join(lines) + "\n").encode()


@dataclass
class FakeS3:
    """S3 objects by URI; records the deletes and the visibility changes of the intake."""

    objects: dict[str, bytes] = field(default_factory=dict)
    gate: anyio.Event | None = None
    deleted: list[str] = field(default_factory=list)
    deleting: anyio.Event = field(default_factory=anyio.Event)
    sent: list[str] = field(default_factory=list)

    async def download_object(self, uri: str, dest: IO[bytes], *, max_bytes: int) -> int:
        if self.gate is not None:
            await self.gate.wait()
        data = self.objects[uri]
        dest.write(data)
        dest.flush()
        return len(data)

    async def delete(self, queue_url: str, receipt_handle: str) -> None:
        self.deleted.append(receipt_handle)
        self.deleting.set()

    async def set_visibility(self, queue_url: str, receipt_handle: str, seconds: int) -> None:
        pass

    async def send(self, queue_url: str, body: str, *, dedup_id: str | None = None) -> str:
        self.sent.append(body)
        return "id"


@dataclass
class FakeImporter:
    """Records what is asked and journaled; ``conflicting`` names are journaled elsewhere."""

    conflicting: frozenset[str] = frozenset()
    region: str = "us-east-1"
    stopping: bool = False
    journal: Any = None
    asked: list[int] = field(default_factory=list)
    submitted: list[tuple[list[str], str | None]] = field(default_factory=list)

    async def conflicts(self, requests: Iterable[ImportRequest]) -> list[FieldError]:
        rows = list(requests)
        self.asked.append(len(rows))
        return [
            FieldError("name", "taken", row_name=r.name) for r in rows if r.name in self.conflicting
        ]

    async def submit(
        self, requests: Iterable[ImportRequest], *, submission: str | None = None
    ) -> list[int]:
        rows = list(requests)
        self.submitted.append(([r.name for r in rows], submission))
        start = sum(len(names) for names, _ in self.submitted[:-1])
        return list(range(start + 1, start + 1 + len(rows)))


async def journal(importer: FakeImporter, s3: FakeS3) -> list[int]:
    return await journal_manifest(
        importer,  # type: ignore[arg-type]
        s3,  # type: ignore[arg-type]
        MessageBody(manifest=URI),
        DEFAULTS,
        submission="m-1",
        max_bytes=1 << 30,
    )


async def test_a_big_manifest_is_journaled_a_chunk_at_a_time_under_the_message_id() -> None:
    rows = 2 * SUBMIT_CHUNK + 1
    importer = FakeImporter()
    ids = await journal(importer, FakeS3({URI: manifest(rows)}))
    assert ids == list(range(1, rows + 1))
    # Every chunk's conflicts asked (as it is checked) before the first chunk is journaled.
    assert importer.asked == [SUBMIT_CHUNK, SUBMIT_CHUNK, 1]
    assert [len(names) for names, _ in importer.submitted] == [SUBMIT_CHUNK, SUBMIT_CHUNK, 1]
    assert {submission for _, submission in importer.submitted} == {"m-1"}
    assert [n for names, _ in importer.submitted for n in names] == [f"ref{i}" for i in range(rows)]


async def test_a_bad_row_anywhere_rejects_the_message_before_anything_is_journaled() -> None:
    rows = SUBMIT_CHUNK + 10
    importer = FakeImporter()
    with pytest.raises(ManifestError) as caught:
        await journal(importer, FakeS3({URI: manifest(rows, bad_line=rows + 1)}))
    [error] = caught.value.errors
    assert (error.source, error.line, error.field) == (URI, rows + 1, "source_file")
    assert importer.submitted == []


async def test_a_name_taken_in_the_last_chunk_rejects_the_message_before_anything_is_journaled() -> (
    None
):
    rows = SUBMIT_CHUNK + 10
    importer = FakeImporter(conflicting=frozenset({f"ref{rows - 1}"}))
    with pytest.raises(RequestValidationError) as caught:
        await journal(importer, FakeS3({URI: manifest(rows)}))
    assert [e.row_name for e in caught.value.errors] == [f"ref{rows - 1}"]
    assert importer.submitted == []


async def test_manifests_are_read_one_at_a_time_while_inline_rows_go_on() -> None:
    s3 = FakeS3({URI: manifest(3), "s3://manifests/other.csv": manifest(2)}, gate=anyio.Event())
    importer = FakeImporter()
    intake = SqsIntake(
        importer,  # type: ignore[arg-type]
        s3,  # type: ignore[arg-type]
        QUEUE,
        DEFAULTS,
        settings=SqsIntakeSettings(max_manifests=1),
    )
    downloads = 0
    real = s3.download_object

    async def counted(uri: str, dest: IO[bytes], *, max_bytes: int) -> int:
        nonlocal downloads
        downloads += 1
        return await real(uri, dest, max_bytes=max_bytes)

    s3.download_object = counted  # type: ignore[method-assign]
    bodies = [
        json.dumps({"manifest": URI}),
        json.dumps({"manifest": "s3://manifests/other.csv"}),
        json.dumps({"requests": [{"name": "inline", "source_file": "s3://genomes/i.fa"}]}),
    ]
    async with anyio.create_task_group() as tg:
        for i, body in enumerate(bodies):
            intake._in_flight += 1  # as the receiving loop counts it
            tg.start_soon(intake._handle, Message(f"m-{i}", f"h-{i}", body))
        with anyio.fail_after(30):
            while "h-2" not in s3.deleted:
                s3.deleting = anyio.Event()
                await s3.deleting.wait()
        # The inline rows are journaled while the first manifest's download is held; the
        # second manifest has not even started downloading.
        assert downloads == 1
        assert [names for names, _ in importer.submitted] == [["inline"]]
        s3.gate.set()  # type: ignore[union-attr]
    assert sorted(s3.deleted) == ["h-0", "h-1", "h-2"]
    assert sorted(len(names) for names, _ in importer.submitted) == [1, 2, 3]
    assert intake.in_flight == 0
