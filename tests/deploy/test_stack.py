"""The fleet's stack deployed to moto's CloudFormation, then a ``refimport worker`` run as the
stack's task definition runs it, against the stack's table and queues: rows sent through the
request queue end IMPORTED, the job status events reach the worker through the stack's rule and
queue, and every message gets its result document.

The stack goes to the moto server embedded in the emulator: HealthOmics job status events are
published to that moto's EventBridge, so the stack's rule is the one that routes them to the
stack's events queue. moto's CloudFormation creates every resource of the template but the
CloudWatch alarms and the SQS queue policy (types it does not model: it skips them with a
warning), and it ignores the table's ``TimeToLiveSpecification``; those are checked against the
code in ``test_template.py`` and by cfn-lint. The ECS service is created (moto runs no task):
the worker runs here as a process, with the container's command taken from the deployed task
definition.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from async_refimport.aws.event_rule import EVENT_PATTERN
from async_refimport.emulator import EmulatorThread
from async_refimport.journal.dynamo import layout_problem
from tests.deploy.template import TEMPLATE, load_template
from tests.helpers.fleet_harness import read_announcement
from tests.helpers.integration import create_store, genomes

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
# moto's CloudFormation creates no resource of these types (and says so in a warning).
NOT_MODELLED = {"AWS::CloudWatch::Alarm", "AWS::SQS::QueuePolicy"}
# The emulator's moto runs in this process: its warning about them must not become an error
# (pytest's filterwarnings), which moto would answer as a 500.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Tried to parse .* not supported by moto.s CloudFormation implementation:UserWarning"
)


@dataclass
class Stack:
    """A deployed stack: its name, outputs and the endpoint of the moto that holds it."""

    name: str
    endpoint: str
    outputs: dict[str, str]

    def client(self, service: str) -> Any:
        """A boto3 client of the stack's moto."""
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)  # type: ignore[call-overload]

    def container(self) -> dict[str, Any]:
        """The worker's container definition, as ECS would run it."""
        ecs = self.client("ecs")
        task = ecs.describe_task_definition(taskDefinition=self.outputs["TaskDefinitionArn"])
        [container] = task["taskDefinition"]["containerDefinitions"]
        return dict(container)

    def messages(self, queue_url: str) -> list[dict[str, Any]]:
        """Receive (and delete) every message available on a queue now, bodies parsed."""
        sqs = self.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if not got:
                return out
            for message in got:
                out.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def depth(self, queue_url: str) -> int:
        """Messages on a queue, visible or in flight."""
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )


def _wait_for_stack(cloudformation: Any, name: str, within: float = 120) -> dict[str, Any]:
    """The stack once it has left CREATE_IN_PROGRESS."""
    deadline = time.monotonic() + within
    while True:
        [stack] = cloudformation.describe_stacks(StackName=name)["Stacks"]
        if stack["StackStatus"] != "CREATE_IN_PROGRESS" or time.monotonic() > deadline:
            return dict(stack)
        time.sleep(0.5)


@pytest.fixture
def store(emulator: EmulatorThread) -> str:
    return create_store(emulator, REGION)


@contextmanager
def deployed(emulator: EmulatorThread, store: str, **overrides: str) -> Iterator[Stack]:
    """The template deployed, with the emulator's store and source buckets as parameters
    (``overrides`` set others); deleted on exit."""
    endpoint = emulator.events_endpoint_url
    assert endpoint is not None, "the emulator publishes events to its embedded moto"
    tag = uuid.uuid4().hex[:10]
    name = f"refimport-fleet-{tag}"
    parameters = {
        "WorkerImage": "refimport:test",
        "ReferenceStoreId": store,
        "SourceBucketNames": "genomes,refimport-manifests",
        "ManifestBucketName": "refimport-manifests",
        "JournalTableName": f"journal-{tag}",
        "QueuePrefix": f"fleet-{tag}",
        "SubnetIds": "subnet-0123456789abcdef0",
        "SecurityGroupIds": "sg-0123456789abcdef0",
        "DesiredCount": "2",
        **overrides,
    }
    cloudformation = boto3.client("cloudformation", endpoint_url=endpoint, region_name=REGION)
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=TEMPLATE.read_text(encoding="utf-8"),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    described = _wait_for_stack(cloudformation, name)
    assert described["StackStatus"] == "CREATE_COMPLETE", described
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    stack = Stack(name, endpoint, outputs)
    try:
        yield stack
    finally:
        # The rule would otherwise route later tests' events to this stack's queue.
        cloudformation.delete_stack(StackName=name)
        dynamodb = stack.client("dynamodb")
        try:  # retained by the stack, as a journal must be
            dynamodb.delete_table(TableName=outputs["JournalTableName"])
        except dynamodb.exceptions.ResourceNotFoundException:
            pass


