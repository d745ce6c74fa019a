"""The hub image's Python environment, built without docker, and a hub running from it.

The environment is what ``docker build`` makes: a fresh virtualenv with the base image's packages
(``tests/data/z2jh-4.4.0/hub-image-requirements.txt``, z2jh 4.4.0's images/hub/requirements.txt;
pycurl and psycopg2 build against Debian's libcurl4-openssl-dev and libpq-dev, which the Makefile
installs), then every ``pip`` command of the Dockerfile's ``RUN`` lines, read from the Dockerfile,
with its ``COPY`` sources laid out at their image paths under a temporary root. Installing the
base image's packages takes minutes, so that virtualenv is kept under ``.venv/`` keyed by the
requirements, the Dockerfile's pip commands and the Python version; jhplatform is uninstalled and
the Dockerfile's pip commands run again on every test session, so the code tested is the
checkout's.

We test these aspects:
- ``pip check`` is clean;
- KubeSpawner 7.1.x and idle-culler 2.0.x are installed, and every other package the base image
  pins keeps its pinned version;
- the hub runs from that environment through the z2jh loader with the snippets at the path the
  Dockerfile copies them to, and spawns a GPU profile of platform.yaml in a restricted namespace.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from helpers import REPO, TEST_DATA
from z2jhpod import LoaderHub, notebook_url_values

pytestmark = pytest.mark.contract

REQUIREMENTS = TEST_DATA / "z2jh-4.4.0" / "hub-image-requirements.txt"
UPGRADED = {"jupyterhub-kubespawner": "7.1.", "jupyterhub-idle-culler": "2.0."}
NS = "jhub"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(instruction, arguments) for each Dockerfile instruction, continuation lines joined."""
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, args = current.partition(" ")
        out.append((keyword.upper(), args.strip()))
        current = ""
    return out


def dockerfile_pip_commands(text: str) -> list[str]:
    """Every ``pip ...`` command of the RUN instructions (shell text, redirections kept)."""
    commands = []
    for keyword, args in dockerfile_instructions(text):
        if keyword != "RUN":
            continue
        for part in args.split("&&"):
            part = part.strip()
            argv = shlex.split(part)
            if argv and (argv[0] in ("pip", "pip3") or argv[:3] in (["python", "-m", "pip"], ["python3", "-m", "pip"])):
                commands.append(part)
    return commands


def lay_out_copies(text: str, root: Path) -> None:
    """The Dockerfile's COPY instructions, from the checkout into ``root`` (the image's /)."""
    for keyword, args in dockerfile_instructions(text):
        if keyword != "COPY":
            continue
        *sources, dest = shlex.split(args)
        for source in sources:
            src = REPO / source.rstrip("/")
            target = root / dest.lstrip("/")
            if dest.endswith("/") and src.is_file():
                target = target / src.name
            if src.is_dir():
                shutil.copytree(src, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, target)


def in_image(command: str, python: Path, root: Path) -> str:
    """A Dockerfile pip command for the image environment: its pip, image paths under ``root``."""
    # Image paths first: the environment's own path may itself be under /tmp (a clone there).
    command = re.sub(r"(?<![\w/])/tmp/", f"{root}/tmp/", command)
    return re.sub(r"^(pip3?|python3? -m pip)\b", f"{shlex.quote(str(python))} -m pip", command)


