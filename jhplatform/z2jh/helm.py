"""Helm's own schema validation of z2jh 4.4 values files, without a helm binary.

``helm upgrade --install jhub jupyterhub/jupyterhub --version 4.4.0 -f a.yaml -f b.yaml`` refuses
values that do not meet the chart's ``values.schema.json`` before it touches the cluster. This
module runs that same step through Helm 4's Go SDK (the ``helm_python`` bindings of
``helm-python-sdk``), so ``jhplatform check`` and the tests report exactly what Helm would:

1. each values file is parsed by Helm's values parser and the files are merged the way ``-f``
   merges them (later files win; maps merge recursively; lists and scalars replace; a ``null``
   is kept so that it deletes the chart default in the next step);
2. Helm coalesces the result with the chart's ``values.yaml`` and validates it against
   ``values.schema.json``, in the same render step ``helm upgrade`` runs.

The chart is rebuilt from package data (``chart/``): ``Chart.yaml`` (name ``jupyterhub``,
version ``4.4.0``, apiVersion v2), z2jh 4.4.0's ``values.yaml``, and ``values.schema.json``
made from z2jh's ``values.schema.yaml`` the way z2jh's release tool makes it (every
``description`` key dropped). The chart's templates are not needed for validation.

Helm reports errors as JSON pointers (``- at '/singleuser': additional properties
'podSecurityContext' not allowed``); :func:`validate_values` turns each into one line with the
values path, keeping Helm's words::

    singleuser.podSecurityContext: additional properties 'podSecurityContext' not allowed
"""

from __future__ import annotations

import functools
import json
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import helm_python
import yaml

#: The chart a values file is validated against, as ``helm upgrade`` resolves it.
CHART_NAME = "jupyterhub"
CHART_VERSION = "4.4.0"
#: z2jh 4.4.0's ``values.yaml`` and ``values.schema.yaml``, shipped as package data.
CHART_FILES = Path(__file__).resolve().parent / "chart"

# Rendering needs a release; validation does not depend on which.
_RELEASE = "jhub"

# Helm's report starts with this heading, then the chart name, then the errors.
_REPORT_HEADING = "values don't meet the specifications of the schema(s)"
# One error of Helm's report: "- at '<JSON pointer>': <message>", nested causes indented.
_ERROR_LINE = re.compile(r"^(?P<indent>\s*)- at '(?P<pointer>[^']*)': (?P<message>.*)$")
# Helm's word for "errors were found below this key"; the errors follow, indented.
_GROUP = "validation failed"
# Messages that name properties of the object at the pointer; each property gets its own line.
_NAMED_PROPERTIES = re.compile(
    r"^(?P<what>additional propert(?:y|ies)|missing propert(?:y|ies)) (?P<names>'.*?')(?P<rest>(?: not allowed)?)$"
)
_QUOTED = re.compile(r"'((?:[^']|'')*)'")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def values_schema_json(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The chart's ``values.schema.json`` from its ``values.schema.yaml``.

    z2jh's release tool drops the ``description`` keyword from the schema and from every
    subschema it reaches through ``properties``; a *property* that happens to be called
    ``description`` is a value name, not the keyword, and stays. Nothing else changes.
    """
    out: dict[str, Any] = {key: value for key, value in schema.items() if key != "description"}
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        out["properties"] = {
            name: values_schema_json(sub) if isinstance(sub, Mapping) else sub
            for name, sub in properties.items()
        }
    return out


def write_chart(directory: Path) -> Path:
    """Write the chart directory Helm validates against into ``directory``; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Chart.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v2", "name": CHART_NAME, "version": CHART_VERSION}, sort_keys=False)
    )
    (directory / "values.yaml").write_bytes((CHART_FILES / "values.yaml").read_bytes())
    schema = yaml.safe_load((CHART_FILES / "values.schema.yaml").read_text())
    (directory / "values.schema.json").write_text(json.dumps(values_schema_json(schema), indent=2))
    return directory


@functools.cache
def load_chart() -> helm_python.Chart:
    """The z2jh 4.4.0 chart loaded by Helm (once per process; Helm's charts are immutable)."""
    with tempfile.TemporaryDirectory(prefix="jhplatform-chart-") as tmp:
        return helm_python.Chart.load(write_chart(Path(tmp) / CHART_NAME))


class ValuesFileError(ValueError):
    """A values file Helm cannot read; the message names the file and says why."""


def read_values_files(paths: Iterable[Path]) -> dict[str, Any]:
    """The user-supplied values of ``helm upgrade -f p1 -f p2 …``: each file parsed by Helm, merged in order.

    Raises :class:`ValuesFileError` for a file that cannot be read or is not a YAML mapping.
    """
    merged: dict[str, Any] = {}
    for path in paths:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise ValuesFileError(f"{path}: cannot read the values file: {e.strerror or e}") from e
        try:
            values = helm_python.values_from_yaml(text)
        except helm_python.HelmError as e:
            raise ValuesFileError(f"{path}: Helm cannot parse it: {e.detail.strip()}") from e
        merged = _merge_values_files(merged, values or {})
    return merged


