"""The worker's SQS flags, and the knobs of the intake's polling."""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SqsIntakeSettings:
    """How the intake polls.

    Attributes:
        wait_time: Seconds one long poll waits for messages (SQS allows 0..20).
        visibility_timeout: Seconds a received message stays hidden from other workers; extended
            every third of it while the message is being journaled.
        max_in_flight: Messages handled at once; the intake stops receiving beyond that.
        max_manifest_bytes: The largest manifest object read from S3.
        max_manifests: Manifest messages read and journaled at once (the others wait, hidden:
            each costs memory in proportion to its rows while it is checked); messages of rows
            given inline do not wait for them.
        retry_delay: Seconds a message that hit a transient failure stays hidden before it is
            delivered again (to any worker).
        error_backoff: Seconds between receives while the queue cannot be reached.

    Raises:
        ValueError: a value is outside what SQS allows.
    """

    wait_time: int = 20
    visibility_timeout: int = 60
    max_in_flight: int = 20
    max_manifest_bytes: int = 256 * 1024 * 1024
    max_manifests: int = 1
    retry_delay: int = 10
    error_backoff: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.wait_time <= 20:
            raise ValueError("wait_time must be 0..20 seconds (the SQS limit)")
        if not 2 <= self.visibility_timeout <= 43_200:
            raise ValueError("visibility_timeout must be 2..43200 seconds")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if self.max_manifests < 1:
            raise ValueError("max_manifests must be at least 1")


@dataclass(frozen=True, slots=True)
class SqsOptions:
    """The worker's SQS flags.

    Attributes:
        queue_url: The queue of requests (None: no SQS intake).
        results_queue_url: Where each message's result document goes (None: none).
        intake: Polling knobs.
        outbox_interval: Seconds between looks for result documents that are due.
    """

    queue_url: str | None = None
    results_queue_url: str | None = None
    intake: SqsIntakeSettings = SqsIntakeSettings()
    outbox_interval: float = 10.0

    @property
    def enabled(self) -> bool:
        """Whether either queue is given (the worker then runs the SQS side)."""
        return self.queue_url is not None or self.results_queue_url is not None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the worker's SQS flags to its parser, as a group of their own.

    Args:
        parser: The worker's parser.
    """
    group = parser.add_argument_group(
        "SQS (endpoint from AWS_ENDPOINT_URL_SQS; S3 manifests from AWS_ENDPOINT_URL_S3)"
    )
    group.add_argument("--sqs-queue-url", help="take requests from this SQS queue (long poll)")
    group.add_argument(
        "--results-queue-url", help="send each message's result document to this SQS queue"
    )
    group.add_argument(
        "--sqs-wait", type=int, default=20, help="seconds of one long poll (0..20, default 20)"
    )
    group.add_argument(
        "--sqs-visibility-timeout",
        type=int,
        default=60,
        help="seconds a received message stays hidden, extended while it is journaled (default 60)",
    )
    group.add_argument(
        "--outbox-interval",
        type=float,
        default=10.0,
        help="seconds between looks for result documents due from any worker (default 10)",
    )


def options_from_args(args: argparse.Namespace) -> SqsOptions:
    """The SQS options from parsed flags.

    Args:
        args: What the worker's parser parsed.

    Returns:
        The options.

    Raises:
        ValueError: a flag's value is outside what SQS allows.
    """
    return SqsOptions(
        queue_url=args.sqs_queue_url,
        results_queue_url=args.results_queue_url,
        intake=SqsIntakeSettings(
            wait_time=args.sqs_wait,
            visibility_timeout=args.sqs_visibility_timeout,
            retry_delay=min(10, args.sqs_visibility_timeout),
        ),
        outbox_interval=args.outbox_interval,
    )
