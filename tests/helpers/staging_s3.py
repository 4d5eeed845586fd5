"""moto's S3 in a process of its own for the staging tests: parts of any size, writes counted.

* moto's minimum part size (5 MiB, as S3's) is lowered to 1 KiB (``S3_UPLOAD_PART_MIN_SIZE``), so
  a multipart upload of a few hundred KiB has several parts and the tests stay small and fast;
* every request that makes an object (PutObject, CopyObject, CompleteMultipartUpload) and every
  CreateMultipartUpload answered 200 is counted per key: ``GET /_staging/writes`` gives
  ``{"put": {key: n}, "complete": {key: n}, "create": {key: n}}``, which is how a test proves
  that no object was uploaded or completed twice, across processes killed at any moment.

    with StagingS3() as s3:   # s3.endpoint, s3.writes(), s3.client("eu-west-1"), s3.bucket(...)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote

from async_refimport.staging import StagingLimits

ROOT = Path(__file__).resolve().parents[2]
MIN_PART = 1024

SMALL = StagingLimits(
    part_size=64 * 1024,
    parts_in_flight=3,
    parts_in_memory=6,
    copy_threshold=128 * 1024,
    copy_part_size=64 * 1024,
    copy_parts_in_flight=3,
    retry_delay=0.01,
)
"""Limits for tests: 64 KiB parts (the server's minimum is 1 KiB), copies of over 128 KiB in
parts, quick retries."""


class CountingS3:
    """WSGI middleware: counts the object-making S3 requests answered 200, per key."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.counts: dict[str, dict[str, int]] = {"put": {}, "complete": {}, "create": {}}
        self.created: dict[bytes, float] = {}  # upload id -> when it was created

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == "/_staging/writes":
            with self.lock:
                body = json.dumps(self.counts).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        kind = _kind(environ)
        if kind == "list_uploads":
            return [self._initiated(b"".join(self.app(environ, start_response)))]
        if kind is None:
            return self.app(environ, start_response)
        seen: list[str] = []

        def recording(status: str, headers: Any, *args: Any) -> Any:
            seen.append(status)
            return start_response(status, headers, *args)

        result = self.app(environ, recording)
        body = b"".join(result)
        # A CompleteMultipartUpload can fail inside a 200 (S3's own way): count only real ones.
        if seen and seen[0].startswith("200") and b"<Error>" not in body[:512]:
            key = unquote(path.lstrip("/"))
            with self.lock:
                self.counts[kind][key] = self.counts[kind].get(key, 0) + 1
                if kind == "create":
                    for upload_id in re.findall(rb"<UploadId>([^<]+)</UploadId>", body):
                        self.created[upload_id] = time.time()
        return [body]

    def _initiated(self, body: bytes) -> bytes:
        """ListMultipartUploads with each upload's real Initiated (moto answers one fixed date)."""

        def one(upload: re.Match[bytes]) -> bytes:
            found = re.search(rb"<UploadId>([^<]+)</UploadId>", upload[0])
            with self.lock:
                at = self.created.get(found[1]) if found else None
            stamp = datetime.fromtimestamp(at or time.time(), UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.000Z"
            )
            return re.sub(
                rb"<Initiated>[^<]*</Initiated>",
                f"<Initiated>{stamp}</Initiated>".encode(),
                upload[0],
            )

        return re.sub(rb"<Upload>.*?</Upload>", one, body, flags=re.S)


def _kind(environ: dict[str, Any]) -> str | None:
    method = environ.get("REQUEST_METHOD")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if (
        method == "PUT"
        and "partNumber" not in query
        and environ.get("PATH_INFO", "/").count("/") >= 2
    ):
        return "put"
    if method == "POST" and "uploadId" in query:
        return "complete"
    if method == "POST" and "uploads" in query:
        return "create"
    if method == "GET" and "uploads" in query:
        return "list_uploads"
    return None


def serve() -> None:
    """Run the server (``python -m tests.helpers.staging_s3``); prints its endpoint as JSON."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = CountingS3(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, True, request_handler=MotoRequestHandler)
    port = server.server_address[1]
    print(json.dumps({"endpoint": f"http://127.0.0.1:{port}"}), flush=True)
    server.serve_forever()


class StagingS3:
    """``with StagingS3() as s3:`` the counting moto S3 server, and helpers to use it."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.endpoint = ""

    def __enter__(self) -> StagingS3:
        env = dict(os.environ)
        env["S3_UPLOAD_PART_MIN_SIZE"] = str(MIN_PART)
        env["MOTO_S3_DEFAULT_KEY_BUFFER_SIZE"] = str(16 * 1024 * 1024)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.staging_s3"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            raise RuntimeError("moto's S3 server did not start")
        self.endpoint = str(json.loads(line)["endpoint"])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def writes(self) -> dict[str, dict[str, int]]:
        """The object-making requests answered so far, per kind and ``bucket/key``."""
        with urllib.request.urlopen(f"{self.endpoint}/_staging/writes", timeout=30) as answer:
            found: dict[str, dict[str, int]] = json.loads(answer.read())
        return found

    def client(self, region: str = "us-east-1") -> Any:
        """A blocking boto3 S3 client of ``region`` on this server (dummy credentials)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id="AKIAEMULATORTESTKEY0",
            aws_secret_access_key="emulator-secret-not-real",
        )

    def bucket(self, region: str, name: str | None = None) -> str:
        """A new bucket in ``region`` (a unique name unless given)."""
        name = name or f"b-{region}-{uuid.uuid4().hex[:12]}"
        config = (
            {}
            if region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        )
        self.client(region).create_bucket(Bucket=name, **config)
        return name


if __name__ == "__main__":
    serve()