def _merge_values_files(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    # Helm's -f merge: only maps merge; everything else (lists, scalars, null) replaces.
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge_values_files(out[key], value)
        else:
            out[key] = value
    return out


def helm_schema_report(values: Mapping[str, Any]) -> str | None:
    """Helm's own report for user values, exactly as ``helm upgrade`` prints it; ``None`` when they pass.

    The values are coalesced with the chart's defaults and validated by Helm's render step,
    the one ``helm upgrade`` runs before it contacts the cluster.
    """
    try:
        load_chart().render(dict(values), name=_RELEASE, namespace=_RELEASE, is_upgrade=True)
    except helm_python.HelmValuesError as e:
        return e.detail
    return None


def validate_values(paths: list[Path]) -> list[str]:
    """Validate values files as ``helm upgrade -f …`` does; one line per problem, ``[]`` when clean.

    Each line is ``<values path>: <Helm's message>``, for example
    ``singleuser.podSecurityContext: additional properties 'podSecurityContext' not allowed`` or
    ``singleuser.uid: got string, want null or integer``. A file Helm cannot read gives one
    line naming the file.
    """
    try:
        values = read_values_files(paths)
    except ValuesFileError as e:
        return [str(e)]
    report = helm_schema_report(values)
    if report is None:
        return []
    return schema_report_lines(report, load_chart().merge_values(values))


def schema_report_lines(report: str, coalesced: Any = None) -> list[str]:
    """Turn Helm's schema report into one line per error, each prefixed by its values path.

    Helm's report is a tree: ``validation failed`` groups the errors found below a key, and a
    failed ``oneOf`` lists why each alternative did not match. Each error below a group becomes
    a line; the alternatives of a failed ``oneOf`` are appended to its line in parentheses.
    ``coalesced`` (the values Helm validated) tells list indexes from map keys that look like
    numbers. Helm's heading and the chart name are dropped; a line in a shape this function does
    not know is kept as it is, so nothing Helm says is lost.
    """
    roots: list[_ReportNode] = []
    stack: list[tuple[int, _ReportNode]] = []
    for raw in report.splitlines():
        if not raw.strip() or raw.startswith(_REPORT_HEADING) or raw.strip() == f"{CHART_NAME}:":
            continue
        match = _ERROR_LINE.match(raw)
        if match is None:
            roots.append(_ReportNode([], raw.strip(), verbatim=True))
            stack.clear()
            continue
        node = _ReportNode(_pointer_segments(match["pointer"]), match["message"])
        depth = len(match["indent"])
        while stack and stack[-1][0] >= depth:
            stack.pop()
        (stack[-1][1].causes if stack else roots).append(node)
        stack.append((depth, node))
    # Helm's order follows Go map iteration and changes from run to run; sorted, it does not.
    return sorted({line for node in roots for line in node.lines(coalesced)})


class _ReportNode:
    """One ``- at '<pointer>': <message>`` of Helm's report and the lines indented below it."""

    def __init__(self, segments: list[str], message: str, verbatim: bool = False):
        self.segments = segments
        self.message = message
        self.verbatim = verbatim
        self.causes: list[_ReportNode] = []

    def lines(self, coalesced: Any) -> list[str]:
        if self.verbatim:
            return [self.message]
        if self.message == _GROUP and self.causes:
            return [line for cause in self.causes for line in cause.lines(coalesced)]
        lines = _split_named_properties(self.segments, self.message, coalesced)
        if self.causes:
            own = values_path(self.segments, coalesced)
            why = "; ".join(
                _relative(line, own) for cause in self.causes for line in cause.lines(coalesced)
            )
            lines = [f"{line} ({why})" for line in lines]
        return lines


def _relative(line: str, own: str) -> str:
    # A cause below an error is shown relative to the error's path.
    if line.startswith(f"{own}: "):
        return line[len(own) + 2 :]
    if line.startswith(f"{own}."):
        return line[len(own) + 1 :]
    return line


def _split_named_properties(segments: list[str], message: str, coalesced: Any) -> list[str]:
    named = _NAMED_PROPERTIES.match(message)
    if named is None:
        return [_one_line(segments, message, coalesced)]
    names = [n.replace("''", "'") for n in _QUOTED.findall(named["names"])]
    return [
        _one_line(segments + [name], f"{named['what']} '{name}'{named['rest']}", coalesced)
        for name in names
    ]


def _one_line(segments: list[str], message: str, coalesced: Any) -> str:
    return f"{values_path(segments, coalesced)}: {message}"


def _pointer_segments(pointer: str) -> list[str]:
    if not pointer:
        return []
    return [s.replace("~1", "/").replace("~0", "~") for s in pointer.lstrip("/").split("/")]


def values_path(segments: list[str], coalesced: Any = None) -> str:
    """``['singleuser', 'profileList', '2', 'kubespawner_override']`` -> ``singleuser.profileList[2].kubespawner_override``.

    Keys that are not plain names are quoted (``singleuser.nodeSelector["nvidia.com/gpu"]``);
    the empty path (the top level of the values) is ``(top level)``.
    """
    if not segments:
        return "(top level)"
    out = ""
    node = coalesced
    for segment in segments:
        if isinstance(node, list) or (node is None and segment.isdigit()):
            out += f"[{segment}]"
            node = node[int(segment)] if isinstance(node, list) and segment.isdigit() and int(segment) < len(node) else None
            continue
        if _PLAIN_KEY.match(segment):
            out += f".{segment}" if out else segment
        else:
            out += f"[{json.dumps(segment)}]"
        node = node.get(segment) if isinstance(node, Mapping) else None
    return out
