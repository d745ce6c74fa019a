"""A kubelet that runs pod containers as real local processes.

:class:`ProcessKubelet` walks pods through the same states as the simulated
:class:`~jhplatform.devcluster.kubelet.Kubelet`, but each container with a command runs as a
process on this machine, so a notebook server started by KubeSpawner really listens and
answers:

- **Network.** Each pod gets its own loopback address ``127.x.y.z`` (from a block that depends on
  the emulator's process id, so emulators running side by side rarely meet; never
  ``127.0.0.1``) as ``podIP`` and ``hostIP``. ``0.0.0.0`` in env values and args becomes that
  address; ports are kept, so the notebook listens on ``<podIP>:8888``.
- **Command.** ``command + args`` (``command`` replaces the image entrypoint, which does not
  exist here); with neither, the image's CMD from ``image_commands`` (Jupyter images:
  ``jupyterhub-singleuser``, which is what KubeSpawner's default ``cmd=None`` runs). The
  executable is looked up in ``python_bin_dir`` (default: the directory of
  ``sys.executable``), then ``PATH``. A missing executable leaves the container waiting in
  ``RunContainerError`` with a ``Warning Failed`` event. Containers with no command, no args
  and an unknown image are simulated.
- **Environment.** ``env`` values, ``valueFrom`` (fieldRef, secretKeyRef, configMapKeyRef,
  resourceFieldRef), ``envFrom``, ``$(VAR)`` expansion; ``PATH`` comes from the emulator's
  environment with ``python_bin_dir`` first; ``HOME`` is set (see below). When the emulator
  runs as root, ``JUPYTER_CONFIG_PATH`` gains a directory that sets ``allow_root`` (notebook
  images run as ``jovyan``; jupyter_server refuses root otherwise).
- **Filesystem.** Each ``volumeMounts[].mountPath`` maps to a local directory under
  ``state_dir``: PVC claims → ``volumes/<namespace>/<claimName>`` (kept when the pod goes,
  removed with the claim), emptyDir (``medium: Memory`` too) →
  ``pods/<ns>/<pod>-<uid>/emptydir/<volume>``, secrets, configMaps, projected and downwardAPI
  volumes → files written from the store, made read-only. A ``readOnly`` mount of a claim,
  emptyDir or CSI volume (or a claim/CSI source marked ``readOnly``) maps to a per-pod
  read-only copy, ``pods/<ns>/<pod>-<uid>/readonly/<volume>``, so writes never reach the claim. Container paths in env values, args and ``workingDir`` are rewritten to the
  mapped paths (longest mount prefix wins). ``HOME`` is the mapped ``/home/jovyan`` when a
  mount covers it, else the mapped ``workingDir``, else a per-pod directory; the process runs
  in the mapped ``workingDir`` or ``HOME``.
- **Lifecycle.** Processes start in their own session (process group) with output in
  ``pods/<ns>/<pod>-<uid>/<container>.log``. A container is ready when its readinessProbe
  (``httpGet``, ``tcpSocket``, ``exec``) succeeds, else when its first ``containerPort``
  accepts TCP on the pod IP, polled every 50 ms. Exit codes (negative signal → 128+sig) follow
  the pod's restartPolicy. Deletion sends SIGTERM to the process group and SIGKILL when the
  grace period ends (137). :meth:`stop` kills and reaps every process group it started, and an
  ``atexit`` hook does the same if the emulator exits without stopping.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import errno
import logging
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
from decimal import Decimal, ROUND_CEILING
from pathlib import Path
from typing import Any

from .kubelet import Kubelet, _Effective, _PodRuntime, _StartError

log = logging.getLogger("jhplatform.devcluster.process_kubelet")

POLL_INTERVAL = 0.05

#: The image ``CMD`` used when a container sets neither ``command`` nor ``args`` (KubeSpawner's
#: default ``cmd=None`` means "the image's CMD"), by substring of the image name. The Jupyter
#: images start ``jupyterhub-singleuser`` when spawned by JupyterHub.
DEFAULT_IMAGE_COMMANDS: dict[str, list[str]] = {
    "jupyterhub/singleuser": ["jupyterhub-singleuser"],
    "jupyterhub/k8s-singleuser-sample": ["jupyterhub-singleuser"],
    "jupyter/": ["jupyterhub-singleuser"],
}

# Every process group started by any ProcessKubelet in this interpreter, for the atexit hook.
_LIVE: dict[int, subprocess.Popen] = {}


def _kill_everything_at_exit() -> None:
    for pgid, proc in list(_LIVE.items()):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=2)
        except Exception:
            pass
        _LIVE.pop(pgid, None)


atexit.register(_kill_everything_at_exit)


def _parent_death_signal():
    """A ``preexec_fn`` that makes Linux SIGKILL the container process if the emulator dies
    without running its atexit hook (SIGKILL, a crash); None where unsupported."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)

    return preexec


