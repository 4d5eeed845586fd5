"""The botocore ``omics`` model as the emulator's contract.

Routing (method and ``requestUri`` per operation), request parsing and validation, response
serialisation, and a conformance checker for responses all read the same botocore model, so the
emulator cannot drift from what boto3 sends and expects.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import botocore.session
from botocore.model import (
    ListShape,
    MapShape,
    OperationModel,
    ServiceModel,
    Shape,
    StructureShape,
)

#: The operations the emulator implements.
OPERATIONS: tuple[str, ...] = (
    "CreateReferenceStore",
    "DeleteReference",
    "GetReferenceImportJob",
    "GetReferenceMetadata",
    "GetReferenceStore",
    "ListReferenceImportJobs",
    "ListReferenceStores",
    "ListReferences",
    "StartReferenceImportJob",
)


@functools.cache
def service_model() -> ServiceModel:
    """Return botocore's ``omics`` service model (loaded once)."""
    return botocore.session.get_session().get_service_model("omics")


def error_status(code: str) -> int:
    """Return the HTTP status the model gives the error shape ``code``."""
    shape = service_model().shape_for(code)
    status = shape.metadata.get("error", {}).get("httpStatusCode", 400)
    return int(status)


@dataclass(frozen=True)
class Route:
    """One operation's HTTP binding, compiled from its ``requestUri``."""

    operation: OperationModel
    method: str
    pattern: re.Pattern[str]


@functools.cache
def routes() -> tuple[Route, ...]:
    """Compile the implemented operations' URIs into regular expressions."""
    compiled = []
    for name in OPERATIONS:
        op = service_model().operation_model(name)
        uri = op.http["requestUri"].split("?", 1)[0]
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(uri))
        compiled.append(Route(op, op.http["method"].upper(), re.compile(f"^{regex}$")))
    return tuple(compiled)


