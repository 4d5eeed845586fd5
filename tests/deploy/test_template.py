"""The deployment kit against the code: the template's table is the one ``refimport journal init``
creates, its rule and queue policy are those of ``refimport events init``, its worker role grants
the calls the code makes and no others; cfn-lint and hadolint find nothing."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import xform_name

from async_refimport.aws import event_rule
from async_refimport.journal.dynamo import create_table, layout_problem
from async_refimport.journal.dynamo.items import INDEX, TTL_ATTRIBUTE
from tests.deploy.template import (
    DOCKERFILE,
    ROOT,
    TEMPLATE,
    actions,
    load_template,
    parse,
    resource,
    statements,
)

PACKAGE = ROOT / "async_refimport"


def _table_shape(
    table: Mapping[str, Any], ttl_attribute: str | None, tags: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """What makes a table a journal's, the same from DescribeTable as from the template."""
    billing = table.get("BillingMode") or table.get("BillingModeSummary", {}).get("BillingMode")
    return {
        "billing": billing,
        "attributes": sorted(
            (a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]
        ),
        "key": [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]],
        "indexes": {
            i["IndexName"]: (
                [(k["AttributeName"], k["KeyType"]) for k in i["KeySchema"]],
                i["Projection"]["ProjectionType"],
            )
            for i in table.get("GlobalSecondaryIndexes", [])
        },
        "ttl": ttl_attribute,
        "tags": sorted((t["Key"], t["Value"]) for t in tags),
    }


async def test_the_table_is_the_one_journal_init_creates(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_endpoint)
    name = f"journal-{uuid.uuid4().hex[:10]}"
    assert await create_table(name, region="us-east-1")
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    described = dynamodb.describe_table(TableName=name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING")
    tags = dynamodb.list_tags_of_resource(ResourceArn=described["TableArn"])["Tags"]
    created = _table_shape(described, ttl["AttributeName"], tags)

    table = resource(load_template(), "JournalTable")
    spec = table["TimeToLiveSpecification"]
    assert spec["Enabled"] is True
    assert _table_shape(table, spec["AttributeName"], table["Tags"]) == created
    # And the journal's own check accepts it, by the names the code uses.
    assert layout_problem(table) is None
    assert set(created["indexes"]) == {INDEX} and created["ttl"] == TTL_ATTRIBUTE
    assert table["TableName"] == {"Ref": "JournalTableName"}


def _replace(value: Any, replacements: Mapping[str, Any]) -> Any:
    """``value`` with every intrinsic whose JSON is a key of ``replacements`` replaced."""
    key = json.dumps(value, sort_keys=True)
    if key in replacements:
        return replacements[key]
    if isinstance(value, dict):
        return {k: _replace(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, replacements) for v in value]
    return value


def _get_att(logical_id: str, attribute: str) -> str:
    return json.dumps({"Fn::GetAtt": [logical_id, attribute]}, sort_keys=True)


def test_the_rule_and_the_queue_policy_are_those_of_events_init() -> None:
    template = load_template()
    rule = resource(template, "EventsRule")
    assert rule["EventPattern"] == event_rule.EVENT_PATTERN
    assert rule["State"] == "ENABLED"
    [target] = rule["Targets"]
    assert target == {"Id": event_rule._TARGET_ID, "Arn": {"Fn::GetAtt": ["EventsQueue", "Arn"]}}
    queue = resource(template, "EventsQueue")
    assert queue["MessageRetentionPeriod"] == event_rule._RETENTION_S

    policy = resource(template, "EventsQueuePolicy")
    assert policy["Queues"] == [{"Ref": "EventsQueue"}]
    resolved = _replace(
        policy["PolicyDocument"],
        {
            _get_att("EventsQueue", "Arn"): "arn:aws:sqs:us-east-1:123456789012:q",
            _get_att("EventsRule", "Arn"): "arn:aws:events:us-east-1:123456789012:rule/r",
        },
    )
    expected = event_rule.queue_policy(
        "arn:aws:sqs:us-east-1:123456789012:q", "arn:aws:events:us-east-1:123456789012:rule/r"
    )
    assert resolved == json.loads(expected)


def _operations(files: Iterable[Path], service: str) -> set[str]:
    """The ``service`` operations the code in ``files`` names, as IAM actions (``Service:Op``).

    Every attribute and string constant that is the snake_case name of one of the service's
    operations counts (``client.get_item(...)``, ``self._call("query", ...)``): a call the code
    makes however it is spelt. A DynamoDB transaction is authorised per item by the item's own
    action, so ``TransactWriteItems`` stands for the kinds of its items (``{"Put": ...}``).
    """
    model = botocore.session.get_session().get_service_model(service)
    by_snake = {xform_name(op): op for op in model.operation_names}
    prefix = model.signing_name
    names: set[str] = set()
    kinds: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)
            if isinstance(node, ast.Dict):
                kinds.update(
                    k.value
                    for k in node.keys
                    if isinstance(k, ast.Constant) and k.value in ("Put", "Update", "Delete")
                )
                kinds.update(
                    "ConditionCheck"
                    for k in node.keys
                    if isinstance(k, ast.Constant) and k.value == "ConditionCheck"
                )
    found = {by_snake[n] for n in names if n in by_snake}
    if "TransactWriteItems" in found:
        found.discard("TransactWriteItems")
        found.update(f"{kind}Item" for kind in kinds)
    return {f"{prefix}:{op}" for op in found}


