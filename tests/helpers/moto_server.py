"""moto's server in a process of its own, with DynamoDB requests taken one at a time.

moto's threaded server runs requests concurrently, but its DynamoDB backend is not thread-safe: a
``TransactWriteItems`` deep-copies the table while another request changes it (``RuntimeError:
dictionary changed size during iteration``, answered as a 500), and two conditional writes racing
can both pass their conditions. DynamoDB itself serialises writes to an item; here every DynamoDB
request takes one lock, which gives the fleet the atomic conditional writes the journal relies on.
SQS (whose long polls wait for seconds) and S3 stay concurrent.

A process of its own also keeps moto's CPU work off the test process, which hosts the emulator.

moto also deep-copies the whole table before every ``TransactWriteItems``, to roll it back if a
condition fails: with a few thousand items that is a tenth of a second or more per transaction, and
the fleet's serialised server spends most of its time copying. :func:`fast_transactions` checks
the conditions first (requests are serialised, so nothing changes in between) and skips the copy
when they all hold; a transaction that will be cancelled takes moto's own path, copy included.

    python -m tests.helpers.moto_server          # prints {"endpoint": "http://127.0.0.1:PORT"}
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class SerializedDynamoDB:
    """WSGI middleware: one DynamoDB request at a time (the whole response inside the lock)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        #: Per DynamoDB operation: requests and seconds spent (``GET /_fleet/dynamodb``).
        self.usage: dict[str, list[float]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == "/_fleet/dynamodb":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(self.usage).encode()]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB"):
            return self.app(environ, start_response)
        with self.lock:
            began = time.perf_counter()
            result = self.app(environ, start_response)
            try:
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                used = self.usage.setdefault(target.split(".", 1)[-1], [0, 0.0])
                used[0] += 1
                used[1] += time.perf_counter() - began


def fast_transactions() -> None:
    """Patch moto's DynamoDB backend: no table copy for transactions whose conditions all hold.

    Safe only while DynamoDB requests are serialised (:class:`SerializedDynamoDB`). If moto's
    internals differ from what this expects, nothing is patched.
    """
    try:
        import moto.dynamodb.models as models
        from moto.dynamodb.comparisons import get_filter_expression
    except ImportError:  # pragma: no cover - a moto without these internals
        return
    backend_class = getattr(models, "DynamoDBBackend", None)
    original = getattr(backend_class, "transact_write_items", None)
    if backend_class is None or original is None or not hasattr(models, "copy"):
        return
    real_copy = models.copy

    class _NoCopy:
        @staticmethod
        def deepcopy(value: Any) -> Any:
            return value

    def conditions_hold(backend: Any, items: list[dict[str, Any]]) -> bool:
        seen: set[tuple[str, str]] = set()
        for entry in items:
            if len(entry) != 1:
                return False
            kind, op = next(iter(entry.items()))
            if kind not in ("ConditionCheck", "Put", "Delete", "Update"):
                return False
            table = backend.get_table(op["TableName"])
            if kind == "Put":
                attrs = op["Item"]
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            ident = (str(op["TableName"]), str(sorted(key.items())))
            if ident in seen:
                return False
            seen.add(ident)
            condition = op.get("ConditionExpression")
            if condition is not None:
                current = backend.get_item(op["TableName"], key)
                check = get_filter_expression(
                    condition,
                    op.get("ExpressionAttributeNames"),
                    op.get("ExpressionAttributeValues"),
                )
                if not check.expr(current):
                    return False
        return True

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        try:
            fast = len(transact_items) <= 100 and conditions_hold(self, transact_items)
        except Exception:  # let moto report whatever is wrong, its own way
            fast = False
        if not fast:
            return original(self, transact_items)  # type: ignore[no-any-return]
        models.copy = _NoCopy  # type: ignore[assignment]
        try:
            return original(self, transact_items)  # type: ignore[no-any-return]
        finally:
            models.copy = real_copy

    backend_class.transact_write_items = transact_write_items


def serve(host: str = "127.0.0.1", port: int = 0) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    fast_transactions()
    app = SerializedDynamoDB(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, port, app, True, request_handler=MotoRequestHandler)
    bound_host, bound_port = server.server_address[:2]
    print(json.dumps({"endpoint": f"http://{bound_host}:{bound_port}"}), flush=True)
    server.serve_forever()


class MotoProcess:
    """``with MotoProcess() as endpoint:`` a serialised moto server on 127.0.0.1."""

    def __init__(self, log: Path | None = None) -> None:
        self._log = log
        self._stderr: Any = None
        self.proc: subprocess.Popen[str] | None = None
        self.endpoint = ""

    def __enter__(self) -> str:
        self._stderr = open(self._log, "w") if self._log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.moto_server"],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            raise RuntimeError("moto's server did not start")
        self.endpoint = str(json.loads(line)["endpoint"])
        return self.endpoint

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
        if self._stderr not in (None, subprocess.DEVNULL):
            self._stderr.close()


if __name__ == "__main__":
    serve(*(sys.argv[1:2] or ["127.0.0.1"]), *(int(p) for p in sys.argv[2:3]))
