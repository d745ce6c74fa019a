"""Helm's own schema validation of the values files (``jhplatform.z2jh.helm``).

Helm 4's Go SDK (``helm_python``) does the validating; these tests check that we give it the chart
``helm upgrade`` would use and report what it says, one line per problem with the values path.

We test these aspects:
- the chart: ``Chart.yaml`` as Helm reads it (jupyterhub 4.4.0, apiVersion v2), z2jh 4.4.0's
  ``values.yaml`` as the defaults, and ``values.schema.json`` made from ``values.schema.yaml``
  the way z2jh's release tool makes it (``description`` keywords dropped, nothing else; a
  property *named* ``description`` kept);
- every values file in ``helm-values/`` passes, and every other file there is a Kubernetes
  manifest (so a new values file cannot escape validation);
- a misspelled key (the seeds' ``singleuser.podSecurityContext``), a wrong type, an unknown
  top-level key, a value of a list item, a key that is not a plain name, a missing required key
  and a failed ``oneOf`` each give one line with the values path and Helm's own words, equal
  to what Helm's SDK reports through another entry point (``Chart.validate_schema``);
- several files merge the way ``helm upgrade -f a -f b`` merges them: a later file wins, maps
  merge, lists are replaced, ``null`` deletes the chart default;
- a file that cannot be read, is not YAML, or is not a mapping gives one line naming the file;
- Helm's report is read as a tree (groups flattened, ``oneOf`` causes in parentheses), lines in
  a shape we do not know are kept verbatim, and the output order is stable;
- no hand-written schema checker: the package imports no JSON-schema library.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import helm_python
import pytest
import yaml

from helpers import REPO, TEST_DATA
from jhplatform.z2jh import helm

VALUES_FILES = ["values.yaml", "demo.yaml", "platform.yaml", "entitlements-example.yaml", "culler-example.yaml"]
HELM_VALUES = REPO / "helm-values"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def helm_sdk_errors(values: dict) -> dict[str, str]:
    """Helm's leaf errors for ``values`` through ``Chart.validate_schema``: {JSON pointer: message}."""
    chart = helm.load_chart()
    with pytest.raises(helm_python.HelmValuesError) as raised:
        chart.validate_schema(values)
    found = re.findall(r"^\s*- at '([^']*)': (.*)$", raised.value.detail, flags=re.M)
    return {pointer: message for pointer, message in found if message != "validation failed"}


# --- the chart ------------------------------------------------------------------------------


def test_chart_is_z2jh_4_4_0_as_helm_reads_it():
    chart = helm.load_chart()
    assert chart.metadata == {"apiVersion": "v2", "name": "jupyterhub", "version": "4.4.0"}
    assert chart.values == helm_python.values_from_yaml((TEST_DATA / "z2jh-4.4.0" / "values.yaml").read_text())


def test_shipped_chart_files_are_z2jh_4_4_0():
    for name in ("values.yaml", "values.schema.yaml"):
        assert (helm.CHART_FILES / name).read_bytes() == (TEST_DATA / "z2jh-4.4.0" / name).read_bytes(), name


def test_schema_json_is_the_yaml_schema_without_descriptions():
    source = yaml.safe_load((helm.CHART_FILES / "values.schema.yaml").read_text())
    loaded = helm.load_chart().schema

    def descriptions_reached_by_properties(schema: dict) -> int:
        own = "description" in schema
        subs = (schema.get("properties") or {}).values()
        return own + sum(descriptions_reached_by_properties(s) for s in subs if isinstance(s, dict))

    def without_descriptions(schema: dict) -> dict:
        out = {k: v for k, v in schema.items() if k != "description"}
        if isinstance(schema.get("properties"), dict):
            out["properties"] = {k: without_descriptions(v) for k, v in schema["properties"].items()}
        return out

    assert descriptions_reached_by_properties(source) > 400  # the schema is mostly prose
    assert descriptions_reached_by_properties(loaded) == 0
    assert loaded == json.loads(json.dumps(without_descriptions(source)))


def test_schema_json_keeps_a_property_named_description():
    schema = {
        "type": "object",
        "description": "the keyword: dropped",
        "properties": {
            "description": {"type": "string", "description": "a value named description: kept"},
            "items": {"type": "array", "items": {"description": "not reached through properties: kept"}},
        },
    }
    assert helm.values_schema_json(schema) == {
        "type": "object",
        "properties": {
            "description": {"type": "string"},
            "items": {"type": "array", "items": {"description": "not reached through properties: kept"}},
        },
    }
    assert "description" in schema  # the input is not modified


# --- the shipped values files ---------------------------------------------------------------


@pytest.mark.parametrize("name", VALUES_FILES, ids=VALUES_FILES)
def test_shipped_values_file_passes_helm(name):
    assert helm.validate_values([HELM_VALUES / name]) == []


