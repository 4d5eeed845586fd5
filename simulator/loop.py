"""A deterministic asyncio event loop on virtual time (the idea of the ``looptime`` library).

``time()`` returns a virtual clock that starts at 0. When no callback is ready, the loop does not
wait: it jumps the clock straight to the next timer. Hours of polling, backoff and leases pass in
milliseconds, and the order of events depends only on the program (no threads, no real clock).

The selector still sees real file descriptors (the loop's own self-pipe), polled without waiting.
A callback arriving from another thread (``call_soon_threadsafe``) would make a history depend on
real time: the loop counts such calls (``threadsafe_calls``) so a run can refuse them.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


class Deadlock(RuntimeError):
    """Nothing is ready and no timer is set: every task waits for ever."""


class _VirtualSelector(selectors.DefaultSelector):
    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if events or timeout == 0:
            return events
        assert self.loop is not None
        if timeout is None:
            raise Deadlock("no task can ever run again (nothing ready, no timer set)")
        self.loop.advance(timeout)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector loop whose clock is virtual and jumps to the next timer when idle."""

    def __init__(self) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = 0.0
        self.threadsafe_calls = 0
        self._clock_resolution = 1e-9

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds

    def call_soon_threadsafe(  # type: ignore[override]
        self, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.Handle:
        self.threadsafe_calls += 1
        return super().call_soon_threadsafe(callback, *args, context=context)


def run(main: Coroutine[Any, Any, _T]) -> tuple[_T, VirtualTimeLoop]:
    """Run ``main`` to completion on a fresh virtual-time loop; returns its result and the loop."""
    loop = VirtualTimeLoop()
    try:
        asyncio.set_event_loop(loop)
        result = loop.run_until_complete(main)
        # Let cancelled tasks finish their clean-up (they are severed: it has no effect).
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        return result, loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()