@pytest.fixture
def stack(emulator: EmulatorThread, store: str) -> Iterator[Stack]:
    """The whole fleet's stack, ECS service included."""
    with deployed(emulator, store) as made:
        yield made


def _created(stack: Stack) -> dict[str, str]:
    """The stack's resources moto created, by logical id (moto lists those it skipped, without
    a logical id)."""
    summaries = stack.client("cloudformation").list_stack_resources(StackName=stack.name)[
        "StackResourceSummaries"
    ]
    assert all(s["ResourceStatus"] == "CREATE_COMPLETE" for s in summaries)
    return {s["LogicalResourceId"]: s["ResourceType"] for s in summaries if s["LogicalResourceId"]}


def test_without_the_service_the_stack_is_the_queues_table_and_roles(
    emulator: EmulatorThread, store: str
) -> None:
    with deployed(emulator, store, DeployService="false") as stack:
        created = _created(stack)
        assert "Service" not in created and "Cluster" not in created
        assert {"JournalTable", "RequestQueue", "EventsRule", "WorkerRole"} <= set(created)
        assert "TaskDefinition" in created  # for `aws ecs run-task` on a cluster of yours
        assert "ServiceName" not in stack.outputs and "RequestQueueUrl" in stack.outputs


def _policy(stack: Stack, role_output: str, name: str) -> dict[str, Any]:
    """An inline policy of one of the stack's roles, as the stack resolved it."""
    role = stack.outputs[role_output].rsplit("/", 1)[1]
    document = stack.client("iam").get_role_policy(RoleName=role, PolicyName=name)
    text = document["PolicyDocument"]
    # moto keeps a CloudFormation policy as Python's repr of it (AWS::NoValue as None).
    parsed = ast.literal_eval(text) if isinstance(text, str) else text
    assert isinstance(parsed, dict)
    return parsed


def _table_arn(stack: Stack) -> str:
    """The ARN of the stack's journal table."""
    table = stack.client("dynamodb").describe_table(TableName=stack.outputs["JournalTableName"])
    return str(table["Table"]["TableArn"])


def _queue_arn(stack: Stack, output: str) -> str:
    """The ARN of one of the stack's queues."""
    attrs = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.outputs[output], AttributeNames=["QueueArn"]
    )
    return str(attrs["Attributes"]["QueueArn"])


def test_every_resource_moto_models_is_created(stack: Stack) -> None:
    created = _created(stack)
    expected = {
        logical: r["Type"]
        for logical, r in load_template()["Resources"].items()
        if r["Type"] not in NOT_MODELLED
    }
    assert created == expected
    assert set(stack.outputs) >= {
        "JournalTableName",
        "JournalUrl",
        "RequestQueueUrl",
        "ResultsQueueUrl",
        "EventsQueueUrl",
        "WorkerRoleArn",
        "HealthOmicsRoleArn",
        "ServiceName",
    }
    table = stack.client("dynamodb").describe_table(TableName=stack.outputs["JournalTableName"])
    assert layout_problem(table["Table"]) is None
    # `refimport journal init` takes the stack's table for a journal's (and leaves it be).
    init = subprocess.run(
        [sys.executable, "-m", "async_refimport", "journal", "init", stack.outputs["JournalUrl"]],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, AWS_ENDPOINT_URL_DYNAMODB=stack.endpoint, PYTHONPATH=str(ROOT)),
    )
    assert init.returncode == 0, init.stderr
    [rule] = [
        r
        for r in stack.client("events").list_rules()["Rules"]
        if r["Arn"] == stack.outputs["EventsRuleArn"]
    ]
    assert json.loads(rule["EventPattern"]) == EVENT_PATTERN
    attrs = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.outputs["RequestQueueUrl"], AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    dead_letters = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.outputs["RequestDeadLetterQueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    assert json.loads(attrs["RedrivePolicy"]) == {
        "deadLetterTargetArn": dead_letters,
        "maxReceiveCount": 10,
    }


