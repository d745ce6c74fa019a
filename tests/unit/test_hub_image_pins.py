"""The suite runs the hub's packages at the versions z2jh 4.4.0's hub image pins.

We test these aspects:
- every package the Makefile constrains to the hub image's requirements (``HUB_IMAGE_PINS``) is
  installed at exactly the version ``tests/data/z2jh-4.4.0/hub-image-requirements.txt`` pins;
- the constrained set covers the hub's runtime (JupyterHub, oauthenticator, kubernetes_asyncio,
  tornado, SQLAlchemy, traitlets), and leaves out the two the Dockerfile upgrades (KubeSpawner,
  idle-culler).
"""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest

from helpers import REPO, TEST_DATA

REQUIREMENTS = TEST_DATA / "z2jh-4.4.0" / "hub-image-requirements.txt"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def makefile_pins() -> set[str]:
    match = re.search(r"^HUB_IMAGE_PINS := (.+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile defines HUB_IMAGE_PINS"
    return {_normalise(n) for n in match.group(1).split("|")}


def image_pins() -> dict[str, str]:
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)", line)
        if m:
            pins[_normalise(m.group(1))] = m.group(2)
    return pins


def test_constrained_set_is_the_hub_runtime():
    pins = makefile_pins()
    assert {"jupyterhub", "oauthenticator", "kubernetes-asyncio", "tornado", "sqlalchemy", "traitlets"} <= pins
    assert not pins & {"jupyterhub-kubespawner", "jupyterhub-idle-culler"}
    assert pins <= set(image_pins()), f"not pinned by the image: {sorted(pins - set(image_pins()))}"


@pytest.mark.parametrize("package", sorted(makefile_pins()))
def test_installed_at_the_image_version(package):
    assert version(package) == image_pins()[package]
