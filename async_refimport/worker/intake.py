"""The worker's intakes are pluggable: what an intake is, what it is built from, and the factories
of the three the worker ships (``worker/intakes/``: spool directory, HTTP API, SQS).

An intake is anything with the :class:`Intake` shape (saq/arq-style), built by an
:data:`IntakeFactory` from an :class:`IntakeContext` and run in the worker's task group until
cancelled. The intakes never import each other nor this module: the shape is structural.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio.abc

from async_refimport._metrics import WorkerMetrics
from async_refimport.engine.importer import Importer
from async_refimport.manifest.reader import ManifestDefaults
from async_refimport.worker.config import WorkerConfig, split_grace
from async_refimport.worker.intakes.http import HttpIntake
from async_refimport.worker.intakes.spool import Spool, SpoolOutcome
from async_refimport.worker.intakes.sqs.service import SqsService


class Intake(Protocol):
    """A way work reaches the worker (spool directory, HTTP API, a queue...)."""

    @property
    def ready(self) -> bool:
        """Whether it takes work now (``/readyz``)."""

    def describe(self) -> dict[str, Any]:
        """Keys of the worker's start-up line (``{"http": url}``).

        Returns:
            What the worker announces about this intake.
        """

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Report started once taking work, then run until cancelled.

        Args:
            task_status: Told once the intake takes work.
        """


@dataclass(frozen=True, slots=True)
class IntakeContext:
    """What an intake is built from.

    Attributes:
        importer: The worker's open Importer.
        config: The worker's configuration.
        metrics: The worker's metrics.
        defaults: Field values for rows that leave them out, the Region resolved.
        ready: The worker's readiness as a whole.
    """

    importer: Importer
    config: WorkerConfig
    metrics: WorkerMetrics
    defaults: ManifestDefaults
    ready: Callable[[], bool]


#: Builds one intake for a running worker.
IntakeFactory = Callable[[IntakeContext], Intake]


def spool_intake(ctx: IntakeContext) -> Intake:
    """The spool directory of ``--spool``.

    Args:
        ctx: What the intake is built from (``ctx.config.spool`` is set).

    Returns:
        The spool, counting each file filed in the worker's metrics.
    """
    assert ctx.config.spool is not None

    def filed(outcome: SpoolOutcome) -> None:
        ctx.metrics.spool_files.labels(outcome.destination).inc()

    return Spool(
        ctx.config.spool,
        ctx.importer,
        ctx.defaults,
        scan_interval=ctx.config.scan_interval,
        on_filed=filed,
    )


def http_intake(ctx: IntakeContext) -> Intake:
    """The HTTP API of ``--http-host``/``--http-port``.

    Args:
        ctx: What the intake is built from (``ctx.config.http_port`` is set).

    Returns:
        The HTTP intake, given its share of the grace period to close.
    """
    cfg = ctx.config
    assert cfg.http_port is not None
    _, close_timeout = split_grace(cfg.grace)
    return HttpIntake(
        ctx.importer,
        ctx.metrics,
        ctx.defaults,
        ctx.ready,
        host=cfg.http_host,
        port=cfg.http_port,
        token=cfg.token,
        close_timeout=close_timeout,
        remote=cfg.remote,
    )


def sqs_intake(ctx: IntakeContext) -> Intake:
    """The SQS queues of ``--sqs-queue-url`` and ``--results-queue-url``.

    Args:
        ctx: What the intake is built from.

    Returns:
        The SQS intake and result sender.
    """
    return SqsService(
        ctx.importer,
        ctx.config.sqs,
        ctx.defaults,
        registry=ctx.metrics.registry,
        remote=ctx.config.remote,
    )


def intakes_for(config: WorkerConfig) -> list[IntakeFactory]:
    """The intakes a configuration asks for.

    Args:
        config: The worker's configuration.

    Returns:
        Their factories: spool, HTTP, SQS, each when configured.
    """
    factories: list[IntakeFactory] = []
    if config.spool is not None:
        factories.append(spool_intake)
    if config.http_port is not None:
        factories.append(http_intake)
    if config.sqs.enabled:
        factories.append(sqs_intake)
    return factories