def pip(python: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def image_env():
    """(python of the image environment, the image root with the COPY'd files)."""
    dockerfile = (REPO / "Dockerfile").read_text()
    commands = dockerfile_pip_commands(dockerfile)
    key = hashlib.sha256(
        (REQUIREMENTS.read_text() + json.dumps(commands) + sys.version).encode()
    ).hexdigest()[:16]
    venv = REPO / ".venv" / "hub-image-env" / key
    python = venv / "bin" / "python"
    ready = venv / ".base-installed"
    if not ready.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        result = pip(python, "install", "--quiet", "-r", str(REQUIREMENTS), timeout=1800)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        ready.touch()
    root = Path(tempfile.mkdtemp(prefix="hub-image-root-"))
    lay_out_copies(dockerfile, root)
    (root / "tmp").mkdir(exist_ok=True)
    pip(python, "uninstall", "--yes", "jhplatform")
    for command in commands:
        result = subprocess.run(in_image(command, python, root), shell=True, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, (command, result.stdout[-3000:], result.stderr[-3000:])
    yield python, root
    shutil.rmtree(root, ignore_errors=True)


def installed(python: Path) -> dict[str, str]:
    result = pip(python, "list", "--format=json")
    return {_normal(p["name"]): p["version"] for p in json.loads(result.stdout)}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned() -> dict[str, str]:
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[_normal(m.group(1))] = m.group(2)
    return pins


def test_dockerfile_pip_commands_are_read(tmp_path):
    commands = dockerfile_pip_commands((REPO / "Dockerfile").read_text())
    assert any('"jupyterhub-kubespawner==7.1.*"' in c for c in commands)
    assert any("--no-deps /tmp/jhplatform" in c for c in commands)
    assert not [c for c in commands if c.startswith("rm ")]
    mapped = in_image("pip install --no-deps /tmp/jhplatform", Path("/venv/bin/python"), tmp_path)
    assert mapped == f"/venv/bin/python -m pip install --no-deps {tmp_path}/tmp/jhplatform"


def test_pip_check_is_clean(image_env):
    python, _ = image_env
    result = pip(python, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No broken requirements found." in result.stdout


def test_upgrades_exactly_what_we_need_and_keeps_the_other_pins(image_env):
    python, _ = image_env
    have = installed(python)
    for name, prefix in UPGRADED.items():
        assert have[name].startswith(prefix), (name, have[name])
    assert have["jhplatform"] == "0.1.0"
    changed = {n: (v, have.get(n)) for n, v in pinned().items() if n not in UPGRADED and have.get(n) != v}
    assert changed == {}


async def test_hub_runs_from_the_image_env_through_the_loader(image_env, cluster, tmp_path, notebook_stub):
    python, root = image_env
    cluster.cluster.create("namespaces", None, {"metadata": {"name": NS, "labels": RESTRICTED}})
    platform = yaml.safe_load((REPO / "helm-values" / "platform.yaml").read_text())
    snippets = root / "usr/local/etc/jupyterhub/jupyterhub_config.d"
    assert sorted(p.name for p in snippets.glob("*.py")) == sorted(p.name for p in (REPO / "jupyterhub_config.d").glob("*.py"))
    hub = LoaderHub(tmp_path, [platform, notebook_url_values(notebook_stub)], snippets,
                    kubeconfig=cluster.write_kubeconfig(tmp_path / "kubeconfig"), namespace=NS, python=str(python))
    try:
        await hub.start()
        log = hub.log()
        venv = str(python.parent.parent)
        assert "Using Spawner: jhplatform.spawner.spawner.PlatformSpawner" in log
        # The hub's jhplatform is the image environment's installed copy, not the checkout.
        result = subprocess.run([str(python), "-c", "import jhplatform, kubespawner; print(jhplatform.__file__); print(kubespawner.__file__)"],
                                capture_output=True, text=True, cwd=tmp_path)
        assert all(line.startswith(venv) for line in result.stdout.split()), result.stdout
        gpu = next(p for p in platform["singleuser"]["profileList"] if p.get("gpu"))
        assert (await hub.request("POST", "/users/ada"))[0] == 201
        status, body = await hub.request("POST", "/users/ada/server", {"profile": gpu["slug"]})
        assert status == 202, body
        events = await hub.progress("ada")
        assert events[-1].get("ready") is True, (events, hub.log()[-4000:])
        pod = cluster.cluster.get("pods", NS, "jupyter-ada")
        assert pod["spec"]["containers"][0]["resources"]["limits"][gpu["gpu"]["resource"]] == "1"
    finally:
        await hub.stop()