def _granted(template: dict[str, Any], prefix: str) -> set[str]:
    """Every action of the worker role whose service is ``prefix``."""
    return {
        a
        for s in statements(template, "WorkerRole")
        for a in actions(s)
        if a.startswith(f"{prefix}:")
    }


def _by_sid(template: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in statements(template, role) if "Sid" in s}


def test_the_worker_role_grants_the_calls_the_code_makes_and_no_others() -> None:
    template = load_template()
    # schema.py is `refimport journal init` (CreateTable, TTL): the stack creates the table;
    # __init__.py only re-exports (create_table by name).
    journal = [
        p
        for p in (PACKAGE / "journal" / "dynamo").glob("*.py")
        if p.name not in ("schema.py", "__init__.py")
    ]
    assert _granted(template, "dynamodb") == _operations(journal, "dynamodb")
    assert _granted(template, "omics") == _operations([PACKAGE / "gateway" / "aws.py"], "omics")
    sqs = PACKAGE / "aws" / "sqs.py"
    assert _granted(template, "sqs") == _operations([sqs], "sqs")
    assert _granted(template, "s3") == _operations([sqs], "s3") == {"s3:GetObject"}
    assert _granted(template, "iam") == {"iam:PassRole"}
    assert {a.split(":")[0] for s in statements(template, "WorkerRole") for a in actions(s)} == {
        "dynamodb",
        "omics",
        "sqs",
        "s3",
        "iam",
    }
    # Per queue, as the README grants them: the events queue is only read.
    sids = _by_sid(template, "WorkerRole")
    assert actions(sids["Requests"]) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    }
    assert actions(sids["Results"]) == {"sqs:SendMessage", "sqs:GetQueueAttributes"}
    assert actions(sids["Events"]) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
    }
    assert sids["PassTheServiceRole"]["Resource"] == {"Fn::GetAtt": ["HealthOmicsRole", "Arn"]}
    # No statement on every resource.
    assert all(s["Resource"] != "*" for s in statements(template, "WorkerRole"))


def test_the_service_role_is_assumed_by_healthomics_and_reads_the_sources() -> None:
    template = load_template()
    role = resource(template, "HealthOmicsRole")
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "omics.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    granted = statements(template, "HealthOmicsRole")
    assert {a for s in granted for a in actions(s)} == {"s3:GetObject", "kms:Decrypt"}
    text = json.dumps(granted)
    assert "SourceBucketNames" in text and "StagingBucketName" in text


