"""Run an :class:`Emulator` on its own event loop in a daemon thread, for sync code and tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self, TypeVar

from ._environment import EnvironmentPatch
from ._extra import MissingExtraError
from ._faults import Faults
from ._server import Emulator
from ._unknowns import Unknowns

T = TypeVar("T")


class EmulatorThread:
    """An :class:`Emulator` hosted in a daemon thread with its own event loop.

    Usable from synchronous code and from tests whose event loop changes per test:
    ``with EmulatorThread(time_scale=0.001) as emu: ...``. Accepts the same keyword
    arguments as :class:`Emulator`; its methods are synchronous.
    """

    def __init__(self, *, startup_timeout: float = 60.0, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._timeout = startup_timeout
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._emulator: Emulator | None = None
        self._error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the thread and wait until the emulator serves requests."""
        if self._thread is not None:
            raise RuntimeError("an EmulatorThread starts once")
        self._thread = threading.Thread(target=self._main, name="refimport-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._timeout):
            raise TimeoutError("the emulator did not start in time")
        if isinstance(self._error, MissingExtraError):
            # Its message is the whole story (which extra to install): no wrapper around it.
            raise self._error
        if self._error is not None:
            raise RuntimeError("the emulator failed to start") from self._error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the emulator (running jobs are cancelled) and join the thread."""
        if self._loop is not None and self._stop is not None and self._thread is not None:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with Emulator(**self._kwargs) as emu:
            self._emulator = emu
            self._ready.set()
            await self._stop.wait()

    # -- calls into the loop -------------------------------------------------------------

    @property
    def emulator(self) -> Emulator:
        """The hosted emulator (only touch it from its own loop)."""
        if self._emulator is None:
            raise RuntimeError("the emulator is not running")
        return self._emulator

    def _run(self, fn: Callable[[Emulator], Awaitable[T]], timeout: float = 30.0) -> T:
        emu = self.emulator
        assert self._loop is not None

        async def call() -> T:
            return await fn(emu)

        future: Future[T] = asyncio.run_coroutine_threadsafe(call(), self._loop)
        return future.result(timeout)

    def _run_sync(self, fn: Callable[[Emulator], T]) -> T:
        async def call(emu: Emulator) -> T:
            return fn(emu)

        return self._run(call)

    # -- the Emulator's face, synchronously ----------------------------------------------

    @property
    def omics_endpoint_url(self) -> str:
        """Base URL of the HealthOmics API."""
        return self.emulator.omics_endpoint_url

    @property
    def s3_endpoint_url(self) -> str:
        """Base URL of the S3 the sources are read from."""
        return self.emulator.s3_endpoint_url

    @property
    def events_endpoint_url(self) -> str | None:
        """Where job status events go (see :attr:`Emulator.events_endpoint_url`)."""
        return self.emulator.events_endpoint_url

    @property
    def region(self) -> str:
        """Region used by :meth:`client_kwargs`."""
        return self.emulator.region

    @property
    def faults(self) -> Faults:
        """Current fault settings (change them with :meth:`configure`)."""
        return self.emulator.faults

    def endpoints(self) -> dict[str, str]:
        """Endpoint URLs and Region, as the CLI prints them."""
        return self.emulator.endpoints()

    def client_kwargs(
        self, service: str = "omics", *, max_attempts: int | None = None
    ) -> dict[str, Any]:
        """See :meth:`Emulator.client_kwargs`."""
        return self.emulator.client_kwargs(service, max_attempts=max_attempts)

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """See :meth:`Emulator.environ`."""
        return self.emulator.environ(base)

    def configure_environment(self) -> EnvironmentPatch:
        """See :meth:`Emulator.configure_environment`."""
        return self.emulator.configure_environment()

    def stats(self) -> dict[str, Any]:
        """See :meth:`Emulator.stats`."""
        return self._run(lambda emu: emu.stats())

    def reset(self, *, settings: bool = False) -> None:
        """See :meth:`Emulator.reset`."""
        self._run(lambda emu: emu.reset(settings=settings))

    def forget_tokens(self) -> int:
        """See :meth:`Emulator.forget_tokens`."""
        return self._run_sync(lambda emu: emu.forget_tokens())

    def add_references(
        self, store_id: str, names: Iterable[str], *, source_prefix: str = "s3://elsewhere/"
    ) -> int:
        """See :meth:`Emulator.add_references`."""
        listed = list(names)
        return self._run_sync(
            lambda emu: emu.add_references(store_id, listed, source_prefix=source_prefix)
        )

    def cancel_job(self, job_id: str, reason: str | None = None) -> bool:
        """See :meth:`Emulator.cancel_job`."""
        return self._run_sync(lambda emu: emu.cancel_job(job_id, reason))

    @property
    def unknowns(self) -> Unknowns:
        """Current answers to what AWS does not document (change them with :meth:`configure`)."""
        return self.emulator.unknowns

    def config(self) -> dict[str, Any]:
        """See :meth:`Emulator.config`."""
        return self._run_sync(lambda emu: emu.config())

    def configure(
        self,
        *,
        faults: Faults | None = None,
        time_scale: float | None = None,
        token_ttl: float | None = None,
        store_quota: int | None = None,
        job_overhead: float | None = None,
        throughput: float | None = None,
        unknowns: Unknowns | None = None,
        same_region: bool | None = None,
    ) -> dict[str, Any]:
        """See :meth:`Emulator.configure`."""
        return self._run_sync(
            lambda emu: emu.configure(
                faults=faults,
                unknowns=unknowns,
                time_scale=time_scale,
                token_ttl=token_ttl,
                store_quota=store_quota,
                job_overhead=job_overhead,
                throughput=throughput,
                same_region=same_region,
            )
        )
