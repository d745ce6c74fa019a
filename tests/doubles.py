"""Test doubles: just enough of a JupyterHub user for a spawner to run outside a hub.

Contract tests drive unmodified KubeSpawner (and later PlatformSpawner) directly against the
emulator, the way KubeSpawner's own test suite does, without a running hub.
"""

from __future__ import annotations

from types import SimpleNamespace

from jupyterhub import orm
from jupyterhub.objects import Hub
from traitlets.config import Config


class FakeUser:
    """The attributes a spawner reads from ``jupyterhub.user.User``."""

    def __init__(self, name: str = "start", id: int = 1, groups: tuple[str, ...] = ()):
        self.name = name
        self.id = id
        self.escaped_name = name
        self.url = f"/user/{name}/"
        self.groups = [SimpleNamespace(name=g, properties={}) for g in groups]
        self.spawners: dict = {}

    def progress_url(self, server_name: str = "") -> str:
        return f"/hub/api/users/{self.name}/servers/{server_name}/progress"


def make_spawner(
    spawner_class, *, user: str = "start", server_name: str = "", config: dict | None = None, groups: tuple[str, ...] = (), **kwargs
):
    """Build a spawner for ``user`` (a member of ``groups``) with ``config`` given as ``{"KubeSpawner": {...}}``."""
    cfg = Config()
    for section, values in (config or {}).items():
        for key, value in values.items():
            setattr(cfg[section], key, value)
    hub = Hub(ip="127.0.0.1", port=8081, base_url="/hub/")
    return spawner_class(
        config=cfg,
        hub=hub,
        user=FakeUser(user, groups=tuple(groups)),
        orm_spawner=orm.Spawner(name=server_name),
        api_token="contract-test-token",
        oauth_client_id=f"jupyterhub-user-{user}",
        **kwargs,
    )
