"""``SqsClient.download_object`` against moto's S3: an object is copied into a file a chunk at a
time (never held whole), and one that is missing or too large is refused by its code."""

from __future__ import annotations

import tempfile

import anyio
import pytest

from async_refimport.aws.sqs import DOWNLOAD_CHUNK, ObjectUnavailable, SqsClient
from tests.helpers.fleet import Queues


async def test_an_object_is_copied_into_a_file_chunk_by_chunk(queues: Queues) -> None:
    text = "".join(f"ref{i},s3://genomes/ref{i}.fa\n" for i in range(120_000))
    assert len(text) > 3 * DOWNLOAD_CHUNK
    uri = await anyio.to_thread.run_sync(queues.put_manifest, "big/refs.csv", text)
    async with SqsClient(region="us-east-1") as sqs:
        with tempfile.TemporaryFile() as copy:
            copy.write(b"left over from an attempt before")
            size = await sqs.download_object(uri, copy, max_bytes=1 << 30)
            copy.seek(0)
            assert size == len(text) and copy.read() == text.encode()
        with tempfile.TemporaryFile() as copy, pytest.raises(ObjectUnavailable) as large:
            await sqs.download_object(uri, copy, max_bytes=DOWNLOAD_CHUNK)
        assert large.value.code == "TooLarge"
        with tempfile.TemporaryFile() as copy, pytest.raises(ObjectUnavailable) as missing:
            await sqs.download_object(uri + ".gone", copy, max_bytes=1 << 30)
        assert missing.value.code == "NoSuchKey"
