"""Inside the hub pod's mount namespace: load the hub's config as JupyterHub does, then check or render.

``jhplatform check`` and ``jhplatform render`` run this module with
:meth:`jhplatform.z2jh.HubPod.run`, so ``/usr/local/etc/jupyterhub/jupyterhub_config.py`` (with
z2jh's ``z2jh.py``, the values Secret and the image's snippets) is loaded by traitlets'
``PyFileConfigLoader`` exactly as the hub loads it: the configuration checked is the one the hub
would run, extraConfig included, not a re-implementation of it.

Spawners need a Kubernetes API to render (claim lookups); an in-process emulator with the release
namespace (PSS restricted) stands in for the cluster, so nothing leaves this machine.

Output: one JSON document on stdout (see ``_check`` and ``_render``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import sys
import tempfile
import threading
from pathlib import Path
from types import SimpleNamespace

import yaml

CONFIG_FILE = "/usr/local/etc/jupyterhub/jupyterhub_config.py"
VALUES_FILE = "/usr/local/etc/jupyterhub/secret/values.yaml"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}


def load_hub_config():
    """The hub's config, loaded from the pod's config file as JupyterHub loads it."""
    from traitlets.config.loader import PyFileConfigLoader

    # A fresh z2jh module each time: it caches the values it read.
    sys.modules.pop("z2jh", None)
    loader = PyFileConfigLoader(os.path.basename(CONFIG_FILE), os.path.dirname(CONFIG_FILE))
    # The config file prints what it loads; keep stdout for our JSON.
    with contextlib.redirect_stdout(io.StringIO()):
        return loader.load_config()


def _spawner_section(config) -> str:
    for section in ("PlatformSpawner", "KubeSpawner"):
        if section in config and "profile_list" in config[section]:
            return section
    return "KubeSpawner"


def _profile_list(config) -> list:
    section = _spawner_section(config)
    profiles = config[section].get("profile_list", []) if section in config else []
    if isinstance(profiles, dict):
        profiles = [profiles[k] for k in sorted(profiles)]
    return profiles if isinstance(profiles, list) else []


def _slug(profile: dict) -> str:
    return str(profile.get("slug") or profile.get("display_name") or "")


class _Emulator:
    """The Kubernetes API emulator on a loopback port, served from its own thread."""

    def __init__(self, namespace: str):
        self.namespace = namespace
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.kubeconfig = Path(tempfile.mkdtemp(prefix="jhplatform-check-")) / "kubeconfig"

    def start(self) -> None:
        from ..devcluster.runtime import DevCluster

        self.thread.start()

        async def up():
            self.server = DevCluster(kubelet="simulated")
            await self.server.start("127.0.0.1", 0)
            self.server.write_kubeconfig(self.kubeconfig, namespace=self.namespace)
            self.server.cluster.create("namespaces", None, {"metadata": {"name": self.namespace, "labels": RESTRICTED}})

        asyncio.run_coroutine_threadsafe(up(), self.loop).result(60)
        # kubernetes_asyncio reads KUBECONFIG when KubeSpawner loads its client config.
        os.environ["KUBECONFIG"] = str(self.kubeconfig)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)


# -- where a problem comes from, as a values path ------------------------------------------------


def _origins(config, values: dict) -> dict[str, str]:
    """Profile slug -> values path of the profile (``singleuser.profileList[i]``,
    ``hub.config.<Section>.profile_list[i]`` or ``hub.extraConfig.<key>``)."""
    origins: dict[str, str] = {}
    final = _profile_list(config)
    listed = (values.get("singleuser") or {}).get("profileList") or []
    hub_config = (values.get("hub") or {}).get("config") or {}
    for profile in final:
        if not isinstance(profile, dict):
            continue
        slug = _slug(profile)
        for j, given in enumerate(listed):
            if given == profile:
                origins[slug] = f"singleuser.profileList[{j}]"
                break
        else:
            for section in ("PlatformSpawner", "KubeSpawner"):
                for j, given in enumerate((hub_config.get(section) or {}).get("profile_list") or []):
                    if given == profile:
                        origins[slug] = f"hub.config.{section}.profile_list[{j}]"
    missing = [_slug(p) for p in final if isinstance(p, dict) and _slug(p) not in origins]
    extra = sorted(((values.get("hub") or {}).get("extraConfig") or {}).items())
    if missing and extra:
        # Load again with only the first n extraConfig entries: the entry after which a profile
        # first appears (as it finally is) is the one that set it.
        for n in range(1, len(extra) + 1):
            partial = dict(values)
            partial["hub"] = dict(values["hub"], extraConfig=dict(extra[:n]))
            Path(VALUES_FILE).write_text(yaml.safe_dump(partial))
            try:
                now = {_slug(p): p for p in _profile_list(load_hub_config()) if isinstance(p, dict)}
            except BaseException:  # noqa: BLE001 - a partial config may fail; the full one loaded
                continue
            for slug in list(missing):
                final_profile = next(p for p in final if isinstance(p, dict) and _slug(p) == slug)
                if now.get(slug) == final_profile:
                    origins[slug] = f"hub.extraConfig.{extra[n - 1][0]}"
                    missing.remove(slug)
        Path(VALUES_FILE).write_text(yaml.safe_dump(values))
    for slug in missing:
        origins[slug] = "hub.extraConfig" if extra else "the hub configuration"
    return origins


def _setting_path(profile_path: str, profile: dict | None, option: str | None, choice: str | None, settings) -> str:
    """The values path of the override behind a problem, as precise as the config says."""
    if profile is None or profile_path.startswith("hub.extraConfig"):
        return profile_path
    overrides = [("", profile.get("kubespawner_override") or {})]
    if option and choice is not None:
        spec = ((profile.get("profile_options") or {}).get(option) or {}).get("choices", {}).get(choice) or {}
        overrides.insert(0, (f".profile_options.{option}.choices.{choice}", spec.get("kubespawner_override") or {}))
    for setting in settings:
        trait = setting.split(".")[-1]
        for prefix, override in overrides:
            if trait in override:
                return f"{profile_path}{prefix}.kubespawner_override.{trait}"
    if option and choice is not None:
        return f"{profile_path}.profile_options.{option}.choices.{choice}"
    return profile_path


_PROFILE = re.compile(r"profile '([^']*)'")
_GPU_KEY = re.compile(r": (gpu(?:\.[a-z_]+)?)")
_DATASET = re.compile(r"dataset '([^']*)'")
_SECTION = re.compile(r"^(PlatformSpawner|KubeSpawner|StorageMixin)\.(shared_datasets|scratch_size_limit|shm_size_limit|scratch_path)")
_ENTITLEMENT = re.compile(r"^PlatformSpawner\.(entitlements|default_entitlement)(?:\['([^']*)'\])?")


def _entitlement_path(message: str, hub_config: dict) -> str:
    """``hub.config.PlatformSpawner.entitlements.<group>`` (or ``default_entitlement``) when the
    values set it there, else ``hub.extraConfig``."""
    m = _ENTITLEMENT.match(message)
    given = hub_config.get("PlatformSpawner") or {}
    if not m or m.group(1) not in given:
        return "hub.extraConfig"
    path = f"hub.config.PlatformSpawner.{m.group(1)}"
    return path + (f".{m.group(2)}" if m.group(2) is not None else "")


def _check(args) -> dict:
    from ..spawner.checks import check_profiles
    from ..spawner.gpu import check_gpu_profiles
    from ..spawner.storage import storage_config_problems

    values = yaml.safe_load(Path(VALUES_FILE).read_text())
    config = load_hub_config()
    profiles = {_slug(p): p for p in _profile_list(config) if isinstance(p, dict)}
    origins = _origins(config, values)
    problems: list[dict] = []

    # Settings with problems of their own are left out of the render below: the traits would
    # refuse them when a spawner is made, and every profile would fail for the same reason.
    broken_slugs: set[str] = set()
    broken_settings: set[tuple[str, str]] = set()

    for message in check_gpu_profiles(config):
        m = _PROFILE.search(message)
        slug = m.group(1) if m else ""
        if slug not in profiles:  # gpu_problems names a profile by slug, else display name
            slug = next((s for s, p in profiles.items() if p.get("display_name") == slug), slug)
        broken_slugs.add(slug)
        path = origins.get(slug, "singleuser.profileList")
        key = _GPU_KEY.search(message)
        if key and not path.startswith("hub.extraConfig"):
            path += "." + key.group(1)
        problems.append({"path": path, "message": message})

    hub_config = (values.get("hub") or {}).get("config") or {}
    for message in storage_config_problems(config):
        m = _PROFILE.search(message)
        section = _SECTION.match(message)
        if section:
            broken_settings.add((section.group(1), section.group(2)))
        if m and m.group(1) in origins:
            broken_slugs.add(m.group(1))
            path = origins[m.group(1)]
            if not path.startswith("hub.extraConfig"):
                path += ".kubespawner_override"
        else:
            path = "hub.extraConfig"
            if section and section.group(2) in (hub_config.get(section.group(1)) or {}):
                path = f"hub.config.{section.group(1)}.{section.group(2)}"
                dataset = _DATASET.search(message)
                given = hub_config[section.group(1)][section.group(2)]
                if dataset and isinstance(given, list):
                    index = next((i for i, d in enumerate(given) if isinstance(d, dict) and d.get("name") == dataset.group(1)), None)
                    if index is not None:
                        path += f"[{index}]"
        problems.append({"path": path, "message": message})

    from ..spawner.entitlements import check_entitlements

    for message in check_entitlements(config):
        problems.append({"path": _entitlement_path(message, hub_config), "message": message})

    section = _spawner_section(config)
    if broken_slugs and section in config and "profile_list" in config[section]:
        config[section]["profile_list"] = [p for p in _profile_list(config) if not (isinstance(p, dict) and _slug(p) in broken_slugs)]
    for name, key in broken_settings:
        if name in config:
            config[name].pop(key, None)
    try:
        rendered = check_profiles(config)
    except Exception as e:  # noqa: BLE001 - reported as a problem of the whole configuration
        rendered = []
        problems.append({"path": "hub.config", "message": f"no spawner can be made from this configuration: {type(e).__name__}: {e}"})
    blocker = values.get("singleuser", {}).get("cloudMetadata", {}).get("blockWithIptables") is True
    for problem in rendered:
        profile = profiles.get(problem.profile)
        if blocker and '"block-cloud-metadata"' in problem.message:
            # z2jh's own privileged init container (step 7), in every profile: one values key.
            path = "singleuser.cloudMetadata.blockWithIptables"
        else:
            path = _setting_path(origins.get(problem.profile, "singleuser.profileList"), profile, problem.option, problem.choice, problem.settings)
        problems.append({"path": path, "message": str(problem)})
    return {"problems": problems, "profiles": list(profiles)}


async def _render_async(config, args) -> dict:
    from jupyterhub import orm
    from jupyterhub.objects import Hub

    from ..spawner import PlatformSpawner, SecurityPolicyRefusal

    groups = [SimpleNamespace(name=g, properties={}) for g in args.group]
    user = SimpleNamespace(
        name=args.user,
        escaped_name=args.user,
        id=1,
        url=f"/user/{args.user}/",
        groups=groups,
        spawners={},
        progress_url=lambda server_name="": f"/hub/api/users/{args.user}/servers/{server_name}/progress",
    )
    try:
        spawner = PlatformSpawner(
            config=config,
            hub=Hub(ip="127.0.0.1", port=8081, base_url="/hub/"),
            user=user,
            orm_spawner=orm.Spawner(name=""),
            api_token="render",
            oauth_client_id=f"jupyterhub-user-{args.user}",
        )
    except Exception as e:  # noqa: BLE001 - a setting the spawner's traits refuse
        return {"error": f"no spawner can be made from this configuration (run `jhplatform check`): {type(e).__name__}: {e}"}
    options = {"profile": args.profile}
    for item in args.option:
        key, _, value = item.partition("=")
        options[key] = value
    spawner.user_options = options
    try:
        # JupyterHub's order when a user spawns: group overrides, then the profile and options.
        await spawner.apply_group_overrides()
        await spawner.load_user_options()
    except SecurityPolicyRefusal as refusal:
        return {"error": refusal.log_message}
    except Exception as e:  # noqa: BLE001 - an unknown profile or option, a bad override
        return {"error": f"{type(e).__name__}: {e}"}
    pod = spawner._to_dict(await spawner.get_pod_manifest())
    pod.setdefault("metadata", {})["namespace"] = spawner.namespace
    documents = []
    if spawner.storage_pvc_ensure:
        pvc = spawner.api.api_client.sanitize_for_serialization(spawner.get_pvc_manifest())
        pvc.setdefault("metadata", {})["namespace"] = spawner.namespace
        documents.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", **pvc})
    documents.append({"apiVersion": "v1", "kind": "Pod", **pod})
    return {"documents": documents}


def _render(args) -> dict:
    config = load_hub_config()
    slugs = [_slug(p) for p in _profile_list(config) if isinstance(p, dict)]
    if slugs and args.profile not in slugs:
        return {"error": f"no profile {args.profile!r} in the profile list (profiles: {', '.join(slugs)})"}
    return asyncio.run(_render_async(config, args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jhplatform.cli.hub_config")
    parser.add_argument("command", choices=("check", "render"))
    parser.add_argument("--user", default="jhplatform-sample-user")
    parser.add_argument("--profile", default="")
    parser.add_argument("--option", action="append", default=[])
    parser.add_argument("--group", action="append", default=[])
    args = parser.parse_args(argv)
    emulator = _Emulator(os.environ.get("POD_NAMESPACE", "default"))
    emulator.start()
    try:
        result = _check(args) if args.command == "check" else _render(args)
    except SystemExit as e:
        # The config file itself refused to load (z2jh's own FATAL lines went to stderr).
        result = {"fatal": f"the hub configuration exits with {e.code} while loading"}
    except Exception as e:  # noqa: BLE001 - reported to the user as one line
        result = {"fatal": f"the hub configuration cannot be loaded: {type(e).__name__}: {e}"}
    finally:
        emulator.stop()
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
