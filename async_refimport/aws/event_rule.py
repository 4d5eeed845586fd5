"""``refimport events init``: the EventBridge rule and SQS queue that carry job status events.

HealthOmics sends "Reference Import Job Status Change" events to the default event bus of the
job's account and Region. :func:`create_event_queue` sets up what ``--events-queue-url`` listens
to, in one Region: an SQS queue, a rule matching those events, the queue policy that lets that
rule (and only it) send to the queue, and the rule's target. Every step is idempotent: running it
again finds what exists and puts the same rule, policy and target again.

Clients come from :class:`~async_refimport.aws.clients.ClientPool`; endpoints from the standard
variables (``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL_EVENTBRIDGE``): moto or LocalStack work
unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from async_refimport._errors import QueueError
from async_refimport.aws.clients import ClientPool, sdk_retries

__all__ = ["EVENT_PATTERN", "EventQueue", "create_event_queue", "queue_policy"]

#: The rule's event pattern: HealthOmics' reference import job status changes.
EVENT_PATTERN: dict[str, list[str]] = {
    "source": ["aws.omics"],
    "detail-type": ["Reference Import Job Status Change"],
}
_TARGET_ID = "refimport-events"
# Events are small and read within seconds; a day covers a worker down overnight.
_RETENTION_S = 86_400


@dataclass(frozen=True, slots=True)
class EventQueue:
    """What :func:`create_event_queue` set up.

    Attributes:
        queue_url: The queue to pass to ``--events-queue-url``.
        queue_arn: The queue's ARN.
        rule_arn: The rule's ARN.
        created: Whether the queue was new (False: it existed and was brought up to date).
    """

    queue_url: str
    queue_arn: str
    rule_arn: str
    created: bool


def queue_policy(queue_arn: str, rule_arn: str) -> str:
    """The queue's access policy: the rule, and nothing else, may send to it.

    Args:
        queue_arn: The queue's ARN.
        rule_arn: The rule's ARN.

    Returns:
        The policy document, as JSON.
    """
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "refimport-events-rule",
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
    )


async def create_event_queue(
    name: str, *, region: str | None = None, profile: str | None = None
) -> EventQueue:
    """Create (or bring up to date) the queue ``name`` and the rule ``name`` feeding it.

    Args:
        name: The queue's and the rule's name.
        region: The Region (default: the AWS configuration).
        profile: The AWS profile (default: the standard credentials chain).

    Returns:
        What was set up.

    Raises:
        QueueError: a step was refused (access denied, no credentials, a bad name), with the
            step's error code.
    """
    url = ""
    async with ClientPool() as pool:
        try:
            # A one-shot set-up with no retry loop of its own: botocore's retries stay on.
            sqs = await pool.client("sqs", region=region, profile=profile, config=sdk_retries())
            events = await pool.client(
                "events", region=region, profile=profile, config=sdk_retries()
            )
            url, created = await _queue(sqs, name)
            attrs = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            queue_arn = str(attrs["Attributes"]["QueueArn"])
            rule: dict[str, Any] = await events.put_rule(
                Name=name,
                EventPattern=json.dumps(EVENT_PATTERN),
                State="ENABLED",
                Description="HealthOmics reference import job status changes, for refimport",
            )
            rule_arn = str(rule["RuleArn"])
            await sqs.set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": queue_policy(queue_arn, rule_arn)}
            )
            await events.put_targets(Rule=name, Targets=[{"Id": _TARGET_ID, "Arn": queue_arn}])
        except botocore.exceptions.ClientError as exc:
            raise QueueError(
                f"setting up the events queue {name!r}: {_code(exc)}: {_message(exc)}",
                queue_url=url or name,
                code=_code(exc),
            ) from exc
        except botocore.exceptions.BotoCoreError as exc:  # no credentials, unknown profile ...
            raise QueueError(
                f"setting up the events queue {name!r}: {exc}",
                queue_url=url or name,
                code=type(exc).__name__,
            ) from exc
    return EventQueue(url, queue_arn, rule_arn, created)


async def _queue(sqs: Any, name: str) -> tuple[str, bool]:
    """The URL of the queue ``name``, made if it does not exist; and whether it was made."""
    try:
        return str((await sqs.get_queue_url(QueueName=name))["QueueUrl"]), False
    except botocore.exceptions.ClientError as exc:
        if _code(exc) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise
    made = await sqs.create_queue(
        QueueName=name, Attributes={"MessageRetentionPeriod": str(_RETENTION_S)}
    )
    return str(made["QueueUrl"]), True


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _message(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "") or exc)