def test_the_task_runs_the_worker_with_readyz_as_its_health_check() -> None:
    template = load_template()
    [container] = resource(template, "TaskDefinition")["ContainerDefinitions"]
    command = container["HealthCheck"]["Command"]
    assert command[0] == "CMD" and "/readyz" in command[-1]
    assert container["Command"]["Fn::Split"][1]["Fn::Join"][1][0] == "worker"
    assert resource(template, "TaskDefinition")["RequiresCompatibilities"] == ["FARGATE"]
    assert container["LogConfiguration"]["Options"]["awslogs-group"] == {"Ref": "LogGroup"}
    alarms = {
        r["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]: r["Properties"]["MetricName"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert alarms == {
        "RequestQueue": "ApproximateAgeOfOldestMessage",
        "EventsQueue": "ApproximateAgeOfOldestMessage",
        "RequestDeadLetterQueue": "ApproximateNumberOfMessagesVisible",
    }
    redrive = resource(template, "RequestQueue")["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["RequestDeadLetterQueue", "Arn"]}


def _tool(name: str) -> str:
    """The linter ``name`` beside this interpreter (the test extra), else on PATH; else skip."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install 'async-refimport[test]')")
    return found


@pytest.mark.parametrize(
    ("tool", "target"),
    [("cfn-lint", ["--include-checks", "I", "--", str(TEMPLATE)]), ("hadolint", [str(DOCKERFILE)])],
)
def test_the_linters_find_nothing(tool: str, target: Sequence[str]) -> None:
    done = subprocess.run(
        [_tool(tool), *target], capture_output=True, text=True, timeout=170, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_kits_readme_cites_only_files_that_exist() -> None:
    readme = ROOT / "deploy" / "README.md"
    for target in re.findall(r"\]\(([^)#]+)\)", readme.read_text(encoding="utf-8")):
        if "://" not in target:
            assert (readme.parent / target).exists(), target


def _instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's instructions, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            keyword, _, rest = pending.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
            pending = ""
    return out


def test_the_image_is_multi_stage_slim_non_root_with_the_tasks_health_check() -> None:
    instructions = _instructions(DOCKERFILE)
    stages = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert len(stages) >= 2
    final = instructions[stages[-1] :]
    assert "-slim" in final[0][1] and " AS " not in final[0][1].upper()
    # Nothing is built in the final stage: it copies the environment the first stage made.
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert not re.search(r"\b(pip|apt-get|apk|gcc|make|build-essential)\b", runs), runs
    assert any(k == "COPY" and rest.startswith("--from=build ") for k, rest in final)
    [user] = [rest for keyword, rest in final if keyword == "USER"]
    assert user.split(":")[0] not in ("0", "root")
    assert [rest for keyword, rest in final if keyword == "ENTRYPOINT"] == ['["refimport"]']
    # The image's health check is the task's: /readyz on the worker's port.
    [healthcheck] = [rest for keyword, rest in final if keyword == "HEALTHCHECK"]
    image_check = json.loads(healthcheck[healthcheck.index("CMD ") + 4 :])
    [container] = resource(load_template(), "TaskDefinition")["ContainerDefinitions"]
    assert ["CMD", *image_check] == container["HealthCheck"]["Command"]


def test_the_image_copies_files_that_exist_and_the_ignore_file_lets_through() -> None:
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    allowed = {line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!")}
    for keyword, rest in _instructions(DOCKERFILE):
        if keyword != "COPY" or rest.startswith("--from="):
            continue
        *sources, _destination = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/").removeprefix("./") in allowed, source


def _journal_fragments() -> list[tuple[str, dict[str, Any]]]:
    """Every CloudFormation fragment of a DynamoDB table in the docs (README, docs/), with the
    document it is in."""
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for block in re.findall(r"```ya?ml\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
            if "AWS::DynamoDB::Table" in block:
                name = str(doc.relative_to(ROOT))
                found.extend((name, r["Properties"]) for r in parse(block).values())
    return found


def test_the_docs_fragments_of_the_table_are_the_templates() -> None:
    table = resource(load_template(), "JournalTable")
    for doc, fragment in _journal_fragments():
        # The docs name the table; the template takes its name as a parameter and tags it.
        for key, value in fragment.items():
            if key != "TableName":
                assert table[key] == value, (doc, key)
        assert set(table) - set(fragment) <= {"Tags"}, doc
