"""The deployment kit's CloudFormation template, read as CloudFormation reads it.

CloudFormation's short-form tags (``!Ref``, ``!GetAtt``, ``!Sub`` ...) are not YAML that a plain
loader accepts: :func:`load_template` turns each into its long form (``{"Ref": ...}``,
``{"Fn::GetAtt": [resource, attribute]}``, ``{"Fn::Sub": ...}``), so a test compares the template
with what the code creates in the form CloudFormation itself works with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TEMPLATE = DEPLOY / "fleet.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"


class _CloudFormationLoader(yaml.SafeLoader):
    """A safe loader that also reads CloudFormation's short-form intrinsic functions."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    """``!Ref X`` as ``{"Ref": "X"}``, ``!GetAtt A.B`` as ``{"Fn::GetAtt": ["A", "B"]}``, and
    every other ``!Name value`` as ``{"Fn::Name": value}``."""
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def parse(text: str) -> dict[str, Any]:
    """A CloudFormation document (a template, or a fragment of one), short-form tags in their
    long form.

    Args:
        text: The YAML.

    Returns:
        The document.
    """
    # A SafeLoader: the tags above are the only constructors added.
    document = yaml.load(text, Loader=_CloudFormationLoader)
    assert isinstance(document, dict)
    return document


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template at ``path``, short-form tags in their long form.

    Args:
        path: The template (default: ``deploy/fleet.yaml``).

    Returns:
        The template as a document.
    """
    return parse(path.read_text(encoding="utf-8"))


def resource(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """The ``Properties`` of one resource of the template.

    Args:
        template: The template, from :func:`load_template`.
        logical_id: The resource's logical id.

    Returns:
        Its properties.
    """
    properties = template["Resources"][logical_id]["Properties"]
    assert isinstance(properties, dict)
    return properties


def statements(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """Every statement of a role's inline policies; a conditional one (``Fn::If``) as its
    statement.

    Args:
        template: The template.
        role: The role's logical id.

    Returns:
        The statements, in order.
    """
    out: list[dict[str, Any]] = []
    for policy in resource(template, role)["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                statement = statement["Fn::If"][1]
            out.append(statement)
    return out


def actions(statement: dict[str, Any]) -> set[str]:
    """A statement's actions, as a set.

    Args:
        statement: One policy statement.

    Returns:
        Its actions.
    """
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)