def test_every_other_helm_values_file_is_a_manifest():
    for path in sorted(HELM_VALUES.glob("*.yaml")):
        if path.name in VALUES_FILES:
            continue
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert docs and all({"apiVersion", "kind"} <= d.keys() for d in docs), (
            f"{path.name} is neither a Kubernetes manifest nor listed in VALUES_FILES"
        )


def test_production_values_and_single_gpu_example_together_pass():
    assert helm.validate_values([HELM_VALUES / "values.yaml", HELM_VALUES / "platform.yaml"]) == []


# --- errors: one line each, Helm's words, the values path -------------------------------------

BAD = [
    pytest.param(
        "singleuser:\n  podSecurityContext:\n    runAsUser: 1000\n",
        "/singleuser",
        ["singleuser.podSecurityContext: additional properties 'podSecurityContext' not allowed"],
        id="misspelled-key",
    ),
    pytest.param(
        "singleuser:\n  uid: '1000'\n",
        "/singleuser/uid",
        ["singleuser.uid: got string, want null or integer"],
        id="wrong-type",
    ),
    pytest.param(
        "jhplatform:\n  culler: {}\n",
        "",
        ["jhplatform: additional properties 'jhplatform' not allowed"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        "singleuser:\n  storage:\n    dynamic:\n      storageAccessModes: [ReadWriteOnce, 3]\n",
        "/singleuser/storage/dynamic/storageAccessModes/1",
        ["singleuser.storage.dynamic.storageAccessModes[1]: got number, want null or string"],
        id="list-item",
    ),
    pytest.param(
        "hub:\n  labels:\n    example.org/team: 3\n",
        "/hub/labels/example.org~1team",
        ['hub.labels["example.org/team"]: got number, want string'],
        id="quoted-key",
    ),
    pytest.param(
        "hub:\n  image:\n    tag: null\n",
        "/hub/image",
        ["hub.image.tag: missing property 'tag'"],
        id="null-deletes-required-default",
    ),
    pytest.param(
        "cull:\n  timeout: soon\n",
        "/cull/timeout",
        ["cull.timeout: got string, want null or integer"],
        id="cull-timeout",
    ),
]


@pytest.mark.parametrize("text, pointer, expected", BAD)
def test_bad_value_gives_one_line_with_its_path_in_helms_words(tmp_path, text, pointer, expected):
    lines = helm.validate_values([write(tmp_path, "bad.yaml", text)])
    assert lines == expected
    # The same error through Helm's other entry point: our line is its message, at its pointer.
    sdk = helm_sdk_errors(yaml.safe_load(text))
    assert list(sdk) == [pointer]
    message = lines[0].split(": ", 1)[1]
    assert message == sdk[pointer] or re.sub(r"'[^']*'", "", message) == re.sub(r"'[^']*'", "", sdk[pointer])


def test_every_problem_of_a_file_is_reported_and_matches_helm(tmp_path):
    text = (
        "singleuser:\n  podSecurityContext: {}\n  uid: root\n  storage: {capcity: 5Gi, type: dynamc}\n"
        "hub:\n  image: {tag: null}\n  extraFiles:\n    motd: {mountPath: /etc/motd}\n"
        "singeluser: {}\n"
    )
    lines = helm.validate_values([write(tmp_path, "bad.yaml", text)])
    assert lines == [
        "hub.extraFiles.motd: 'oneOf' failed, none matched (data: missing property 'data'; "
        "stringData: missing property 'stringData'; binaryData: missing property 'binaryData')",
        "hub.image.tag: missing property 'tag'",
        "singeluser: additional properties 'singeluser' not allowed",
        "singleuser.podSecurityContext: additional properties 'podSecurityContext' not allowed",
        "singleuser.storage.capcity: additional properties 'capcity' not allowed",
        "singleuser.storage.type: value must be one of 'dynamic', 'static', 'none'",
        "singleuser.uid: got string, want null or integer",
    ]
    sdk = helm_sdk_errors(yaml.safe_load(text))
    # Helm's top-level errors, each once (the oneOf's causes are folded into its line).
    assert sorted(p for p in sdk if not p.startswith("/hub/extraFiles/motd")) == [
        "", "/hub/image", "/singleuser", "/singleuser/storage", "/singleuser/storage/type", "/singleuser/uid",
    ]
    assert sdk["/singleuser/storage/type"] in lines[5] and sdk["/singleuser/uid"] in lines[6]


def test_report_is_what_helm_upgrade_prints():
    report = helm.helm_schema_report({"singleuser": {"podSecurityContext": {}}})
    assert report == (
        "values don't meet the specifications of the schema(s) in the following chart(s):\n"
        "jupyterhub:\n"
        "- at '/singleuser': additional properties 'podSecurityContext' not allowed\n"
    )
    assert helm.helm_schema_report({}) is None


# --- several files: helm upgrade -f a -f b ------------------------------------------------------


def test_later_file_wins(tmp_path):
    bad = write(tmp_path, "a.yaml", "singleuser:\n  uid: root\n  fsGid: 100\n")
    fix = write(tmp_path, "b.yaml", "singleuser:\n  uid: 1000\n")
    assert helm.validate_values([bad]) == ["singleuser.uid: got string, want null or integer"]
    assert helm.validate_values([bad, fix]) == []
    assert helm.validate_values([fix, bad]) == ["singleuser.uid: got string, want null or integer"]


def test_files_merge_maps_replace_lists_and_keep_null(tmp_path):
    a = write(tmp_path, "a.yaml", "hub:\n  image: {name: x, tag: '1'}\nsingleuser:\n  profileList: [{slug: a}, {slug: b}]\n")
    b = write(tmp_path, "b.yaml", "hub:\n  image: {tag: null}\nsingleuser:\n  profileList: [{slug: c}]\n")
    merged = helm.read_values_files([a, b])
    assert merged == {"hub": {"image": {"name": "x", "tag": None}}, "singleuser": {"profileList": [{"slug": "c"}]}}
    # Helm's coalescing then deletes the chart's default tag, which the schema requires.
    assert helm.validate_values([a, b]) == ["hub.image.tag: missing property 'tag'"]


def test_values_are_parsed_by_helm(tmp_path):
    # An unquoted date-like tag is a string to Helm (and the schema wants one); PyYAML would
    # make it a date. Reading the files with Helm's parser keeps Helm's verdict.
    path = write(tmp_path, "v.yaml", "singleuser:\n  image: {name: x, tag: 2024-08-12}\n")
    assert not isinstance(yaml.safe_load(path.read_text())["singleuser"]["image"]["tag"], str)
    assert helm.read_values_files([path]) == {"singleuser": {"image": {"name": "x", "tag": "2024-08-12"}}}
    assert helm.validate_values([path]) == []


# --- files Helm cannot read -------------------------------------------------------------------


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert helm.validate_values([missing]) == [f"{missing}: cannot read the values file: No such file or directory"]


@pytest.mark.parametrize(
    "text, words",
    [("singleuser: [\n", "error converting YAML to JSON"), ("- a\n- b\n", "cannot unmarshal array")],
    ids=["not-yaml", "not-a-mapping"],
)
def test_unparsable_file_gives_one_line_naming_it(tmp_path, text, words):
    path = write(tmp_path, "broken.yaml", text)
    [line] = helm.validate_values([path])
    assert line.startswith(f"{path}: Helm cannot parse it: ") and words in line


def test_empty_file_is_no_values(tmp_path):
    assert helm.validate_values([write(tmp_path, "empty.yaml", "# nothing yet\n")]) == []


# --- reading Helm's report -------------------------------------------------------------------


def test_report_lines_flatten_groups_and_keep_unknown_lines():
    report = (
        "values don't meet the specifications of the schema(s) in the following chart(s):\n"
        "jupyterhub:\n"
        "- at '/singleuser': validation failed\n"
        "  - at '/singleuser/storage': additional properties 'foo', 'bar' not allowed\n"
        "- at '/proxy': missing properties 'chp', 'https'\n"
        "something Helm said that is not an error line\n"
    )
    assert helm.schema_report_lines(report) == [
        "proxy.chp: missing properties 'chp'",
        "proxy.https: missing properties 'https'",
        "singleuser.storage.bar: additional properties 'bar' not allowed",
        "singleuser.storage.foo: additional properties 'foo' not allowed",
        "something Helm said that is not an error line",
    ]


@pytest.mark.parametrize(
    "segments, coalesced, expected",
    [
        ([], None, "(top level)"),
        (["singleuser", "profileList", "2", "kubespawner_override"], None, "singleuser.profileList[2].kubespawner_override"),
        (["hub", "extraFiles", "2"], {"hub": {"extraFiles": {"2": {}}}}, 'hub.extraFiles["2"]'),
        (["singleuser", "nodeSelector", "nvidia.com/gpu"], None, 'singleuser.nodeSelector["nvidia.com/gpu"]'),
    ],
    ids=["top-level", "list-index", "numeric-map-key", "dotted-key"],
)
def test_values_path(segments, coalesced, expected):
    assert helm.values_path(segments, coalesced) == expected


def test_line_order_is_stable(tmp_path):
    path = write(tmp_path, "bad.yaml", "singleuser: {uid: x, fsGid: y}\nhub: {baseUrl: 3}\nproxy: {secretToken: 4}\n")
    first = helm.validate_values([path])
    assert len(first) == 4
    assert all(helm.validate_values([path]) == first for _ in range(5))


def test_no_hand_written_schema_checker_in_the_package():
    schema_libraries = {"jsonschema", "fastjsonschema", "jschon", "openapi_schema_validator"}
    for source in (REPO / "jhplatform").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not names & schema_libraries, f"{source.relative_to(REPO)} imports {names & schema_libraries}"
