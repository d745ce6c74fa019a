"""The z2jh 4.4 drop-in: helm values, config snippets and the hub image recipe.

We test these aspects:
- (Helm's own validation of every values file is in test_helm_validation.py);
- it turns off z2jh's privileged iptables init container and keeps the NetworkPolicy rule that
  blocks the cloud metadata server;
- (the snippets under z2jh's own loader are tested in test_z2jh_loader.py: nothing here execs them);
- the Dockerfile builds FROM the z2jh 4.4.0 hub image and installs into z2jh's config.d path.
"""

from __future__ import annotations

import yaml

from helpers import REPO
from jhplatform.z2jh import release_values


def merged_values() -> dict:
    """platform.yaml merged over the chart's values as Helm merges them (jhplatform.z2jh)."""
    ours = yaml.safe_load((REPO / "helm-values" / "platform.yaml").read_text())
    values = release_values([ours])
    del values["Chart"], values["Release"]  # added by the chart's Secret, not part of the schema
    return values


def test_values_replace_iptables_with_network_policy():
    values = merged_values()["singleuser"]
    assert values["cloudMetadata"]["blockWithIptables"] is False
    assert values["networkPolicy"]["enabled"] is True
    assert values["networkPolicy"]["egressAllowRules"]["cloudMetadataServer"] is False


def test_dockerfile_builds_on_z2jh_hub_image():
    text = (REPO / "Dockerfile").read_text()
    from_lines = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert from_lines == ["FROM quay.io/jupyterhub/k8s-hub:4.4.0"]
    assert "COPY jupyterhub_config.d/ /usr/local/etc/jupyterhub/jupyterhub_config.d/" in text


def test_storage_rbac_manifest_grants_only_claim_patch():
    docs = [d for d in yaml.safe_load_all((REPO / "helm-values" / "storage-rbac.yaml").read_text()) if d]
    role = next(d for d in docs if d["kind"] == "Role")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["patch"]}]
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hub", "namespace": role["metadata"]["namespace"]}]
