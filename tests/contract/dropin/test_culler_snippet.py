"""``jupyterhub_config.d/50-jhplatform-culler.py`` under z2jh's loader conventions.

The snippet is exec'd the way z2jh 4.4's ``jupyterhub_config.py`` execs config.d files
(/work/shared/design/z2jh-hub-loader.md, step 10): in globals holding ``c`` and z2jh's
``get_config(key, default=None)``, which walks a dotted key through the merged values, and
``get_name(name)``; the stock culler service and role are already there when ``cull.enabled``
is true (step 6).

We test these aspects:
- with the example values (helm-values/culler-example.yaml) the service ``jhplatform-culler`` runs
  ``python -m jhplatform.culler`` at ``http://hub:10101``, its role has exactly the documented
  scopes, and the settings it gets load into ``CullerService`` with the values' limits;
- z2jh's own culler is removed (with a message) when ``cull.enabled`` is still true, other
  services stay;
- ``enabled: false`` changes nothing;
- bad settings stop the hub at load with ``FATAL:`` naming the key;
- the home-page announcement shows a user's own warnings only, escaped, and keeps the admin's
  own ``announcement_home``; warnings the culler has not renewed for three cycles, and an
  unreadable file, show nothing;
- the example values block validates against z2jh 4.4.0's values schema.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
import sys

import jsonschema
import pytest
import yaml
from traitlets.config import Config

from helpers import REPO, TEST_DATA
from jhplatform.culler.app import CONFIG_ENV, CullerService
from jhplatform.culler.hubconfig import SCOPES

SNIPPET = REPO / "jupyterhub_config.d" / "50-jhplatform-culler.py"
EXAMPLE = REPO / "helm-values" / "culler-example.yaml"
STOCK = {"name": "idle-culler", "command": ["python3", "-m", "jupyterhub_idle_culler"]}
STOCK_ROLE = {"name": "idle-culler", "scopes": ["list:users"], "services": ["idle-culler"]}


def z2jh_globals(c: Config, values: dict) -> dict:
    def get_config(key, default=None):
        value = values
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return value

    return {"c": c, "get_config": get_config, "get_name": lambda name: {"hub": "hub"}[name]}


def load(values: dict, stock: bool = True) -> Config:
    c = Config()
    c.JupyterHub.services = [copy.deepcopy(STOCK)] if stock else []
    c.JupyterHub.load_roles = [copy.deepcopy(STOCK_ROLE)] if stock else []
    exec(compile(SNIPPET.read_text(), SNIPPET.name, "exec"), z2jh_globals(c, values))
    return c


def example_values() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def test_example_values_register_the_service_and_role(capsys, tmp_path, monkeypatch):
    values = example_values()
    monkeypatch.chdir(tmp_path)
    c = load(values, stock=False)  # cull.enabled: false, so z2jh added no culler
    (service,) = c.JupyterHub.services
    assert service["name"] == "jhplatform-culler"
    assert service["command"] == [sys.executable, "-m", "jhplatform.culler"]
    assert service["url"] == "http://hub:10101"
    assert c.JupyterHub.load_roles == [{
        "name": "jhplatform-culler", "description": "The GPU-aware culler: reads servers and their state, stops servers",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers", "admin:server_state"],
        "services": ["jhplatform-culler"]}]
    assert SCOPES == c.JupyterHub.load_roles[0]["scopes"]
    assert capsys.readouterr().out == ""

    monkeypatch.setenv(CONFIG_ENV, service["environment"][CONFIG_ENV])
    app = CullerService()
    app.initialize([])
    culler = values["custom"]["jhplatform"]["culler"]
    assert (app.gpu_idle_timeout, app.gpu_max_age) == (culler["gpu"]["idleTimeout"], culler["gpu"]["maxAge"])
    assert (app.cpu_idle_timeout, app.cpu_max_age) == (culler["cpu"]["idleTimeout"], culler["cpu"]["maxAge"])
    assert app.prometheus_url == culler["prometheus"]["url"]
    assert app.bind_url == "http://0.0.0.0:10101"
    assert app.warnings_file == str(tmp_path / "jhplatform-culler-warnings.json")
    assert app.policy().profiles["a100-long"].max_age == culler["profiles"]["a100-long"]["maxAge"]


def test_stock_culler_still_enabled_is_removed_with_a_message(capsys):
    other = {"name": "other", "api_token": "x"}
    c = Config()
    c.JupyterHub.services = [copy.deepcopy(STOCK), other]
    c.JupyterHub.load_roles = [copy.deepcopy(STOCK_ROLE)]
    exec(compile(SNIPPET.read_text(), SNIPPET.name, "exec"), z2jh_globals(c, {"custom": {"jhplatform": {"culler": {}}}}))
    assert [s["name"] for s in c.JupyterHub.services] == ["other", "jhplatform-culler"]
    assert [r["name"] for r in c.JupyterHub.load_roles] == ["jhplatform-culler"]
    assert "cull.enabled is true; its idle-culler service is removed" in capsys.readouterr().out


def test_disabled_changes_nothing():
    c = load({"custom": {"jhplatform": {"culler": {"enabled": False}}}})
    assert c.JupyterHub.services == [STOCK]
    assert c.JupyterHub.load_roles == [STOCK_ROLE]
    assert "template_vars" not in c.JupyterHub


@pytest.mark.parametrize(
    "culler, message",
    [
        ({"gpu": {"idleTimeout": -5}}, "FATAL: custom.jhplatform.culler.gpu.idle_timeout must be a number of seconds >= 0"),
        ({"gpu": {"timeout": 5}}, "FATAL: custom.jhplatform.culler.gpu has unknown key(s) ['timeout']"),
        ({"maxAge": 5}, "FATAL: custom.jhplatform.culler has unknown key(s) ['maxAge']"),
        ({"profiles": {"a100": {"maxAge": "1d"}}}, "FATAL: custom.jhplatform.culler.profiles.a100.max_age must be a number"),
        ({"prometheus": {"adress": "x"}}, "FATAL: custom.jhplatform.culler.prometheus has unknown key(s) ['adress']"),
    ],
    ids=["negative-timeout", "unknown-limit-key", "unknown-key", "text-max-age", "misspelled-prometheus-key"],
)
def test_bad_settings_stop_the_hub_at_load(capsys, culler, message):
    with pytest.raises(SystemExit) as exit:
        load({"cull": {"enabled": False}, "custom": {"jhplatform": {"culler": culler}}}, stock=False)
    assert exit.value.code == 1
    assert message in capsys.readouterr().err


class User:
    def __init__(self, name):
        self.name = name


def test_announcement_shows_only_the_owners_warnings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = Config()
    c.JupyterHub.template_vars = {"announcement_home": "<b>Maintenance on Friday</b>", "other": 1}
    exec(compile(SNIPPET.read_text(), SNIPPET.name, "exec"),
         z2jh_globals(c, {"cull": {"enabled": False}, "custom": {"jhplatform": {"culler": {}}}}))
    announce = c.JupyterHub.template_vars["announcement_home"]
    assert c.JupyterHub.template_vars["other"] == 1
    assert announce(User("ada")) == "<b>Maintenance on Friday</b>"  # no warnings file yet
    generated = datetime.now(timezone.utc).isoformat()
    (tmp_path / "jhplatform-culler-warnings.json").write_text(json.dumps(
        {"generated": generated, "warnings": {"ada": ["Your server <x> will be stopped at 12:00 UTC"]}}))
    assert announce(User("ada")) == ("<b>Maintenance on Friday</b>\n"
                                     '<p class="jhplatform-cull-warning">Your server &lt;x&gt; will be stopped at 12:00 UTC</p>')
    assert announce(User("bob")) == "<b>Maintenance on Friday</b>"
    assert announce(None) == "<b>Maintenance on Friday</b>"
    # Not replaced for three cycles (default every 300 s): the culler stopped; show nothing.
    stale = (datetime.now(timezone.utc) - timedelta(seconds=901)).isoformat()
    (tmp_path / "jhplatform-culler-warnings.json").write_text(json.dumps(
        {"generated": stale, "warnings": {"ada": ["Your server will be stopped at 12:00 UTC!"]}}))
    assert announce(User("ada")) == "<b>Maintenance on Friday</b>"
    (tmp_path / "jhplatform-culler-warnings.json").write_text("{not json")
    assert announce(User("ada")) == "<b>Maintenance on Friday</b>"


def test_example_values_validate_against_chart_schema():
    def merge(base, over):
        for k, v in over.items():
            if isinstance(v, dict) and isinstance(base.get(k), dict):
                merge(base[k], v)
            else:
                base[k] = copy.deepcopy(v)
        return base

    z2jh = TEST_DATA / "z2jh-4.4.0"
    schema = yaml.safe_load((z2jh / "values.schema.yaml").read_text())
    jsonschema.validate(merge(yaml.safe_load((z2jh / "values.yaml").read_text()), example_values()), schema)
