"""Run JupyterHub as z2jh 4.4.0's hub pod runs it, on this machine (tests and ``make demo``).

:class:`HubPod` lays out, in a work directory, what the hub pod has on disk (see
docs/z2jh-loader.md): ``jupyterhub_config.py`` and ``z2jh.py``, one ``config/<name>`` file per
resource name, the ``secret/`` files (the merged ``values.yaml``, the cookie secret, the
CryptKeeper keys, the proxy token, service tokens), the image's ``jupyterhub_config.d/`` and an
empty ``/srv/jupyterhub``. It then runs a command in a private mount namespace (``unshare
--mount``) where these are bind-mounted at the pod's own paths, ``/usr/local/etc/jupyterhub``
and ``/srv/jupyterhub``, so the hard-coded paths in ``z2jh.py`` are the real ones. Nothing
changes outside that namespace.

The Kubernetes Services the hub reaches by name (``hub``, ``proxy-api``, ``proxy-public``)
resolve to 127.0.0.1 inside the namespace (an ``/etc/hosts`` bind-mounted there), and the
environment is the Deployment's: ``PYTHONUNBUFFERED``, ``HELM_RELEASE_NAME``, ``POD_NAMESPACE``,
``CONFIGPROXY_AUTH_TOKEN`` and the Service variables the kubelet injects, pointed at loopback
ports. One difference is forced by sharing loopback with other processes: the hub container
binds port 8081 in its pod, here ``hub_port``, set through ``hub.config.JupyterHub.hub_bind_url``
(the chart's own pass-through, step 9) in a values layer added last.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterable

import yaml

from .values import load_values_files, release_values

ETC = "/usr/local/etc/jupyterhub"
SRV = "/srv/jupyterhub"
CONFIG_FILE = f"{ETC}/jupyterhub_config.py"

#: The pod's config/<name> files: the names z2jh 4.4.0 gives its resources with an empty
#: ``fullnameOverride`` (the default); cluster-wide ones are prefixed with the release name.
def resource_names(release: str) -> dict[str, str]:
    names = {
        "hub": "hub",
        "hub-serviceaccount": "hub",
        "hub-existing-secret": "hub-existing-secret",
        "hub-existing-secret-or-default": "hub",
        "hub-pvc": "hub-db-dir",
        "proxy": "proxy",
        "proxy-api": "proxy-api",
        "proxy-http": "proxy-http",
        "proxy-public": "proxy-public",
        "proxy-public-tls": "proxy-public-tls-acme",
        "proxy-public-manual-tls": "proxy-public-manual-tls",
        "autohttps": "autohttps",
        "singleuser": "singleuser",
        "image-pull-secret": "image-pull-secret",
        "user-scheduler-deploy": "user-scheduler",
        "user-placeholder": "user-placeholder",
        "continuous-image-puller": "continuous-image-puller",
        "hook-image-puller": "hook-image-puller",
        "hook-image-awaiter": "hook-image-awaiter",
    }
    names.update(
        {
            "user-scheduler": f"{release}-user-scheduler",
            "priority": f"{release}-default-priority",
            "user-placeholder-priority": f"{release}-user-placeholder-priority",
            "image-puller-priority": f"{release}-image-puller-priority",
        }
    )
    return names


def _token() -> str:
    return secrets.token_hex(32)


def _hub_file(name: str) -> str:
    return resources.files(__package__).joinpath("hub", name).read_text()


@dataclass
class HubPod:
    """A hub pod's files in ``workdir``, and the commands to run inside its mount namespace.

    Parameters
    ----------
    workdir:
        An empty directory of the caller's; everything goes below it.
    values:
        The values files' contents, in ``helm upgrade -f`` order.
    snippets:
        The image's ``jupyterhub_config.d`` directory (copied as the image's ``COPY`` does).
    release, namespace:
        Helm's release name and namespace (``HELM_RELEASE_NAME``, ``POD_NAMESPACE``).
    hub_port, proxy_api_port, proxy_public_port:
        The loopback ports of the hub and of the proxy's API and public Services.
    python:
        The interpreter whose ``jupyterhub`` runs (the image's environment).
    kubeconfig:
        Where the hub finds the Kubernetes API (the emulator's kubeconfig).
    """

    workdir: Path
    values: list[dict]
    snippets: Path | None
    release: str = "jhub"
    namespace: str = "jhub"
    hub_port: int = 8081
    proxy_api_port: int = 8001
    proxy_public_port: int = 8000
    python: str = sys.executable
    kubeconfig: Path | None = None
    extra_env: dict = field(default_factory=dict)

    def __post_init__(self):
        self.workdir = Path(self.workdir)
        self.proxy_token = _token()
        self.merged: dict = {}

    @classmethod
    def from_files(cls, workdir: Path, paths: Iterable[str | Path], snippets: Path | None, **kwargs) -> "HubPod":
        return cls(workdir, load_values_files(paths), snippets, **kwargs)

    # -- the files ------------------------------------------------------------------------------

    @property
    def etc(self) -> Path:
        """What is mounted at /usr/local/etc (holds ``jupyterhub/``)."""
        return self.workdir / "usr-local-etc"

    @property
    def srv(self) -> Path:
        """What is mounted at /srv (holds ``jupyterhub/``, the hub's working directory)."""
        return self.workdir / "srv"

    @property
    def hosts(self) -> Path:
        return self.workdir / "hosts"

    def loopback_values(self) -> dict:
        """The last values layer: the hub's bind address on shared loopback (see the module doc)."""
        return {"hub": {"config": {"JupyterHub": {"hub_bind_url": f"http://127.0.0.1:{self.hub_port}"}}}}

    def lay_out(self) -> None:
        """Write the pod's files (idempotent for a fresh ``workdir``)."""
        self.merged = release_values(self.values + [self.loopback_values()], self.release, self.namespace)
        etc = self.etc / "jupyterhub"
        (etc / "config").mkdir(parents=True, exist_ok=True)
        (etc / "secret").mkdir(parents=True, exist_ok=True)
        (self.srv / "jupyterhub").mkdir(parents=True, exist_ok=True)
        (etc / "jupyterhub_config.py").write_text(_hub_file("jupyterhub_config.py"))
        (etc / "z2jh.py").write_text(_hub_file("z2jh.py"))
        for key, name in resource_names(self.release).items():
            (etc / "config" / key).write_text(name)
        secret = etc / "secret"
        (secret / "values.yaml").write_text(yaml.safe_dump(self.merged, sort_keys=False))
        hub_config = self.merged.get("hub", {}).get("config") or {}
        given = {
            "hub.config.JupyterHub.cookie_secret": (hub_config.get("JupyterHub") or {}).get("cookie_secret"),
            "hub.config.CryptKeeper.keys": ";".join((hub_config.get("CryptKeeper") or {}).get("keys") or []),
            "hub.config.ConfigurableHTTPProxy.auth_token": self.proxy_token,
        }
        for key, value in given.items():
            (secret / key).write_text(value or _token())
        for name, service in (self.merged.get("hub", {}).get("services") or {}).items():
            (secret / f"hub.services.{name}.apiToken").write_text((service or {}).get("apiToken") or _token())
        if self.snippets is not None:
            target = etc / "jupyterhub_config.d"
            target.mkdir(exist_ok=True)
            for path in sorted(Path(self.snippets).glob("*.py")):
                shutil.copy(path, target / path.name)
        host_lines = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else "127.0.0.1 localhost\n"
        names = resource_names(self.release)
        self.hosts.write_text(host_lines.rstrip("\n") + f"\n127.0.0.1 {names['hub']} {names['proxy-api']} {names['proxy-public']}\n")

    # -- running ----------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The hub container's environment (the Deployment's, with loopback Services)."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONUNBUFFERED": "1",
            "HELM_RELEASE_NAME": self.release,
            "POD_NAMESPACE": self.namespace,
            "CONFIGPROXY_AUTH_TOKEN": self.proxy_token,
            "HUB_SERVICE_HOST": "127.0.0.1",
            "HUB_SERVICE_PORT": str(self.hub_port),
            "PROXY_API_SERVICE_HOST": "127.0.0.1",
            "PROXY_API_SERVICE_PORT": str(self.proxy_api_port),
            "PROXY_PUBLIC_SERVICE_HOST": "127.0.0.1",
            "PROXY_PUBLIC_SERVICE_PORT": str(self.proxy_public_port),
        }
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        env.update(self.extra_env)
        return env

    def hub_command(self) -> list[str]:
        """The hub container's command, with the image environment's ``jupyterhub``."""
        return [str(Path(self.python).parent / "jupyterhub"), "--config", CONFIG_FILE, "--upgrade-db"]

    def proxy_command(self, chp: str) -> list[str]:
        """configurable-http-proxy as the proxy pod runs it: public and API ports, the hub by Service name.

        It must run in the pod's namespace (:meth:`popen`) to resolve the name ``hub``; it reads
        its token from ``CONFIGPROXY_AUTH_TOKEN`` in :meth:`env`.
        """
        hub = f"http://{resource_names(self.release)['hub']}:{self.hub_port}"
        return [chp, "--ip", "127.0.0.1", "--port", str(self.proxy_public_port), "--api-ip", "127.0.0.1",
                "--api-port", str(self.proxy_api_port), "--default-target", hub, "--error-target", hub + "/hub/error"]

    def in_namespace(self, command: list[str]) -> list[str]:
        """``command`` run in a new mount namespace with the pod's files at the pod's paths."""
        script = (
            'set -e; mount --bind "$1" /usr/local/etc; mount --bind "$2" /srv; '
            'mount --bind "$3" /etc/hosts; cd ' + SRV + '; shift 3; exec "$@"'
        )
        unshare = ["unshare", "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            unshare.append("--map-root-user")
        return unshare + ["--", "sh", "-c", script, "hub-pod", str(self.etc), str(self.srv), str(self.hosts), *command]

    def popen(self, command: list[str] | None = None, **kwargs) -> subprocess.Popen:
        """Start ``command`` (default: the hub) in the pod's namespace and environment."""
        kwargs.setdefault("env", self.env())
        kwargs.setdefault("start_new_session", True)
        return subprocess.Popen(self.in_namespace(command or self.hub_command()), **kwargs)

    def run(self, command: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run ``command`` to completion in the pod's namespace and environment."""
        kwargs.setdefault("env", self.env())
        return subprocess.run(self.in_namespace(command), **kwargs)


__all__ = ["CONFIG_FILE", "ETC", "HubPod", "SRV", "resource_names"]