def test_the_roles_policies_name_the_stacks_resources(stack: Stack, store: str) -> None:
    # The roles' policies as the stack resolved them: the service role reads each source
    # bucket (one ARN per name of the list parameter); the worker's name the stack's own table,
    # store and queues.
    [sources, *_] = _policy(stack, "HealthOmicsRoleArn", "read-sources")["Statement"]
    assert sources["Resource"] == ["arn:*:s3:::genomes/*", "arn:*:s3:::refimport-manifests/*"]
    worker = {
        s["Sid"]: s["Resource"]
        for s in _policy(stack, "WorkerRoleArn", "refimport-worker")["Statement"]
        if s
    }
    assert worker["Journal"][0] == _table_arn(stack)
    assert worker["ReferenceStores"][0].endswith(f":referenceStore/{store}")
    assert worker["Requests"] == _queue_arn(stack, "RequestQueueUrl")
    assert worker["Results"] == _queue_arn(stack, "ResultsQueueUrl")
    assert worker["Events"] == _queue_arn(stack, "EventsQueueUrl")


def _events(log: Path) -> list[dict[str, Any]]:
    """The worker's log lines (JSON), those that parse."""
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


@pytest.fixture
def run_worker(
    stack: Stack, emulator: EmulatorThread, tmp_path: Path
) -> Iterator[Callable[[], tuple[subprocess.Popen[str], dict[str, Any], Path]]]:
    """Start ``refimport worker`` with the deployed container's command, against the stack."""
    started: list[subprocess.Popen[str]] = []

    def start() -> tuple[subprocess.Popen[str], dict[str, Any], Path]:
        command = stack.container()["command"]
        assert command[0] == "worker"
        env = dict(
            os.environ,
            PYTHONUNBUFFERED="1",
            PYTHONPATH=str(ROOT),
            AWS_ENDPOINT_URL_DYNAMODB=stack.endpoint,
            AWS_ENDPOINT_URL_SQS=stack.endpoint,
            AWS_ENDPOINT_URL_S3=stack.endpoint,
        )
        log = tmp_path / "worker.log"
        with open(log, "w") as fh:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "async_refimport",
                    *command,
                    # What differs here from ECS: HealthOmics is the emulator, the port is any
                    # free one, and the waits are short (later flags win).
                    "--endpoint-url",
                    emulator.omics_endpoint_url,
                    "--http-port",
                    "0",
                    "--rescan-interval",
                    "0.5",
                    "--busy-wait",
                    "0.2",
                    "--api-rate",
                    "50",
                    "--sqs-wait",
                    "1",
                    "--outbox-interval",
                    "1",
                    "--log-level",
                    "debug",
                ],
                stdout=subprocess.PIPE,
                stderr=fh,
                text=True,
                env=env,
                cwd=tmp_path,
            )
        started.append(proc)
        return proc, read_announcement(proc, 90, log), log

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()


def _health_check(stack: Stack, http: str) -> int:
    """The container's health check command, run here against the worker's port."""
    port = http.rsplit(":", 1)[1]
    command = stack.container()["healthCheck"]["command"]
    assert command[0] == "CMD" and command[1] == "python"
    argv = [sys.executable, *(c.replace(":8080/", f":{port}/") for c in command[2:])]
    return subprocess.run(argv, capture_output=True, timeout=60).returncode


def _until(predicate: Callable[[], Any], within: float, what: Callable[[], str]) -> Any:
    """``predicate()`` once truthy; an AssertionError saying ``what()`` after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what()}")
        time.sleep(0.5)


def _send_requests(stack: Stack, items: list[tuple[str, str]], tag: str) -> set[str]:
    """Half the rows inline in one message, half in a manifest in S3 another points at; the
    messages' ids."""
    half = len(items) // 2
    manifest = "name,source_file\n" + "".join(f"{n},{u}\n" for n, u in items[half:])
    # The manifests' bucket is the user's (a parameter of the stack), not the stack's.
    s3 = stack.client("s3")
    try:
        s3.create_bucket(Bucket="refimport-manifests")
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    s3.put_object(Bucket="refimport-manifests", Key=f"{tag}.csv", Body=manifest.encode())
    bodies = [
        {"requests": [{"name": n, "source_file": u} for n, u in items[:half]]},
        {"manifest": f"s3://refimport-manifests/{tag}.csv"},
    ]
    sqs = stack.client("sqs")
    url = stack.outputs["RequestQueueUrl"]
    return {sqs.send_message(QueueUrl=url, MessageBody=json.dumps(b))["MessageId"] for b in bodies}