def match_route(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """Find the operation bound to ``method`` and ``path``, with its URI parameters."""
    for route in routes():
        if route.method == method.upper():
            m = route.pattern.match(path)
            if m:
                return route, m.groupdict()
    return None


class RequestValidationFailed(Exception):
    """The request breaks the model's constraints; ``message`` lists every violation."""

    def __init__(self, problems: list[str]) -> None:
        n = len(problems)
        noun = "error" if n == 1 else "errors"
        super().__init__(f"{n} validation {noun} detected: " + "; ".join(problems))
        self.problems = problems


def parse_request(
    op: OperationModel,
    uri_params: Mapping[str, str],
    query: Mapping[str, str],
    body: Any,
) -> dict[str, Any]:
    """Assemble the input members of ``op`` from URI, query string and JSON body, then validate.

    Raises:
        RequestValidationFailed: if a member is malformed or violates a model constraint.
    """
    shape = op.input_shape
    params: dict[str, Any] = {}
    problems: list[str] = []
    if shape is None:
        return params
    if body is not None and not isinstance(body, dict):
        raise RequestValidationFailed(["Request body must be a JSON object"])
    body = body or {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri":
            if wire in uri_params:
                params[name] = uri_params[wire]
        elif location == "querystring":
            if wire in query:
                params[name] = _from_text(member, query[wire], name, problems)
        elif location is None and name in body:
            params[name] = _decode(member, body[name], name, problems)
    if not problems:
        _validate(shape, params, "", problems)
    if problems:
        raise RequestValidationFailed(problems)
    return params


def _from_text(shape: Shape, text: str, path: str, problems: list[str]) -> Any:
    if shape.type_name in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            problems.append(f"Value '{text}' at '{path}' must be an integer")
            return None
    return text


def _decode(shape: Shape, value: Any, path: str, problems: list[str]) -> Any:
    """Convert JSON values to Python ones (timestamps to datetimes), checking JSON types."""
    t = shape.type_name
    if value is None:
        return None
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            problems.append(f"Value at '{path}' must be an object")
            return None
        out = {}
        for key, item in value.items():
            if key not in shape.members:
                continue  # unknown members are ignored, like the service's JSON parsers do
            out[key] = _decode(shape.members[key], item, f"{path}.{key}", problems)
        return out
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            problems.append(f"Value at '{path}' must be a list")
            return None
        return [
            _decode(shape.member, item, f"{path}.{i + 1}", problems) for i, item in enumerate(value)
        ]
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            problems.append(f"Value at '{path}' must be a map")
            return None
        return {str(k): _decode(shape.value, v, f"{path}.{k}", problems) for k, v in value.items()}
    if t == "timestamp":
        try:
            if isinstance(value, int | float):
                return datetime.fromtimestamp(value, UTC)
            parsed = datetime.fromisoformat(str(value))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            problems.append(f"Value at '{path}' must be a timestamp")
            return None
    if t == "string" and not isinstance(value, str):
        problems.append(f"Value at '{path}' must be a string")
    elif t in ("integer", "long") and (isinstance(value, bool) or not isinstance(value, int)):
        problems.append(f"Value at '{path}' must be an integer")
    elif t == "boolean" and not isinstance(value, bool):
        problems.append(f"Value at '{path}' must be a boolean")
    return value


_UNICODE_CLASS = re.compile(r"^\[((?:\\p\{\w+\}|\|)+)\]\+$")


@functools.cache
def _pattern_check(pattern: str) -> Any:
    """Return a predicate for a model ``pattern``.

    Smithy patterns are ECMA-262 and not implicitly anchored, so they are searched, not
    fully matched. Python's ``re`` lacks ``\\p{..}`` classes; the model's only use of them is a
    bracket of general categories, checked with :mod:`unicodedata` instead.
    """
    m = _UNICODE_CLASS.match(pattern)
    if m:
        categories = frozenset(re.findall(r"\\p\{(\w+)\}", m.group(1)))

        def unicode_class(value: str) -> bool:
            return any(unicodedata.category(ch)[0] in categories for ch in value)

        return unicode_class
    compiled = re.compile(pattern)
    return lambda value: compiled.search(value) is not None


def _validate(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    where = path or "request"
    meta = shape.metadata
    if isinstance(shape, StructureShape):
        for req in shape.required_members:
            if value.get(req) is None:
                problems.append(
                    f"Value null at '{_join(path, req)}' failed to satisfy constraint: Member must not be null"
                )
        for key, item in value.items():
            if item is not None and key in shape.members:
                _validate(shape.members[key], item, _join(path, key), problems)
        return
    if isinstance(shape, ListShape | MapShape):
        n = len(value)
        if "min" in meta and n < meta["min"]:
            problems.append(
                f"Value at '{where}' failed to satisfy constraint: Member must have length greater than or equal to {meta['min']}"
            )
        if "max" in meta and n > meta["max"]:
            problems.append(
                f"Value at '{where}' failed to satisfy constraint: Member must have length less than or equal to {meta['max']}"
            )
        if isinstance(shape, ListShape):
            for i, item in enumerate(value):
                if item is not None:
                    _validate(
                        shape.member,
                        item,
                        f"{where}.{i + 1}",
                        problems,
                    )
        else:
            for k, v in value.items():
                _validate(shape.key, k, f"{where}.key", problems)
                if v is not None:
                    _validate(shape.value, v, f"{where}.{k}", problems)
        return
    if shape.type_name == "string":
        enum = getattr(shape, "enum", None) or []
        if enum and value not in enum:
            problems.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: Member must satisfy enum value set: [{', '.join(enum)}]"
            )
        if "min" in meta and len(value) < meta["min"]:
            problems.append(
                f"Value at '{where}' failed to satisfy constraint: Member must have length greater than or equal to {meta['min']}"
            )
        if "max" in meta and len(value) > meta["max"]:
            problems.append(
                f"Value at '{where}' failed to satisfy constraint: Member must have length less than or equal to {meta['max']}"
            )
        if "pattern" in meta and value and not _pattern_check(meta["pattern"])(value):
            problems.append(
                f"Value '{value[:80]}' at '{where}' failed to satisfy constraint: Member must satisfy regular expression pattern: {meta['pattern']}"
            )
    elif shape.type_name in ("integer", "long"):
        if "min" in meta and value < meta["min"]:
            problems.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: Member must have value greater than or equal to {meta['min']}"
            )
        if "max" in meta and value > meta["max"]:
            problems.append(
                f"Value '{value}' at '{where}' failed to satisfy constraint: Member must have value less than or equal to {meta['max']}"
            )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def serialize(shape: Shape | None, value: Any) -> Any:
    """Turn a response value into JSON, dropping ``None`` members; timestamps become ISO-8601."""
    if shape is None or value is None:
        return {} if shape is None else None
    if isinstance(shape, StructureShape):
        out = {}
        for key, item in value.items():
            if item is None or key not in shape.members:
                continue
            out[key] = serialize(shape.members[key], item)
        return out
    if isinstance(shape, ListShape):
        return [serialize(shape.member, item) for item in value]
    if isinstance(shape, MapShape):
        return {k: serialize(shape.value, v) for k, v in value.items()}
    if shape.type_name == "timestamp":
        return iso8601(value)
    return value


def iso8601(value: datetime) -> str:
    """Format ``value`` as botocore's ``iso8601`` timestamp format expects (UTC, ``Z``)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def conformance_problems(operation: str, response: Mapping[str, Any]) -> list[str]:
    """Check a parsed boto3 response against ``operation``'s output shape.

    Every member the model marks required must be present (recursively through structures,
    lists and maps), enum values must be in the model's set, timestamps must have been parsed
    into :class:`datetime.datetime`, and strings must respect length limits.

    Returns:
        A list of human-readable problems; empty when the response conforms.
    """
    shape = service_model().operation_model(operation).output_shape
    problems: list[str] = []
    if shape is not None:
        body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
        _conform(shape, body, operation, problems)
    return problems


def _conform(shape: Shape, value: Any, path: str, problems: list[str]) -> None:
    if isinstance(shape, StructureShape):
        if not isinstance(value, Mapping):
            problems.append(f"{path}: expected a structure, got {type(value).__name__}")
            return
        for req in shape.required_members:
            if value.get(req) is None:
                problems.append(f"{path}.{req}: required member missing")
        for key, item in value.items():
            if key not in shape.members:
                problems.append(f"{path}.{key}: not a member of {shape.name}")
            else:
                _conform(shape.members[key], item, f"{path}.{key}", problems)
    elif isinstance(shape, ListShape):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list")
            return
        for i, item in enumerate(value):
            _conform(shape.member, item, f"{path}[{i}]", problems)
    elif isinstance(shape, MapShape):
        if not isinstance(value, Mapping):
            problems.append(f"{path}: expected a map")
            return
        for k, v in value.items():
            _conform(shape.value, v, f"{path}[{k!r}]", problems)
    elif shape.type_name == "timestamp":
        if not isinstance(value, datetime):
            problems.append(f"{path}: expected a datetime, got {type(value).__name__}")
    elif shape.type_name == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string")
            return
        enum = getattr(shape, "enum", None) or []
        if enum and value not in enum:
            problems.append(f"{path}: {value!r} not in enum {enum}")
        meta = shape.metadata
        if "min" in meta and len(value) < meta["min"]:
            problems.append(f"{path}: shorter than {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{path}: longer than {meta['max']}")
        if "pattern" in meta and not _pattern_check(meta["pattern"])(value):
            problems.append(f"{path}: {value!r} does not match {meta['pattern']}")
    elif shape.type_name in ("integer", "long") and not isinstance(value, int):
        problems.append(f"{path}: expected an integer")
