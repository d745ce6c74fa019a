"""What the shipped values files promise, beyond Helm's schema.

Helm's schema cannot see inside ``hub.config`` or a profile's ``kubespawner_override``: a
misspelled PlatformSpawner setting there passes ``helm upgrade`` and is silently ignored by the
hub (traitlets only warns). These tests read the values files and the classes they configure.

We test these aspects:
- every ``hub.config.PlatformSpawner`` key is a PlatformSpawner setting, and every
  ``kubespawner_override`` key a PlatformSpawner trait, in every values file;
- profiles have unique slugs and exactly one default;
- the production file has what it must: the custom hub image and no spawner_class of its own,
  z2jh's iptables init container off with the NetworkPolicy blocking the metadata server,
  CPU, PySpark, T4 and A100 profiles, shared datasets, metrics scraping, z2jh's culler still on;
- the demo file offers CPU, A100 and T4 profiles, and the demo's node pool (the Makefile's
  DEMO_NODES, parsed by the emulator's own parser) has nodes of each GPU type with enough GPUs.
"""

from __future__ import annotations


import pytest
import yaml

from helpers import REPO
from jhplatform.devcluster.nodes import parse_nodes
from jhplatform.spawner import PlatformSpawner

VALUES_FILES = ["values.yaml", "demo.yaml", "platform.yaml"]


def values(name: str) -> dict:
    return yaml.safe_load((REPO / "helm-values" / name).read_text())


def profiles(name: str) -> list[dict]:
    return values(name)["singleuser"]["profileList"]


@pytest.mark.parametrize("name", VALUES_FILES, ids=VALUES_FILES)
def test_platformspawner_settings_exist(name):
    configurable = PlatformSpawner.class_traits(config=True)
    settings = (values(name).get("hub", {}).get("config") or {}).get("PlatformSpawner") or {}
    assert [k for k in settings if k not in configurable] == []
    for profile in profiles(name):
        override = profile.get("kubespawner_override") or {}
        assert [k for k in override if not PlatformSpawner.class_traits().get(k)] == [], profile["slug"]


@pytest.mark.parametrize("name", VALUES_FILES, ids=VALUES_FILES)
def test_profiles_have_unique_slugs_and_one_default(name):
    slugs = [p["slug"] for p in profiles(name)]
    assert len(slugs) == len(set(slugs))
    assert sum(bool(p.get("default")) for p in profiles(name)) == 1


def test_production_values():
    v = values("values.yaml")
    assert v["hub"]["image"]["name"] and v["hub"]["image"]["tag"]
    assert "spawner_class" not in (v["hub"]["config"].get("JupyterHub") or {})  # the image's snippet sets it
    single = v["singleuser"]
    assert single["cloudMetadata"]["blockWithIptables"] is False
    rules = single["networkPolicy"]["egressAllowRules"]
    assert single["networkPolicy"]["enabled"] is True
    # nonPrivateIPs excepts 169.254.169.254; cloudMetadataServer is the only rule that allows it.
    assert rules["cloudMetadataServer"] is False and rules["privateIPs"] is False
    by_slug = {p["slug"]: p for p in single["profileList"]}
    assert "pyspark-notebook" in by_slug["pyspark"]["kubespawner_override"]["image"]
    gpu_types = {p["gpu"]["type"] for p in single["profileList"] if "gpu" in p}
    assert gpu_types == {"T4", "A100"}
    assert v["hub"]["config"]["PlatformSpawner"]["shared_datasets"]
    assert v["hub"]["service"]["annotations"]["prometheus.io/scrape"] == "true"
    assert v["hub"]["service"]["annotations"]["prometheus.io/path"] == "/hub/metrics"
    # jhplatform's GPU-aware culler replaces z2jh's, with tighter limits for GPU servers.
    assert v["cull"]["enabled"] is False
    culler = v["custom"]["jhplatform"]["culler"]
    assert culler["gpu"]["idleTimeout"] < culler["cpu"]["idleTimeout"]


def demo_nodes() -> list[dict]:
    from jhplatform.cli.demo import DEMO_NODES

    return parse_nodes(DEMO_NODES)


def test_demo_offers_cpu_a100_t4_and_its_nodes_have_them():
    demo = profiles("demo.yaml")
    assert {p.get("gpu", {}).get("type") for p in demo} == {None, "A100", "T4"}
    nodes = demo_nodes()
    for profile in demo:
        gpu = profile.get("gpu")
        if not gpu:
            continue
        fitting = [
            n for n in nodes
            if n["metadata"].get("labels", {}).get(gpu["type_label"]) == gpu["type_value"]
            and int(n["status"]["allocatable"].get(gpu["resource"], "0")) >= gpu["count"]
        ]
        assert fitting, f"no demo node for profile {profile['slug']}"
