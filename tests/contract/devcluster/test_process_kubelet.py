"""The process kubelet (``jhplatform.devcluster.process_kubelet``): pods as real local processes.

We test these aspects:
- a pod running ``python -m http.server 8888 --bind 0.0.0.0`` gets its own 127.x address
  (not 127.0.0.1) as podIP and hostIP, listens there (``0.0.0.0`` rewritten), turns Running and
  ready when the port accepts connections, and answers HTTP; its output goes to the log file;
- a container that is slow to listen is Running but not ready until its port opens;
- without command or args the image's CMD runs (``image_commands``); an unknown image with no
  command is simulated (Running, no process);
- the container environment and filesystem: env values, fieldRef, secretKeyRef,
  configMapKeyRef, envFrom, ``$(VAR)`` expansion, ``JUPYTERHUB_SERVICE_URL`` rewriting, HOME
  on the mapped ``/home/jovyan``, the working directory, path rewriting in args and env,
  secret files written from the store (decoded, read-only);
- a file written into a PVC-mounted path survives pod deletion under the claim directory,
  while the emptyDir is removed;
- exit codes propagate (exit 3 -> Failed; killed by a signal -> 128+sig; OnFailure restarts
  the process into CrashLoopBackOff);
- deletion: SIGTERM stops a normal process (143); a process ignoring SIGTERM is SIGKILLed
  after a grace period of 1 s (137);
- a missing executable leaves the container in RunContainerError with a Warning event;
- ``stop()`` leaves no process behind, grandchildren in the process group included.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from kubespawner import KubeSpawner

from helpers import wait_for
from jhplatform.devcluster.cluster import Cluster
from jhplatform.devcluster.process_kubelet import PathMap, ProcessKubelet, expand_vars

NODE = "node-1"
IMAGE = "quay.io/jupyterhub/singleuser:5.5"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): check its state in /proc where available.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class Env:
    def __init__(self, cluster: Cluster, kubelet: ProcessKubelet, state: Path):
        self.cluster, self.kubelet, self.state = cluster, kubelet, state

    def pod(self, name: str) -> dict | None:
        return self.cluster.store.find("pods", "ns", name)

    def notebook(self, name: str) -> dict:
        for cs in ((self.pod(name) or {}).get("status") or {}).get("containerStatuses") or []:
            if cs["name"] == "notebook":
                return cs
        return {}

    def events(self, name: str) -> list[dict]:
        return [e for e in self.cluster.store.list("events", "ns") if e["involvedObject"]["name"] == name]

    def create(self, name: str, container: dict, *, restart_policy: str = "OnFailure", **spec) -> dict:
        container = {"name": "notebook", "image": IMAGE, **container}
        body = {"metadata": {"name": name}, "spec": {"nodeName": NODE, "restartPolicy": restart_policy, "containers": [container], **spec}}
        return self.cluster.create("pods", "ns", body)

    def script(self, name: str, code: str, **kw) -> dict:
        return self.create(name, {"command": ["python", "-c", textwrap.dedent(code)], **kw.pop("container", {})}, **kw)

    async def running(self, name: str) -> dict:
        return await wait_for(lambda: (p := self.pod(name)) is not None and KubeSpawner.is_pod_running(None, p) and p, message=f"{name} running")

    async def phase(self, name: str, phase: str) -> dict:
        return await wait_for(lambda: (p := self.pod(name)) is not None and p["status"].get("phase") == phase and p, message=f"{name} {phase}")

    async def gone(self, name: str, timeout: float = 10.0) -> None:
        await wait_for(lambda: self.pod(name) is None, timeout=timeout, message=f"{name} deleted")


@pytest.fixture
async def env(tmp_path):
    cluster = Cluster()
    state = tmp_path / "state"
    kubelet = ProcessKubelet(cluster, state_dir=state, step_delay=0.01, restart_backoff=0.2, retry_interval=0.05)
    cluster.controllers.append(kubelet)
    cluster.create("namespaces", None, {"metadata": {"name": "ns"}})
    await cluster.start()
    e = Env(cluster, kubelet, state)
    try:
        yield e
    finally:
        await cluster.stop()
        assert kubelet.pids() == []


def http_get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read()


HTTP_SERVER = {"command": ["python", "-m", "http.server", "8888", "--bind", "0.0.0.0"], "ports": [{"containerPort": 8888, "name": "notebook-port"}]}


async def test_http_server_pod_is_reachable_on_its_own_loopback_ip(env):
    pod = env.create("web", HTTP_SERVER)
    pod = await env.running("web")
    ip = pod["status"]["podIP"]
    assert ip.startswith("127.") and ip != "127.0.0.1"
    assert pod["status"]["hostIP"] == ip and pod["status"]["podIPs"] == [{"ip": ip}]
    status, body = await asyncio.to_thread(http_get, f"http://{ip}:8888/")
    assert status == 200 and b"Directory listing" in body
    # It listens on the pod IP only, not on every loopback address.
    with pytest.raises(OSError):
        await asyncio.to_thread(http_get, "http://127.254.254.254:8888/")
    assert env.kubelet.pids(), "the container runs as a process"
    log = env.kubelet.logs("ns", "web")
    assert f"--bind', '{ip}'" in log, "0.0.0.0 in args was rewritten to the pod IP"
    assert '"GET / HTTP/1.1" 200' in log
    env.create("web-2", HTTP_SERVER)
    second = await env.running("web-2")
    assert second["status"]["podIP"] not in (ip, "127.0.0.1")
    assert (await asyncio.to_thread(http_get, f"http://{second['status']['podIP']}:8888/"))[0] == 200


async def test_container_is_ready_only_once_its_port_accepts(env):
    env.script(
        "slow",
        """
        import time, http.server, sys
        time.sleep(0.6)
        http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, port=8888, bind=sys.argv[1])
        """,
        container={"args": ["0.0.0.0"], "ports": [{"containerPort": 8888}]},
    )
    pod = await env.phase("slow", "Running")
    assert env.notebook("slow")["ready"] is False
    assert not KubeSpawner.is_pod_running(None, pod)
    pod = await env.running("slow")
    assert env.notebook("slow")["ready"] is True


async def test_image_cmd_is_used_without_command_or_args(env):
    env.kubelet.image_commands["example.org/web"] = HTTP_SERVER["command"]
    env.create("imgcmd", {"image": "example.org/web:1", "ports": HTTP_SERVER["ports"]})
    pod = await env.running("imgcmd")
    assert env.kubelet.pids_for(pod), "the image CMD runs as a process"
    assert (await asyncio.to_thread(http_get, f"http://{pod['status']['podIP']}:8888/"))[0] == 200
    env.create("sim", {"image": "example.org/unknown:1"})
    pod = await env.running("sim")
    assert env.kubelet.pids_for(pod) == []
    assert env.kubelet.pids_for(("ns", "imgcmd"))


async def test_environment_and_filesystem_mapping(env):
    env.cluster.create(
        "persistentvolumeclaims",
        "ns",
        {"metadata": {"name": "claim-alice"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
    )
    env.cluster.create("secrets", "ns", {"metadata": {"name": "creds"}, "data": {"token": base64.b64encode(b"s3cret").decode(), "ssl.key": base64.b64encode(b"KEY").decode()}})
    env.cluster.create("configmaps", "ns", {"metadata": {"name": "settings"}, "data": {"COLOR": "blue", "SIZE": "9"}})
    code = """
        import json, os, sys
        out = {
            "env": {k: os.environ.get(k) for k in ("HOME", "GREETING", "POD_NAME", "POD_NS", "POD_IP", "NODE", "TOKEN",
                    "COLOR", "CFG_SIZE", "JUPYTERHUB_SERVICE_URL", "DATA_DIR", "SSL_KEY", "PATH")},
            "argv": sys.argv[1:],
            "cwd": os.getcwd(),
            "key": open(os.environ["SSL_KEY"]).read(),
        }
        with open(os.path.join(os.environ["HOME"], "out.json"), "w") as f:
            json.dump(out, f)
        """
    env.script(
        "mapped",
        code,
        restart_policy="Never",
        container={
            "args": ["--notebook-dir=/home/jovyan/work", "--ip=0.0.0.0"],
            "workingDir": "/home/jovyan",
            "env": [
                {"name": "GREETING", "value": "hello $(POD_NAME)"},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                {"name": "CFG_SIZE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "SIZE"}}},
                {"name": "JUPYTERHUB_SERVICE_URL", "value": "http://0.0.0.0:8888/user/alice/"},
                {"name": "DATA_DIR", "value": "/home/jovyan/data"},
                {"name": "SSL_KEY", "value": "/etc/jupyterhub/ssl/ssl.key"},
            ],
            "envFrom": [{"configMapRef": {"name": "settings"}}],
            "volumeMounts": [
                {"name": "home", "mountPath": "/home/jovyan"},
                {"name": "certs", "mountPath": "/etc/jupyterhub/ssl/"},
            ],
        },
        volumes=[
            {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}},
            {"name": "certs", "secret": {"secretName": "creds", "defaultMode": 511}},
        ],
    )
    pod = await env.phase("mapped", "Succeeded")
    assert env.notebook("mapped")["state"]["terminated"]["exitCode"] == 0
    claim = env.state / "volumes" / "ns" / "claim-alice"
    out = json.loads((claim / "out.json").read_text())
    ip = pod["status"]["podIP"]
    e = out["env"]
    assert e["HOME"] == str(claim)
    assert out["cwd"] == str(claim)
    assert e["GREETING"] == "hello $(POD_NAME)", "a variable defined later is not expanded"
    assert (e["POD_NAME"], e["POD_NS"], e["POD_IP"], e["NODE"]) == ("mapped", "ns", ip, NODE)
    assert e["TOKEN"] == "s3cret" and e["COLOR"] == "blue" and e["CFG_SIZE"] == "9"
    assert e["JUPYTERHUB_SERVICE_URL"] == f"http://{ip}:8888/user/alice/"
    assert e["DATA_DIR"] == str(claim / "data")
    assert e["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert out["argv"] == [f"--notebook-dir={claim}/work", f"--ip={ip}"]
    assert out["key"] == "KEY"
    secret_dir = Path(e["SSL_KEY"]).parent
    assert str(secret_dir).startswith(str(env.state))
    assert stat.S_IMODE(os.stat(secret_dir).st_mode) == 0o555, "secret volumes are read-only"
    assert stat.S_IMODE(os.stat(e["SSL_KEY"]).st_mode) == 0o777, "defaultMode 511 is applied"


async def test_pvc_file_survives_deletion_and_emptydir_does_not(env):
    env.cluster.create(
        "persistentvolumeclaims",
        "ns",
        {"metadata": {"name": "claim-bob"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
    )
    pod = env.script(
        "writer",
        """
        import pathlib, time
        pathlib.Path("/home/jovyan/notes.txt").write_text("kept")
        pathlib.Path("/scratch/tmp.txt").write_text("dropped")
        pathlib.Path("/home/jovyan/.done").touch()
        time.sleep(60)
        """,
        container={"volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}, {"name": "scratch", "mountPath": "/scratch"}]},
        volumes=[{"name": "home", "persistentVolumeClaim": {"claimName": "claim-bob"}}, {"name": "scratch", "emptyDir": {}}],
    )
    claim = env.state / "volumes" / "ns" / "claim-bob"
    pod_dir = env.state / "pods" / "ns" / f"writer-{pod['metadata']['uid']}"
    await wait_for(lambda: (claim / ".done").exists(), message="script wrote its files")
    assert (pod_dir / "emptydir" / "scratch" / "tmp.txt").read_text() == "dropped"
    env.cluster.delete("pods", "ns", "writer", grace_period=5)
    await env.gone("writer")
    assert (claim / "notes.txt").read_text() == "kept"
    assert not (pod_dir / "emptydir").exists()
    assert (pod_dir / "notebook.log").exists(), "logs are kept for debugging"


@pytest.mark.parametrize(
    "code, expected",
    [("import sys; sys.exit(3)", 3), ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 137)],
)
async def test_exit_code_propagates(env, code, expected):
    env.script("exits", code, restart_policy="Never")
    pod = await env.phase("exits", "Failed")
    term = env.notebook("exits")["state"]["terminated"]
    assert term["exitCode"] == expected and term["reason"] == "Error"
    assert pod["status"]["phase"] == "Failed"


async def test_on_failure_restarts_the_process(env):
    env.script("crashy", "import sys; sys.exit(4)")
    await wait_for(lambda: env.notebook("crashy").get("restartCount", 0) >= 1, message="restart")
    cs = env.notebook("crashy")
    assert cs["lastState"]["terminated"]["exitCode"] == 4
    assert env.pod("crashy")["status"]["phase"] == "Running"
    await wait_for(lambda: env.notebook("crashy").get("restartCount", 0) >= 2, message="second restart")
    log = env.kubelet.logs("ns", "crashy")
    assert log.count("starting [") >= 2, "the process really ran again"


async def test_sigterm_stops_a_normal_process_with_143(env):
    env.create("term", HTTP_SERVER)
    await env.running("term")
    pids = env.kubelet.pids()
    loop = asyncio.get_running_loop()
    began = loop.time()
    history = env.cluster.store.subscribe(["pods"])
    env.cluster.delete("pods", "ns", "term", grace_period=30)
    await env.gone("term")
    assert loop.time() - began < 5
    changes = []
    while not history.empty():
        changes.append(history.get_nowait())
    assert [c.type for c in changes] == ["MODIFIED", "MODIFIED", "DELETED"]
    final = changes[1].obj
    assert final["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143
    assert final["status"]["phase"] == "Failed"
    assert not any(alive(p) for p in pids)


async def test_process_ignoring_sigterm_is_killed_after_grace(env):
    env.script(
        "stubborn",
        """
        import signal, time, pathlib, os
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        pathlib.Path(os.environ["HOME"], "ready").touch()
        time.sleep(120)
        """,
    )
    pod = await env.running("stubborn")
    home = env.state / "pods" / "ns" / f"stubborn-{pod['metadata']['uid']}" / "home"
    await wait_for(lambda: (home / "ready").exists(), message="SIGTERM handler installed")
    pids = env.kubelet.pids()
    history = env.cluster.store.subscribe(["pods"])
    loop = asyncio.get_running_loop()
    began = loop.time()
    env.cluster.delete("pods", "ns", "stubborn", grace_period=1)
    await asyncio.sleep(0.5)
    assert all(alive(p) for p in pids), "SIGTERM is ignored: still running within the grace period"
    await env.gone("stubborn")
    took = loop.time() - began
    assert 0.9 <= took < 5, took
    changes = []
    while not history.empty():
        changes.append(history.get_nowait())
    final = [c.obj for c in changes if c.type == "MODIFIED"][-1]
    assert final["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    assert not any(alive(p) for p in pids)


async def test_missing_executable_is_a_container_error_not_a_crash(env):
    env.create("noexe", {"command": ["definitely-not-a-command-xyz"]})
    await wait_for(lambda: (env.notebook("noexe").get("state") or {}).get("waiting", {}).get("reason") == "RunContainerError", message="RunContainerError")
    waiting = env.notebook("noexe")["state"]["waiting"]
    assert 'exec: "definitely-not-a-command-xyz": executable file not found in $PATH' in waiting["message"]
    assert env.pod("noexe")["status"]["phase"] == "Pending"
    failed = [e for e in env.events("noexe") if e["reason"] == "Failed"]
    assert failed and failed[0]["type"] == "Warning" and "executable file not found" in failed[0]["message"]
    # The kubelet still runs other pods.
    env.create("after", HTTP_SERVER)
    await env.running("after")


async def test_stop_leaves_no_process_behind(env, tmp_path):
    marker = tmp_path / "grandchild.pid"
    env.script(
        "family",
        f"""
        import subprocess, sys, time, pathlib, signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
        pathlib.Path({str(marker)!r}).write_text(str(child.pid))
        time.sleep(120)
        """,
    )
    env.create("web", HTTP_SERVER)
    await env.running("family")
    await env.running("web")
    await wait_for(lambda: marker.exists() and marker.read_text(), message="grandchild started")
    pids = env.kubelet.pids()
    grandchild = int(marker.read_text())
    assert len(pids) == 2 and all(alive(p) for p in pids) and alive(grandchild)
    await env.cluster.stop()
    assert env.kubelet.pids() == []
    assert not any(alive(p) for p in pids)
    await wait_for(lambda: not alive(grandchild), timeout=3, message="grandchild gone")


def test_path_mapping_and_expansion_helpers(tmp_path):
    home, data, certs = tmp_path / "home", tmp_path / "data", tmp_path / "certs"
    paths = PathMap([("/home/jovyan", home), ("/home/jovyan/data/", data), ("/etc/ssl", certs)])
    assert paths.local("/home/jovyan/data/x") == data / "x", "the longest mount wins"
    assert paths.local("/home/jovyan/datax") == home / "datax"
    assert paths.local("/home/jovyanx") is None
    assert paths.rewrite("--dir=/home/jovyan/data/a:/etc/ssl/k") == f"--dir={data}/a:{certs}/k"
    assert paths.rewrite("http://hub:8081/home/jovyan") == "http://hub:8081/home/jovyan", "URL paths are not file paths"
    assert paths.rewrite("/etc/sslx") == "/etc/sslx"
    assert expand_vars("$(A)-$(B)-$$(A)", {"A": "1"}) == "1-$(B)-$(A)"
