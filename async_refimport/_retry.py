"""The one owner of retries: a tenacity policy shared by every API call.

botocore's own retries are switched off (``total_max_attempts=1``) so that attempts don't multiply;
tenacity retries :class:`~async_refimport.TransientServiceError` with full-jitter exponential backoff,
bounded both by attempts and by elapsed time.

The lane's Start loop makes richer decisions than "retry or not" (look for the job first, confirm a
busy store, pause), so it acts on its own decision values; :func:`backoff_delay` and
:func:`gave_up` give it the same backoff and bounds as :func:`retrying`.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from async_refimport._errors import TransientServiceError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to retry one API call.

    Attributes:
        attempts: Attempts in all, the first included.
        max_elapsed: Give up once this many seconds have passed since the first attempt.
        initial: The backoff's scale: attempt n waits uniformly in [0, initial * 2**n].
        max_backoff: The longest single wait.
    """

    attempts: int = 8
    max_elapsed: float = 300.0
    initial: float = 0.25
    max_backoff: float = 20.0


OnRetry = Callable[[int, BaseException, float], None]
"""Called before each backoff sleep with (attempt number, error, delay)."""


def retrying(
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    on_retry: OnRetry | None = None,
) -> AsyncRetrying:
    """A tenacity loop for one call: ``async for attempt in retrying(p): with attempt: ...``.

    Only :class:`TransientServiceError` is retried; anything else propagates at once, and the last
    transient error propagates as itself (not as ``RetryError``) once the policy gives up.
    """

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is None or state.outcome is None:
            return
        error = state.outcome.exception()
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        if error is not None:
            on_retry(state.attempt_number, error, delay)

    return AsyncRetrying(
        retry=retry_if_exception_type(TransientServiceError),
        wait=wait_random_exponential(multiplier=policy.initial, max=policy.max_backoff),
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.max_elapsed),
        sleep=sleep,
        reraise=True,
        before_sleep=before_sleep,
    )


def backoff_delay(
    policy: RetryPolicy, attempt: int, *, draw: Callable[[], float] = random.random
) -> float:
    """The wait before retry number ``attempt`` (1-based): full jitter, as :func:`retrying` waits.

    Uniform in ``[0, min(max_backoff, initial * 2**(attempt - 1))]``; ``draw`` gives the uniform
    [0, 1) variate (injectable for tests).
    """
    high = min(policy.max_backoff, policy.initial * 2.0 ** max(0, attempt - 1))
    return high * draw()


def gave_up(policy: RetryPolicy, attempts: int, elapsed: float) -> bool:
    """Whether ``attempts`` failed attempts over ``elapsed`` seconds exhaust ``policy``."""
    return attempts >= policy.attempts or elapsed >= policy.max_elapsed