def _result_documents(stack: Stack, sent: set[str], log: Path) -> dict[str, dict[str, Any]]:
    """The result documents on the stack's results queue, by message id, once each message
    has one."""
    documents: list[dict[str, Any]] = []

    def all_answered() -> bool:
        documents.extend(stack.messages(stack.outputs["ResultsQueueUrl"]))
        return {d["message_id"] for d in documents} >= sent

    _until(all_answered, 300, lambda: f"a document per message; log:\n{log.read_text()[-4000:]}")
    return {d["message_id"]: d for d in documents}


def _references(emulator: EmulatorThread, store: str, prefix: str) -> list[str]:
    """The names in the emulator's store that start with ``prefix``, sorted."""
    # Signed with the environment's credentials, as the worker's were (the store's account).
    kwargs = emulator.client_kwargs()
    kwargs.pop("aws_access_key_id")
    kwargs.pop("aws_secret_access_key")
    omics = boto3.client("omics", **kwargs)
    pages = omics.get_paginator("list_references").paginate(referenceStoreId=store)
    return sorted(r["name"] for p in pages for r in p["references"] if r["name"].startswith(prefix))


def _status_counts(stack: Stack, store: str) -> dict[str, int]:
    """``refimport status --json`` on the stack's journal: the store's rows by state."""
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "async_refimport",
            "status",
            "--journal",
            stack.outputs["JournalUrl"],
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=dict(os.environ, AWS_ENDPOINT_URL_DYNAMODB=stack.endpoint, PYTHONPATH=str(ROOT)),
    )
    [counted] = [s for s in json.loads(status.stdout)["stores"] if s["store_id"] == store]
    return dict(counted["counts"])


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_worker_run_as_the_task_definition_imports_rows_through_the_stack(
    stack: Stack,
    run_worker: Callable[[], tuple[subprocess.Popen[str], dict[str, Any], Path]],
    emulator: EmulatorThread,
    s3_fasta: Callable[..., str],
    store: str,
) -> None:
    proc, announced, log = run_worker()
    # The container's health check passes once the worker takes work.
    _until(lambda: _health_check(stack, announced["http"]) == 0, 90, lambda: "/readyz 200")

    tag = uuid.uuid4().hex[:8]
    items = genomes(s3_fasta, 6, f"deploy-{tag}")
    sent = _send_requests(stack, items, tag)
    documents = _result_documents(stack, sent, log)
    assert set(documents) == sent
    for document in documents.values():
        assert document["summary"]["imported"] == 3 and document["summary"]["failed"] == 0
        assert {i["status"] for i in document["items"]} == {"IMPORTED"}
    answered = sorted(i["name"] for d in documents.values() for i in d["items"])
    assert answered == sorted(n for n, _ in items)

    # Nothing lost or left: the store holds every reference once, the queues are drained.
    assert _references(emulator, store, f"deploy-{tag}") == answered
    requests = stack.outputs["RequestQueueUrl"]
    _until(lambda: stack.depth(requests) == 0, 60, lambda: "the requests deleted")
    assert stack.depth(stack.outputs["RequestDeadLetterQueueUrl"]) == 0

    # The job status events came through the stack's rule and queue to the worker.
    def final_event_read() -> bool:
        return any(
            e.get("event") == "events.received" and e.get("status") == "COMPLETED"
            for e in _events(log)
        )

    _until(final_event_read, 60, lambda: "a final job status event from the events queue")

    # And the journal in the stack's table says the same, to `refimport status` on any host.
    assert _status_counts(stack, store)["IMPORTED"] == 6

    proc.terminate()
    assert proc.wait(90) == 0
