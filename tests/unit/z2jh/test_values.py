"""Helm's merge of values files over the chart's values.yaml, as the hub pod's Secret holds it.

We test these aspects:
- maps merge key by key, recursively; lists and scalars replace; ``null`` deletes the key and the
  chart's default with it; later files win; inputs are not changed;
- a map that fills an absent key or replaces a scalar drops its own null keys;
- the chart's values.yaml shipped in the package is z2jh 4.4.0's (the reference copy in
  tests/data/z2jh-4.4.0/);
- ``release_values`` adds ``Chart: {Name: jupyterhub, Version: 4.4.0}`` and
  ``Release: {Name, Namespace, Service: Helm}``;
- a values file that is not a mapping is refused with its path; an empty file is no values.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from helpers import TEST_DATA
from jhplatform.z2jh.values import chart_values, helm_merge, load_values_files, release_values

BASE = {"hub": {"db": {"type": "sqlite-pvc", "url": None}, "extraConfig": {}}, "cull": {"enabled": True, "timeout": 3600},
        "singleuser": {"profileList": [{"slug": "a"}], "cmd": "jupyterhub-singleuser"}}


@pytest.mark.parametrize(
    "override, expected",
    [
        pytest.param({"hub": {"db": {"type": "postgres"}}}, {**BASE, "hub": {"db": {"type": "postgres", "url": None}, "extraConfig": {}}}, id="map-merges"),
        pytest.param({"singleuser": {"profileList": [{"slug": "b"}]}},
                     {**BASE, "singleuser": {"profileList": [{"slug": "b"}], "cmd": "jupyterhub-singleuser"}}, id="list-replaces"),
        pytest.param({"cull": {"timeout": 60}}, {**BASE, "cull": {"enabled": True, "timeout": 60}}, id="scalar-replaces"),
        pytest.param({"singleuser": {"cmd": None}}, {**BASE, "singleuser": {"profileList": [{"slug": "a"}]}}, id="null-deletes"),
        pytest.param({"cull": None}, {k: v for k, v in BASE.items() if k != "cull"}, id="null-deletes-map"),
        pytest.param({"custom": {"a": 1, "b": None}}, {**BASE, "custom": {"a": 1}}, id="new-map-drops-nulls"),
    ],
)
def test_helm_merge(override, expected):
    base = copy.deepcopy(BASE)
    given = copy.deepcopy(override)
    assert helm_merge(base, override) == expected
    assert base == BASE and override == given


def test_later_files_win_and_chart_and_release_are_added():
    values = release_values([{"cull": {"timeout": 10}}, {"cull": {"timeout": 20}}], release="prod", namespace="hubs")
    assert values["cull"]["timeout"] == 20
    assert values["cull"]["every"] == 600  # the chart's default survives
    assert values["Chart"] == {"Name": "jupyterhub", "Version": "4.4.0"}
    assert values["Release"] == {"Name": "prod", "Namespace": "hubs", "Service": "Helm"}


def test_packaged_chart_values_are_z2jh_4_4_0():
    assert chart_values() == yaml.safe_load((TEST_DATA / "z2jh-4.4.0" / "values.yaml").read_text())


def test_values_files(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "list.yaml").write_text("- a\n")
    assert load_values_files([tmp_path / "empty.yaml"]) == [{}]
    with pytest.raises(ValueError) as info:
        load_values_files([tmp_path / "list.yaml"])
    assert str(info.value) == f"{tmp_path / 'list.yaml'}: a values file must be a YAML mapping, not list"
