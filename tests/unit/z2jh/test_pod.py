"""The hub pod's files and environment as HubPod lays them out, and z2jh.py reading them in place.

We test these aspects:
- the files at the pod's paths: jupyterhub_config.py, z2jh.py, config/<name> (release-prefixed
  cluster-wide names), secret/values.yaml (merged values with Chart and Release, the loopback
  hub_bind_url layer last), generated secrets (64 hex digits) and given ones (CryptKeeper keys
  joined with ";", service apiTokens), the image's snippets, /etc/hosts with the Service names;
- the Deployment's environment, pointed at loopback ports;
- the command: ``jupyterhub --config … --upgrade-db`` of the given interpreter, wrapped in
  ``unshare --mount`` (with ``--map-root-user`` when not root), and the proxy's command;
- z2jh.py, run inside the namespace: get_config with dotted keys and defaults, get_name,
  get_name_env, get_secret_value (existing-secret wins; a missing key raises unless a default is
  given), set_config_if_not_none.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import yaml

from helpers import REPO
from jhplatform.z2jh import HubPod

VALUES = {
    "hub": {"config": {"CryptKeeper": {"keys": ["aa", "bb"]}}, "services": {"ops": {"apiToken": "t0ken"}, "other": {}}},
    "singleuser": {"storage": {"capacity": "20Gi"}},
}


def make(tmp_path, **kwargs) -> HubPod:
    pod = HubPod(tmp_path / "pod", [VALUES], REPO / "jupyterhub_config.d", release="prod", namespace="hubs",
                 hub_port=18081, proxy_api_port=18001, proxy_public_port=18000, python="/opt/env/bin/python", **kwargs)
    pod.lay_out()
    return pod


def test_files(tmp_path):
    pod = make(tmp_path)
    etc = pod.etc / "jupyterhub"
    assert (etc / "jupyterhub_config.py").read_text().startswith("# The hub pod's /usr/local/etc/jupyterhub/jupyterhub_config.py")
    assert "def get_config(key, default=None)" in (etc / "z2jh.py").read_text()
    assert (etc / "config" / "hub").read_text() == "hub"
    assert (etc / "config" / "proxy-api").read_text() == "proxy-api"
    assert (etc / "config" / "user-scheduler").read_text() == "prod-user-scheduler"
    assert (etc / "config" / "priority").read_text() == "prod-default-priority"
    values = yaml.safe_load((etc / "secret" / "values.yaml").read_text())
    assert values["singleuser"]["storage"]["capacity"] == "20Gi"
    assert values["singleuser"]["storage"]["homeMountPath"] == "/home/jovyan"
    assert values["Release"] == {"Name": "prod", "Namespace": "hubs", "Service": "Helm"}
    assert values["hub"]["config"]["JupyterHub"]["hub_bind_url"] == "http://127.0.0.1:18081"
    secret = etc / "secret"
    assert re.fullmatch(r"[0-9a-f]{64}", (secret / "hub.config.JupyterHub.cookie_secret").read_text())
    assert (secret / "hub.config.ConfigurableHTTPProxy.auth_token").read_text() == pod.proxy_token
    assert (secret / "hub.config.CryptKeeper.keys").read_text() == "aa;bb"
    assert (secret / "hub.services.ops.apiToken").read_text() == "t0ken"
    assert re.fullmatch(r"[0-9a-f]{64}", (secret / "hub.services.other.apiToken").read_text())
    assert sorted(p.name for p in (etc / "jupyterhub_config.d").iterdir()) == sorted(p.name for p in (REPO / "jupyterhub_config.d").glob("*.py"))
    assert (pod.srv / "jupyterhub").is_dir()
    assert pod.hosts.read_text().splitlines()[-1] == "127.0.0.1 hub proxy-api proxy-public"


def test_environment_and_commands(tmp_path, monkeypatch):
    pod = make(tmp_path, kubeconfig=tmp_path / "kubeconfig")
    env = pod.env()
    assert {k: env[k] for k in env if k not in ("PATH", "HOME", "LANG")} == {
        "PYTHONUNBUFFERED": "1",
        "HELM_RELEASE_NAME": "prod",
        "POD_NAMESPACE": "hubs",
        "CONFIGPROXY_AUTH_TOKEN": pod.proxy_token,
        "HUB_SERVICE_HOST": "127.0.0.1",
        "HUB_SERVICE_PORT": "18081",
        "PROXY_API_SERVICE_HOST": "127.0.0.1",
        "PROXY_API_SERVICE_PORT": "18001",
        "PROXY_PUBLIC_SERVICE_HOST": "127.0.0.1",
        "PROXY_PUBLIC_SERVICE_PORT": "18000",
        "KUBECONFIG": str(tmp_path / "kubeconfig"),
    }
    assert pod.hub_command() == ["/opt/env/bin/jupyterhub", "--config", "/usr/local/etc/jupyterhub/jupyterhub_config.py", "--upgrade-db"]
    wrapped = pod.in_namespace(["true"])
    assert wrapped[:5] == ["unshare", "--mount", "--propagation", "private", "--"]
    assert wrapped[-4:] == [str(pod.etc), str(pod.srv), str(pod.hosts), "true"]
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert pod.in_namespace(["true"])[:5] == ["unshare", "--mount", "--propagation", "private", "--map-root-user"]
    assert pod.proxy_command("chp") == ["chp", "--ip", "127.0.0.1", "--port", "18000", "--api-ip", "127.0.0.1", "--api-port", "18001",
                                        "--default-target", "http://hub:18081", "--error-target", "http://hub:18081/hub/error"]


PROBE = """
import json, sys
sys.path.insert(0, "/usr/local/etc/jupyterhub")
from z2jh import get_config, get_name, get_name_env, get_secret_value, set_config_if_not_none
out = {
    "capacity": get_config("singleuser.storage.capacity"),
    "missing": get_config("singleuser.nothing.here", "dflt"),
    "through_scalar": get_config("singleuser.storage.capacity.more"),
    "name": get_name("user-scheduler"),
    "port": get_name_env("proxy-api", "_SERVICE_PORT"),
    "keys": get_secret_value("hub.config.CryptKeeper.keys"),
    "default": get_secret_value("no.such.key", None),
}
try:
    get_secret_value("no.such.key")
except KeyError as e:
    out["raises"] = str(e)
class Section: pass
s = Section()
set_config_if_not_none(s, "a", "singleuser.storage.capacity")
set_config_if_not_none(s, "b", "singleuser.nothing")
out["set"] = vars(s)
print(json.dumps(out))
"""


def test_z2jh_helpers_read_the_pod_paths(tmp_path):
    pod = make(tmp_path)
    existing = pod.etc / "jupyterhub" / "existing-secret"
    existing.mkdir()
    (existing / "hub.config.CryptKeeper.keys").write_text("from-existing")
    result = pod.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "capacity": "20Gi",
        "missing": "dflt",
        "through_scalar": None,
        "name": "prod-user-scheduler",
        "port": "18001",
        "keys": "from-existing",
        "default": None,
        "raises": "'Secret key not found: no.such.key'",
        "set": {"a": "20Gi"},
    }
    # Nothing of the pod is visible outside its namespace.
    assert subprocess.run(["test", "-e", "/usr/local/etc/jupyterhub/z2jh.py"]).returncode != 0
