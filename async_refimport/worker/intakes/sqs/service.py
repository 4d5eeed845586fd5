"""The SQS side of a worker, as one of its intakes: the request intake and the result sender."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.abc
from prometheus_client import CollectorRegistry

from async_refimport.aws.sqs import SqsClient
from async_refimport.engine.importer import Importer
from async_refimport.manifest.reader import ManifestDefaults, RemoteLimits
from async_refimport.worker.intakes.sqs.intake import SqsIntake, check_queues
from async_refimport.worker.intakes.sqs.options import SqsOptions
from async_refimport.worker.intakes.sqs.outbox import ResultSender


class SqsService:
    """The SQS side of a worker: the intake (with a request queue) and the result sender.

    The sender runs in every worker given either queue: a result document is owed by the fleet,
    not by the worker that received the message.

    Args:
        importer: The worker's open Importer.
        options: The SQS flags.
        defaults: Field values for rows that leave them out.
        registry: The worker's Prometheus registry.
        remote: What a message's rows may set (never an endpoint or a profile).
    """

    def __init__(
        self,
        importer: Importer,
        options: SqsOptions,
        defaults: ManifestDefaults,
        *,
        registry: CollectorRegistry | None = None,
        remote: RemoteLimits | None = None,
    ) -> None:
        self.options = options
        self.sqs = SqsClient(region=defaults.region or importer.region, profile=defaults.profile)
        self.sender = ResultSender(
            importer,
            self.sqs,
            interval=options.outbox_interval,
            min_gap=min(1.0, options.outbox_interval),
            registry=registry,
        )
        self.intake: SqsIntake | None = None
        if options.queue_url is not None:
            self.intake = SqsIntake(
                importer,
                self.sqs,
                options.queue_url,
                defaults,
                results_queue_url=options.results_queue_url,
                settings=options.intake,
                on_journaled=self.sender.wake,
                registry=registry,
                remote=remote,
            )

    @property
    def queue_reachable(self) -> bool:
        """Whether the request queue answered its last receive (True without one)."""
        return self.intake is None or self.intake.reachable

    @property
    def journal_ok(self) -> bool:
        """Whether the journal answered the intake's and the sender's last calls."""
        return self.sender.journal_ok and (self.intake is None or self.intake.journal_ok)

    @property
    def ready(self) -> bool:
        """Taking work: the request queue and the journal answered their last calls."""
        return self.queue_reachable and self.journal_ok

    def describe(self) -> dict[str, Any]:
        """Keys of the worker's start-up line.

        Returns:
            ``{"sqs": request queue, "results": results queue}`` (None where not given).
        """
        return {"sqs": self.options.queue_url, "results": self.options.results_queue_url}

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Check the queues, then run until cancelled; the SQS client is closed on the way out.

        Args:
            task_status: Told once the queues are checked and both parts run.

        Raises:
            QueueError: at start-up, a queue does not exist or cannot be reached.
        """
        async with self.sqs, anyio.create_task_group() as tg:
            if self.intake is not None:
                await tg.start(self.intake.run)
            elif self.options.results_queue_url is not None:
                await check_queues(self.sqs, [self.options.results_queue_url])
            await tg.start(self.sender.run)
            task_status.started()