_PREEXEC = _parent_death_signal()


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _killpg(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    """Whether a process group still has a member that is not a zombie."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields: state ppid pgrp ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def _rmtree(path: Path, keep_suffix: str | None = None) -> None:
    """Remove ``path`` (making read-only directories writable first); keep ``*keep_suffix`` files
    directly inside it."""
    if not path.exists():
        return
    for root, dirs, _files in os.walk(path):
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), stat.S_IRWXU)
            except OSError:
                pass
    try:
        os.chmod(path, stat.S_IRWXU)
    except OSError:
        pass
    if keep_suffix is None:
        shutil.rmtree(path, ignore_errors=True)
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        elif not child.name.endswith(keep_suffix):
            try:
                child.unlink()
            except OSError:
                pass


_EXPAND = re.compile(r"\$(\$|\(([A-Za-z_][A-Za-z0-9_.\-]*)\))")


def expand_vars(text: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: defined variables are replaced, ``$$`` is a ``$``."""

    def sub(m: re.Match) -> str:
        if m.group(1) == "$":
            return "$"
        name = m.group(2)
        return env[name] if name in env else m.group(0)

    return _EXPAND.sub(sub, text)


class PathMap:
    """Container paths → local paths for one container's mounts (longest mountPath wins)."""

    def __init__(self, mounts: list[tuple[str, Path]]):
        self.mounts = sorted(
            ((mp.rstrip("/"), local) for mp, local in mounts if mp.rstrip("/")), key=lambda m: -len(m[0])
        )
        self._local = dict(self.mounts)
        self._pattern = (
            re.compile(r"(?<![\w./~-])(" + "|".join(re.escape(mp) for mp, _ in self.mounts) + r")(?=/|$|[^\w.\-])")
            if self.mounts
            else None
        )

    def local(self, container_path: str) -> Path | None:
        """The local path of an absolute container path under a mount, or None."""
        path = container_path.rstrip("/") or "/"
        for mp, local in self.mounts:
            if path == mp:
                return local
            if path.startswith(mp + "/"):
                return local / path[len(mp) + 1 :]
        return None

    def rewrite(self, text: str) -> str:
        """Replace every container path under a mount inside ``text`` by its local path."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: str(self._local[m.group(1)]), text)


class ProcessKubelet(Kubelet):
    """A kubelet that runs containers as local processes (see the module docstring).

    Parameters
    ----------
    state_dir:
        Where volumes, per-pod directories and logs live; nothing is written outside it.
    python_bin_dir:
        Searched first for container executables (default: the directory of ``sys.executable``).
    kwargs:
        As for :class:`Kubelet` (``step_delay``, ``restart_backoff`` …).
    """

    def __init__(
        self,
        cluster: Any,
        *,
        state_dir: Path | str,
        python_bin_dir: Path | str | None = None,
        image_commands: dict[str, list[str]] | None = None,
        **kwargs: Any,
    ):
        super().__init__(cluster, **kwargs)
        self.state_dir = Path(state_dir).resolve()
        self.python_bin_dir = Path(python_bin_dir) if python_bin_dir else Path(sys.executable).parent
        self.image_commands = dict(DEFAULT_IMAGE_COMMANDS if image_commands is None else image_commands)
        self._procs: dict[int, subprocess.Popen] = {}
        # Emulators in other processes on this machine (a demo beside a test run) hand out
        # addresses too; each starts in a block of its own so their pods rarely meet, and an
        # address something already listens on is skipped (_bindable).
        self._ip_offset = (os.getpid() % 4096) * 254

    # -- addresses ---------------------------------------------------------------------------

    def _pod_ports(self, rt: _PodRuntime) -> list[int]:
        ports = []
        for c in rt.init_specs + rt.main_specs:
            for p in c.get("ports") or []:
                if isinstance(p.get("containerPort"), int):
                    ports.append(p["containerPort"])
        return ports

    @staticmethod
    def _bindable(ip: str, ports: list[int]) -> bool:
        for port in ports or [0]:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((ip, port))
                except OSError as exc:
                    if exc.errno == errno.EADDRNOTAVAIL:
                        raise RuntimeError(
                            f"cannot bind to {ip}: this system does not route 127.0.0.0/8 to loopback "
                            "(the process kubelet needs per-pod loopback addresses, as on Linux)"
                        ) from exc
                    return False
        return True

    def _allocate_pod_ip(self, rt: _PodRuntime) -> str:
        ports = self._pod_ports(rt)
        for _ in range(254 * 256 * 254):
            n = self._ip_counter + self._ip_offset
            self._ip_counter += 1
            ip = f"127.{1 + (n // (254 * 256)) % 254}.{(n // 254) % 256}.{n % 254 + 1}"
            if ip in self._ips_in_use:
                continue
            if not self._bindable(ip, ports):
                continue
            self._ips_in_use.add(ip)
            return ip
        raise RuntimeError("no free loopback address for a pod")

    def _host_ip(self, rt: _PodRuntime) -> str:
        # The pod's own loopback address is its host too: allocate it when the pod is accepted.
        if rt.pod_ip is None:
            rt.pod_ip = self._allocate_pod_ip(rt)
        return rt.pod_ip

    # -- directories and volumes -------------------------------------------------------------

    def pod_dir(self, rt: _PodRuntime) -> Path:
        return self.state_dir / "pods" / rt.namespace / f"{rt.name}-{rt.uid}"

    def claim_dir(self, namespace: str, claim: str) -> Path:
        return self.state_dir / "volumes" / namespace / claim

    def _store_data(self, resource: str, namespace: str, name: str) -> dict[str, bytes] | None:
        obj = self.cluster.store.find(resource, namespace, name)
        if obj is None:
            return None
        out: dict[str, bytes] = {}
        if resource == "secrets":
            for key, value in (obj.get("data") or {}).items():
                out[key] = base64.b64decode(value or "")
        else:
            for key, value in (obj.get("data") or {}).items():
                out[key] = (value or "").encode()
            for key, value in (obj.get("binaryData") or {}).items():
                out[key] = base64.b64decode(value or "")
        return out

    @staticmethod
    def _write_files(directory: Path, data: dict[str, bytes], items: list[dict] | None, default_mode: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        selected = (
            [(it.get("key", ""), it.get("path") or it.get("key", ""), it.get("mode")) for it in items]
            if items
            else [(key, key, None) for key in data]
        )
        for key, rel, mode in selected:
            if key not in data:
                continue
            target = directory / rel.lstrip("/")
            if directory.resolve() not in target.resolve().parents:
                continue  # ../ escapes are refused
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data[key])
            os.chmod(target, ((mode if mode is not None else default_mode) & 0o777) | stat.S_IRUSR)

    @staticmethod
    def _make_read_only(directory: Path) -> None:
        for root, dirs, _files in os.walk(directory, topdown=False):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o555)
        os.chmod(directory, 0o555)

    def _field_value(self, rt: _PodRuntime, pod: dict, path: str) -> str:
        md, status = pod["metadata"], pod.get("status") or {}
        m = re.fullmatch(r"metadata\.(labels|annotations)\['(.*)'\]", path)
        if m:
            return str((md.get(m.group(1)) or {}).get(m.group(2), ""))
        if path in ("metadata.labels", "metadata.annotations"):
            items = md.get(path.split(".")[1]) or {}
            return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
        values = {
            "metadata.name": md.get("name", ""),
            "metadata.namespace": md.get("namespace", ""),
            "metadata.uid": md.get("uid", ""),
            "spec.nodeName": (pod.get("spec") or {}).get("nodeName", ""),
            "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", ""),
            "status.podIP": rt.pod_ip or status.get("podIP", ""),
            "status.podIPs": rt.pod_ip or status.get("podIP", ""),
            "status.hostIP": rt.host_ip or status.get("hostIP", ""),
            "status.hostIPs": rt.host_ip or status.get("hostIP", ""),
        }
        return str(values.get(path, ""))

    def _resource_value(self, rt: _PodRuntime, c: dict, ref: dict) -> str:
        from ..policy.quantity import parse_quantity

        resource = ref.get("resource", "")
        kind, _, name = resource.partition(".")
        value = ((c.get("resources") or {}).get(kind) or {}).get(name)
        if value is None and kind == "requests":
            value = ((c.get("resources") or {}).get("limits") or {}).get(name)
        if value is None:
            node = self.cluster.store.find("nodes", "", rt.node) if rt.node else None
            value = (((node or {}).get("status") or {}).get("allocatable") or {}).get(name)
        if value is None:
            value = {"cpu": str(os.cpu_count() or 1)}.get(name, "0")
        divisor = parse_quantity(ref.get("divisor") or "1")
        amount = parse_quantity(value) / (divisor or Decimal(1))
        return str(int(amount.to_integral_value(rounding=ROUND_CEILING)))

    def _materialize_volumes(self, rt: _PodRuntime, pod: dict) -> dict[str, Path]:
        """Create the local directory of every volume of the pod; return name → path."""
        pod_dir = self.pod_dir(rt)
        out: dict[str, Path] = {}
        for vol in rt.spec.get("volumes") or []:
            name = vol.get("name", "")
            if isinstance(vol.get("persistentVolumeClaim"), dict):
                path = self.claim_dir(rt.namespace, vol["persistentVolumeClaim"].get("claimName", ""))
                path.mkdir(parents=True, exist_ok=True)
            elif isinstance(vol.get("emptyDir"), dict):
                # Memory-backed ones too (a /dev/shm): a per-pod directory, never the host's.
                path = pod_dir / "emptydir" / name
                path.mkdir(parents=True, exist_ok=True)
            elif isinstance(vol.get("secret"), dict):
                src = vol["secret"]
                path = pod_dir / "secrets" / name
                data = self._store_data("secrets", rt.namespace, src.get("secretName", "")) or {}
                self._write_files(path, data, src.get("items"), src.get("defaultMode", 0o644))
                self._make_read_only(path)
            elif isinstance(vol.get("configMap"), dict):
                src = vol["configMap"]
                path = pod_dir / "configmaps" / name
                data = self._store_data("configmaps", rt.namespace, src.get("name", "")) or {}
                self._write_files(path, data, src.get("items"), src.get("defaultMode", 0o644))
                self._make_read_only(path)
            elif isinstance(vol.get("downwardAPI"), dict):
                src = vol["downwardAPI"]
                path = pod_dir / "downwardapi" / name
                self._write_downward(rt, pod, path, src.get("items") or [], src.get("defaultMode", 0o644))
                self._make_read_only(path)
            elif isinstance(vol.get("projected"), dict):
                src = vol["projected"]
                mode = src.get("defaultMode", 0o644)
                path = pod_dir / "projected" / name
                path.mkdir(parents=True, exist_ok=True)
                for source in src.get("sources") or []:
                    if isinstance(source.get("secret"), dict):
                        s = source["secret"]
                        self._write_files(path, self._store_data("secrets", rt.namespace, s.get("name", "")) or {}, s.get("items"), mode)
                    elif isinstance(source.get("configMap"), dict):
                        s = source["configMap"]
                        self._write_files(path, self._store_data("configmaps", rt.namespace, s.get("name", "")) or {}, s.get("items"), mode)
                    elif isinstance(source.get("downwardAPI"), dict):
                        self._write_downward(rt, pod, path, source["downwardAPI"].get("items") or [], mode)
                    elif isinstance(source.get("serviceAccountToken"), dict):
                        token_path = source["serviceAccountToken"].get("path") or "token"
                        self._write_files(path, {"token": f"devcluster-token-{rt.uid}".encode()}, [{"key": "token", "path": token_path}], mode)
                self._make_read_only(path)
            elif isinstance(vol.get("hostPath"), dict):
                # Host paths stay inside state_dir: the emulator never writes elsewhere.
                host = str(vol["hostPath"].get("path", "")).strip("/")
                path = self.state_dir / "hostpath" / host
                path.mkdir(parents=True, exist_ok=True)
            else:
                path = pod_dir / "volumes" / name
                path.mkdir(parents=True, exist_ok=True)
            out[name] = path
        return out

    def _write_downward(self, rt: _PodRuntime, pod: dict, path: Path, items: list[dict], mode: int) -> None:
        data: dict[str, bytes] = {}
        selected = []
        for it in items:
            key = it.get("path", "")
            if isinstance(it.get("fieldRef"), dict):
                data[key] = self._field_value(rt, pod, it["fieldRef"].get("fieldPath", "")).encode()
            elif isinstance(it.get("resourceFieldRef"), dict):
                container = next(
                    (c for c in rt.main_specs if c.get("name") == it["resourceFieldRef"].get("containerName")),
                    rt.main_specs[0] if rt.main_specs else {},
                )
                data[key] = self._resource_value(rt, container, it["resourceFieldRef"]).encode()
            selected.append({"key": key, "path": key, "mode": it.get("mode")})
        self._write_files(path, data, selected or None, mode)

    async def _setup_sandbox(self, rt: _PodRuntime) -> None:
        if rt.pod_ip is None:
            rt.pod_ip = self._allocate_pod_ip(rt)
        pod = self._current(rt)
        pod_dir = self.pod_dir(rt)
        pod_dir.mkdir(parents=True, exist_ok=True)
        rt.data["volumes"] = self._materialize_volumes(rt, pod)
        rt.data.setdefault("procs", {})
        rt.data.setdefault("simulated", set())

    def _path_map(self, rt: _PodRuntime, c: dict) -> PathMap:
        volumes: dict[str, Path] = rt.data.get("volumes") or {}
        mounts = []
        for m in c.get("volumeMounts") or []:
            base = volumes.get(m.get("name", ""))
            if base is None or not m.get("mountPath"):
                continue
            local = base / m["subPath"].lstrip("/") if m.get("subPath") else base
            if m.get("subPath"):
                local.mkdir(parents=True, exist_ok=True)
            if self._mounted_read_only(rt, m):
                local = self._read_only_view(rt, m, local)
            mounts.append((m["mountPath"], local))
        return PathMap(mounts)

    # Volume sources whose directories are shared or writable; the rest are already read-only.
    _WRITABLE_SOURCES = ("persistentVolumeClaim", "emptyDir", "hostPath", "csi", "ephemeral")

    def _mounted_read_only(self, rt: _PodRuntime, mount: dict) -> bool:
        """A ``readOnly`` mount, or a mount of a claim or CSI volume whose source says ``readOnly``."""
        volume = next((v for v in rt.spec.get("volumes") or [] if v.get("name") == mount.get("name")), {})
        if not any(isinstance(volume.get(k), dict) for k in self._WRITABLE_SOURCES):
            return False
        if mount.get("readOnly"):
            return True
        return any((volume.get(k) or {}).get("readOnly") is True for k in ("persistentVolumeClaim", "csi"))

    def _read_only_view(self, rt: _PodRuntime, mount: dict, source: Path) -> Path:
        """A per-pod, read-only copy of ``source`` for a read-only mount.

        There are no mount namespaces here, so the container's view of a shared claim is a
        snapshot taken when the pod's first container starts: files and directories without
        write permission, and, since it is a copy, nothing written to it (a process running as
        root ignores the permissions) ever reaches the claim.
        """
        sub = (mount.get("subPath") or "").strip("/")
        view = self.pod_dir(rt) / "readonly" / mount.get("name", "") / sub
        if not view.exists():
            view.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, view, symlinks=True)
            else:
                view.mkdir()
            for root, _dirs, files in os.walk(view):
                for f in files:
                    path = os.path.join(root, f)
                    if not os.path.islink(path):
                        os.chmod(path, os.stat(path).st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
            self._make_read_only(view)
        return view

    # -- building the process ----------------------------------------------------------------

    def _container_env(self, rt: _PodRuntime, pod: dict, c: dict) -> dict[str, str]:
        """The container's own variables, expanded but not yet rewritten to local paths."""
        env: dict[str, str] = {}
        for src in c.get("envFrom") or []:
            prefix = src.get("prefix") or ""
            for key, resource in (("secretRef", "secrets"), ("configMapRef", "configmaps")):
                ref = src.get(key)
                if isinstance(ref, dict):
                    data = self._store_data(resource, rt.namespace, ref.get("name", "")) or {}
                    for k, v in data.items():
                        if re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", prefix + k):
                            env[prefix + k] = v.decode(errors="replace")
        for e in c.get("env") or []:
            name = e.get("name")
            if not name:
                continue
            if "value" in e and e.get("value") is not None:
                env[name] = expand_vars(str(e["value"]), env)
                continue
            src = e.get("valueFrom") or {}
            value: str | None = ""
            if isinstance(src.get("fieldRef"), dict):
                value = self._field_value(rt, pod, src["fieldRef"].get("fieldPath", ""))
            elif isinstance(src.get("resourceFieldRef"), dict):
                value = self._resource_value(rt, c, src["resourceFieldRef"])
            else:
                for key, resource in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
                    ref = src.get(key)
                    if isinstance(ref, dict):
                        data = self._store_data(resource, rt.namespace, ref.get("name", "")) or {}
                        raw = data.get(ref.get("key", ""))
                        value = None if raw is None else raw.decode(errors="replace")
            if value is not None:
                env[name] = value
        return env

    def _rewrite(self, text: str, rt: _PodRuntime, paths: PathMap) -> str:
        return paths.rewrite(text.replace("0.0.0.0", rt.pod_ip or "0.0.0.0"))

    def _resolve_executable(self, exe: str, paths: PathMap) -> str | None:
        if "/" in exe:
            local = paths.local(exe) if exe.startswith("/") else None
            candidate = str(local) if local is not None else exe
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
            exe = os.path.basename(exe)
        found = shutil.which(exe, path=str(self.python_bin_dir))
        if found:
            return found
        return shutil.which(exe, path=os.environ.get("PATH", os.defpath))

    def _build_process(self, rt: _PodRuntime, c: dict) -> tuple[list[str], dict[str, str], Path] | None:
        """argv, environment and cwd of a container, or None if it has no command to run."""
        argv = [str(a) for a in (c.get("command") or [])] + [str(a) for a in (c.get("args") or [])]
        if not argv:
            image = c.get("image") or ""
            argv = next((list(cmd) for key, cmd in self.image_commands.items() if key in image), [])
        if not argv:
            return None
        pod = self._current(rt)
        paths = self._path_map(rt, c)
        raw_env = self._container_env(rt, pod, c)
        argv = [self._rewrite(expand_vars(a, raw_env), rt, paths) for a in argv]
        env = {k: self._rewrite(v, rt, paths) for k, v in raw_env.items()}
        url = env.get("JUPYTERHUB_SERVICE_URL")
        if url:
            # An empty host ("http://:8888/...") means "all interfaces" too.
            env["JUPYTERHUB_SERVICE_URL"] = re.sub(r"^(\w+://)(?=:\d)", rf"\g<1>{rt.pod_ip}", url)
        pod_dir = self.pod_dir(rt)
        working_dir = c.get("workingDir")
        cwd: Path | None = None
        if working_dir:
            cwd = paths.local(working_dir) or pod_dir / "rootfs" / working_dir.lstrip("/")
        home_mount = paths.local("/home/jovyan")
        if "HOME" in env:
            home = Path(env["HOME"])
            if not str(home).startswith(str(self.state_dir)):
                # Not under a mount: it lives in the pod's own directory tree.
                home = pod_dir / "rootfs" / env["HOME"].lstrip("/") if env["HOME"].strip("/") else pod_dir / "home"
        elif home_mount is not None:
            home = home_mount
        elif cwd is not None:
            home = cwd
        else:
            home = pod_dir / "home"
        if cwd is None:
            cwd = home
        for d in {home, cwd}:
            if str(d).startswith(str(self.state_dir)):
                d.mkdir(parents=True, exist_ok=True)
        base = {k: os.environ[k] for k in ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT") if k in os.environ}
        base["HOSTNAME"] = rt.name
        base["HOME"] = str(home)
        base.update(env)
        base["HOME"] = str(home)
        base["PATH"] = os.pathsep.join([str(self.python_bin_dir), os.environ.get("PATH", os.defpath)])
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # Notebook images run as jovyan; here the process would be root, which jupyter_server
            # refuses. Allow it through an extra config directory, as a container user would not
            # need it.
            extra = self._root_jupyter_config()
            base["JUPYTER_CONFIG_PATH"] = os.pathsep.join([p for p in (str(extra), base.get("JUPYTER_CONFIG_PATH", "")) if p])
        exe = self._resolve_executable(argv[0], paths)
        if exe is None:
            raise _StartError(
                "RunContainerError",
                f'failed to start container "{c["name"]}": exec: "{argv[0]}": executable file not found in $PATH',
            )
        argv[0] = exe
        return argv, base, cwd

    def _root_jupyter_config(self) -> Path:
        directory = self.state_dir / "jupyter-config"
        if not (directory / "jupyter_server_config.json").exists():
            directory.mkdir(parents=True, exist_ok=True)
            allow = '{"ServerApp": {"allow_root": true}, "NotebookApp": {"allow_root": true}}\n'
            (directory / "jupyter_server_config.json").write_text(allow)
            (directory / "jupyter_notebook_config.json").write_text(allow)
        return directory

    # -- container hooks ---------------------------------------------------------------------

    def _procs_of(self, rt: _PodRuntime) -> dict[str, subprocess.Popen]:
        return rt.data.setdefault("procs", {})

    def _is_simulated(self, rt: _PodRuntime, c: dict) -> bool:
        return c["name"] in rt.data.setdefault("simulated", set())

    async def _launch(self, rt: _PodRuntime, c: dict, kind: str, b: _Effective) -> None:
        name = c["name"]
        self._reap_group(rt, name)
        built = self._build_process(rt, c)
        simulated = rt.data.setdefault("simulated", set())
        if built is None:
            simulated.add(name)
            return
        simulated.discard(name)
        argv, env, cwd = built
        log_path = self.pod_dir(rt) / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(log_path, "ab") as out:
                out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {argv!r} in {cwd}\n".encode())
                out.flush()
                proc = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=str(cwd),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                    preexec_fn=_PREEXEC,
                )
        except OSError as exc:
            raise _StartError("RunContainerError", f'failed to start container "{name}": {exc}') from exc
        self._procs_of(rt)[name] = proc
        self._procs[proc.pid] = proc
        _LIVE[proc.pid] = proc
        rt.data.setdefault("envs", {})[name] = env
        rt.data.setdefault("cwds", {})[name] = cwd
        log.info("kubelet: started %s/%s as pid %d: %s", rt.key, name, proc.pid, argv)

    def _ready_on_start(self, rt: _PodRuntime, c: dict, kind: str, b: _Effective) -> bool:
        if self._is_simulated(rt, c):
            return super()._ready_on_start(rt, c, kind, b)
        if b.never_ready:
            return False
        return not c.get("readinessProbe") and not any(p.get("containerPort") for p in c.get("ports") or [])

    def _port(self, c: dict, port: Any) -> int | None:
        if isinstance(port, int):
            return port
        if isinstance(port, str):
            if port.isdigit():
                return int(port)
            for p in c.get("ports") or []:
                if p.get("name") == port:
                    return p.get("containerPort")
        return None

    async def _tcp_ok(self, host: str, port: int, timeout: float = 1.0) -> bool:
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, asyncio.TimeoutError):
            return False
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return True

    async def _http_ok(self, host: str, port: int, path: str, scheme: str, headers: list[dict], timeout: float) -> bool:
        ctx = None
        if scheme.upper() == "HTTPS":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx), timeout)
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            return False
        try:
            lines = [f"GET {path or '/'} HTTP/1.1", f"Host: {host}:{port}", "User-Agent: kube-probe/1.31", "Accept: */*", "Connection: close"]
            lines += [f"{h.get('name')}: {h.get('value')}" for h in headers or [] if h.get("name")]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), timeout)
            parts = status_line.decode(errors="replace").split()
            return len(parts) >= 2 and parts[1].isdigit() and 200 <= int(parts[1]) < 400
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            return False
        finally:
            writer.close()

    async def _exec_ok(self, rt: _PodRuntime, c: dict, command: list[str], timeout: float) -> bool:
        paths = self._path_map(rt, c)
        argv = [self._rewrite(str(a), rt, paths) for a in command]
        if not argv:
            return False
        exe = self._resolve_executable(argv[0], paths)
        if exe is None:
            return False
        env = rt.data.get("envs", {}).get(c["name"]) or {"PATH": os.environ.get("PATH", os.defpath)}
        cwd = rt.data.get("cwds", {}).get(c["name"])
        try:
            proc = subprocess.Popen(
                [exe, *argv[1:]], env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True,
            )
        except OSError:
            return False
        _LIVE[proc.pid] = proc
        try:
            loop = asyncio.get_running_loop()
            end = loop.time() + timeout
            while proc.poll() is None:
                if loop.time() > end:
                    _killpg(proc.pid, signal.SIGKILL)
                    while proc.poll() is None:
                        await asyncio.sleep(0.01)
                    return False
                await asyncio.sleep(0.02)
            return proc.returncode == 0
        finally:
            if proc.poll() is None:
                _killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            _LIVE.pop(proc.pid, None)

    async def _readiness(self, rt: _PodRuntime, c: dict, kind: str) -> None:
        if self._is_simulated(rt, c):
            return await super()._readiness(rt, c, kind)
        probe = c.get("readinessProbe") or {}
        host = rt.pod_ip or "127.0.0.1"
        timeout = float(probe.get("timeoutSeconds") or 1)
        delay = float(probe.get("initialDelaySeconds") or 0)
        if delay:
            await asyncio.sleep(delay)
        first_port = next((p.get("containerPort") for p in c.get("ports") or [] if p.get("containerPort")), None)
        while True:
            ok = False
            if isinstance(probe.get("httpGet"), dict):
                g = probe["httpGet"]
                port = self._port(c, g.get("port"))
                if port:
                    ok = await self._http_ok(g.get("host") or host, port, g.get("path") or "/", g.get("scheme") or "HTTP", g.get("httpHeaders") or [], timeout)
            elif isinstance(probe.get("tcpSocket"), dict):
                t = probe["tcpSocket"]
                port = self._port(c, t.get("port"))
                if port:
                    ok = await self._tcp_ok(t.get("host") or host, port, timeout)
            elif isinstance(probe.get("exec"), dict):
                ok = await self._exec_ok(rt, c, list(probe["exec"].get("command") or []), timeout)
            elif first_port:
                ok = await self._tcp_ok(host, first_port, timeout)
            else:
                ok = True
            if ok:
                return
            await asyncio.sleep(POLL_INTERVAL)

    async def _wait_exit(self, rt: _PodRuntime, c: dict, kind: str, b: _Effective) -> int:
        if self._is_simulated(rt, c):
            return await super()._wait_exit(rt, c, kind, b)
        proc = self._procs_of(rt)[c["name"]]
        interval = 0.01
        while proc.poll() is None:
            await asyncio.sleep(interval)
            interval = min(POLL_INTERVAL, interval * 2)
        return _exit_code(proc.returncode)

    async def _after_exit(self, rt: _PodRuntime, c: dict, kind: str) -> None:
        self._reap_group(rt, c["name"])

    def _reap_group(self, rt: _PodRuntime, name: str) -> None:
        """Kill what is left of an exited container's process group."""
        proc = self._procs_of(rt).get(name)
        if proc is not None and proc.poll() is not None:
            _killpg(proc.pid, signal.SIGKILL)
            self._procs.pop(proc.pid, None)
            _LIVE.pop(proc.pid, None)

    async def _stop_container(self, rt: _PodRuntime, c: dict, kind: str) -> int:
        proc = self._procs_of(rt).get(c["name"])
        if proc is None or self._is_simulated(rt, c):
            return await super()._stop_container(rt, c, kind)
        return await self._terminate_process(proc, lambda: self._sigkill_time(rt))

    async def _terminate_process(self, proc: subprocess.Popen, kill_at) -> int:
        """SIGTERM the group, SIGKILL it at ``kill_at()`` (loop time), reap; the exit code."""
        loop = asyncio.get_running_loop()
        if proc.poll() is None:
            _killpg(proc.pid, signal.SIGTERM)
        killed = False
        while proc.poll() is None:
            if not killed and loop.time() >= kill_at():
                _killpg(proc.pid, signal.SIGKILL)
                killed = True
            await asyncio.sleep(0.02)
        _killpg(proc.pid, signal.SIGKILL)  # stragglers in the group
        self._procs.pop(proc.pid, None)
        _LIVE.pop(proc.pid, None)
        return _exit_code(proc.returncode)

    def _kill_now(self, rt: _PodRuntime) -> None:
        for proc in self._procs_of(rt).values():
            _killpg(proc.pid, signal.SIGKILL)

    async def _cleanup(self, rt: _PodRuntime, *, deleted: bool, force: bool = False) -> None:
        procs = list(self._procs_of(rt).values())
        if procs:
            loop = asyncio.get_running_loop()
            # A pod removed without grace (or a stopping emulator): SIGTERM, SIGKILL after 1 s.
            kill_at = loop.time() + (1.0 if force else 0.0)
            await asyncio.gather(*(self._terminate_process(p, lambda: kill_at) for p in procs))
            await self._wait_groups_gone([p.pid for p in procs])
        self._procs_of(rt).clear()
        if deleted and not rt.data.get("cleaned"):
            rt.data["cleaned"] = True
            try:
                _rmtree(self.pod_dir(rt), keep_suffix=".log")
            except OSError:
                log.exception("kubelet: could not remove the directories of %s", rt.key)
        if deleted:
            self._release_pod_ip(rt)

    async def _wait_groups_gone(self, pgids: list[int], timeout: float = 2.0) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while any(_group_alive(g) for g in pgids) and loop.time() < end:
            for g in pgids:
                _killpg(g, signal.SIGKILL)
            await asyncio.sleep(0.02)

    # -- controller protocol -----------------------------------------------------------------

    async def stop(self) -> None:
        await super().stop()
        await self._kill_all()

    async def reset(self) -> None:
        await super().reset()
        await self._kill_all()
        for sub in ("pods", "volumes", "hostpath"):
            _rmtree(self.state_dir / sub)

    async def _kill_all(self) -> None:
        procs = list(self._procs.values())
        if procs:
            loop = asyncio.get_running_loop()
            kill_at = loop.time() + 1.0
            await asyncio.gather(*(self._terminate_process(p, lambda: kill_at) for p in procs))
            await self._wait_groups_gone([p.pid for p in procs])
        self._procs.clear()

    def _on_dependency(self, change) -> None:
        super()._on_dependency(change)
        if change.resource == "persistentvolumeclaims" and change.type == "DELETED":
            # Dynamic provisioning's reclaim policy is Delete: the data goes with the claim.
            claim = change.obj["metadata"]["name"]
            in_use = any(
                rt.namespace == change.namespace
                and any((v.get("persistentVolumeClaim") or {}).get("claimName") == claim for v in rt.spec.get("volumes") or [])
                for rt in self.pods.values()
            )
            if not in_use:
                _rmtree(self.claim_dir(change.namespace, claim))

    # -- helpers -----------------------------------------------------------------------------

    def pids(self) -> list[int]:
        """Process ids of the container processes currently running."""
        return [pid for pid, p in self._procs.items() if p.poll() is None]

    def pids_for(self, pod: dict | tuple[str, str]) -> list[int]:
        """Process ids of the running container processes of one pod (a dict or (ns, name))."""
        if isinstance(pod, tuple):
            rt = self.runtime(*pod)
        else:
            rt = self.pods.get(pod["metadata"].get("uid", "")) or self.runtime(pod["metadata"]["namespace"], pod["metadata"]["name"])
        if rt is None:
            return []
        return [p.pid for p in self._procs_of(rt).values() if p.poll() is None]

    def logs(self, namespace: str, name: str, container: str | None = None) -> str:
        rt = self.runtime(namespace, name)
        if rt is not None:
            directory = self.pod_dir(rt)
            if container is None and rt.main_specs:
                container = rt.main_specs[0]["name"]
        else:
            candidates = sorted((self.state_dir / "pods" / namespace).glob(f"{name}-*"), key=lambda p: p.stat().st_mtime)
            if not candidates:
                return ""
            directory = candidates[-1]
            if container is None:
                logs = sorted(directory.glob("*.log"))
                container = logs[0].stem if logs else ""
        path = directory / f"{container}.log"
        try:
            return path.read_text(errors="replace")
        except OSError:
            return ""


__all__ = ["PathMap", "ProcessKubelet", "expand_vars"]
