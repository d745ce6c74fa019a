"""Sign-in and entitlements set from z2jh values (``hub.config``), as the drop-in ships them.

Follows z2jh-hub-loader.md: ``singleuser.profileList`` becomes ``c.KubeSpawner.profile_list`` and
each ``hub.config`` section is applied with ``c[section].update(cfg)``, before the
``jupyterhub_config.d`` snippets run.

We test these aspects:
- ``helm-values/entitlements-example.yaml`` over platform.yaml and z2jh 4.4.0's defaults still
  validates against the chart's schema;
- loaded the way z2jh loads them, the values select PlatformAuthenticator through its entry-point
  name, configure it, and give PlatformSpawner entitlements that name the shipped profiles; the
  load-time entitlement check passes;
- the same values with a misspelled rule key or a profile slug that does not exist stop the hub
  with ``FATAL:`` lines naming the setting.
"""

from __future__ import annotations

import copy
import io

import jsonschema
import pytest
import yaml
from traitlets.config import Config

from helpers import REPO, TEST_DATA

Z2JH = TEST_DATA / "z2jh-4.4.0"


def merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def values(extra: dict | None = None) -> dict:
    merged = yaml.safe_load((Z2JH / "values.yaml").read_text())
    for name in ("platform.yaml", "entitlements-example.yaml"):
        merge(merged, yaml.safe_load((REPO / "helm-values" / name).read_text()))
    return merge(merged, extra or {})


def hub_config(v: dict) -> Config:
    """What z2jh's jupyterhub_config.py makes of the values (the parts these tests need)."""
    c = Config()
    c.KubeSpawner.profile_list = v["singleuser"]["profileList"]
    for section, cfg in (v["hub"].get("config") or {}).items():
        c[section].update(cfg)
    return c


def test_values_validate_against_chart_schema():
    schema = yaml.safe_load((Z2JH / "values.schema.yaml").read_text())
    jsonschema.validate(values(), schema)


def test_values_configure_sign_in_and_entitlements():
    from jupyterhub.app import JupyterHub

    from jhplatform.auth import PlatformAuthenticator
    from jhplatform.policy.entitlements import parse_entitlements
    from jhplatform.spawner.entitlements import check_entitlements

    c = hub_config(values())
    hub = JupyterHub(config=c)
    assert hub.authenticator_class is PlatformAuthenticator
    auth = PlatformAuthenticator(config=c)
    assert auth.issuer == "https://keycloak.example.org/realms/research"
    assert auth.allowed_groups == {"staff", "gpu-users", "students"} and auth.admin_groups == {"hub-admins"}
    assert check_entitlements(c) == []
    parsed = parse_entitlements(c.PlatformSpawner.entitlements, c.PlatformSpawner.default_entitlement)
    ent = parsed.for_groups(["gpu-users"])
    assert ent.allows_profile("a100", "A100") and ent.gpus_per_user == 1
    assert not parsed.for_groups(["students"]).allows_profile("a100", "A100")


@pytest.mark.parametrize(
    "extra, fatal",
    [
        ({"hub": {"config": {"PlatformSpawner": {"entitlements": {"staff": {"profile": "*"}}}}}},
         "FATAL: PlatformSpawner.entitlements['staff'] has unknown key(s) 'profile' (misspelled?); the keys are "
         "profiles, choices, gpus_per_user, gpu_types, gpus_total"),
        ({"hub": {"config": {"PlatformSpawner": {"default_entitlement": {"profiles": ["cpu-small"]}}}}},
         "FATAL: PlatformSpawner.default_entitlement.profiles names 'cpu-small', which is no profile slug "
         "(the slugs are a100, cpu)"),
    ],
    ids=["misspelled-key", "unknown-slug"],
)
def test_bad_values_stop_the_hub(extra, fatal):
    from jhplatform.spawner.entitlements import fail_on_entitlement_problems

    c = hub_config(values(extra))
    out = io.StringIO()
    with pytest.raises(SystemExit) as e:
        fail_on_entitlement_problems(c, stream=out)
    assert e.value.code == 1
    assert fatal in out.getvalue().splitlines()
