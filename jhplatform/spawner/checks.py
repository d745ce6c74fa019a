"""Load-time checks: find a profile that can never start before a user does.

``check_profiles(config)`` renders every profile of ``PlatformSpawner.profile_list`` (and every
choice of each profile option) for a sample user with no groups and runs the same security check
a spawn runs. ``fail_on_problems(config)`` prints each problem z2jh-style and exits, so a broken
profile is found at ``helm upgrade`` time, in the hub's log, instead of by a user.

``check_when_hub_starts(c)`` is what ``jupyterhub_config.d/90-jhplatform-checks.py`` calls. z2jh's
``jupyterhub_config.py`` execs the snippets *before* ``hub.extraConfig``, so a check run right
there would miss every profile an admin sets in extraConfig. Instead the snippet schedules the
checks on the hub's event loop: JupyterHub loads its config file inside its running loop
(``JupyterHub.initialize``), so the scheduled call runs once the whole file, extraConfig
included, has been loaded, and before the hub starts serving (``JupyterHub.start``): a broken
profile stops the hub before any user can spawn.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import logging
import sys
from dataclasses import dataclass

from traitlets.config import Config

log = logging.getLogger("jhplatform.spawner.checks")

SAMPLE_USER = "jhplatform-sample-user"


@dataclass(frozen=True)
class ProfileProblem:
    profile: str
    option: str | None
    choice: str | None
    message: str
    #: The settings (``Class.trait``) behind the problem, most likely first.
    settings: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = f"profile {self.profile!r}"
        if self.option:
            where += f" (option {self.option!r}, choice {self.choice!r})"
        return f"PlatformSpawner.profile_list {where}: {self.message}"


class _SampleUser:
    """The attributes a spawner reads from a JupyterHub user, for a user with no groups."""

    name = SAMPLE_USER
    escaped_name = SAMPLE_USER
    id = 0
    url = f"/user/{SAMPLE_USER}/"
    groups: list = []
    spawners: dict = {}

    def progress_url(self, server_name: str = "") -> str:
        return f"/hub/api/users/{SAMPLE_USER}/servers/{server_name}/progress"


def _cases(profile_list: list[dict]):
    for profile in profile_list:
        slug = profile["slug"]
        yield slug, None, None, {"profile": slug}
        for option, spec in (profile.get("profile_options") or {}).items():
            for choice in spec.get("choices") or {}:
                yield slug, option, choice, {"profile": slug, option: choice}


def _without_entitlements(config: Config) -> Config:
    """A copy of ``config`` in which every user may start every profile.

    Entitlements decide who may start a profile, not whether it can start at all; the sample
    user is in no group, so with them every GPU profile would be "refused" for the wrong reason.
    """
    config = copy.deepcopy(config)
    if "PlatformSpawner" in config:
        for key in ("entitlements", "default_entitlement"):
            config.PlatformSpawner.pop(key, None)
    return config


async def _check(config: Config, spawner_class) -> list[ProfileProblem]:
    from jupyterhub import orm
    from jupyterhub.objects import Hub

    from .spawner import SecurityPolicyRefusal

    config = _without_entitlements(config)

    def make():
        return spawner_class(
            config=config,
            hub=Hub(ip="127.0.0.1", port=8081, base_url="/hub/"),
            user=_SampleUser(),
            orm_spawner=orm.Spawner(name=""),
            api_token="load-time-check",
            oauth_client_id="load-time-check",
        )

    first = make()
    profile_list = first.profile_list
    if callable(profile_list):
        log.info("profile_list is a callable; profiles are checked at spawn time only")
        return []
    profile_list = first._get_initialized_profile_list(first._sorted_dict_values(profile_list))
    if not profile_list:
        profile_list = [{"slug": "", "display_name": "default"}]
    problems = []
    for slug, option, choice, options in _cases(profile_list):
        spawner = make()
        spawner.user_options = options if slug else {}
        try:
            await spawner.load_user_options()
            for key in spawner.unknown_override_keys:
                problems.append(
                    ProfileProblem(slug, option, choice, f"kubespawner_override sets {key!r}, which is not a {spawner_class.__name__} setting. Maybe misspelled?")
                )
        except SecurityPolicyRefusal as refusal:
            settings: list[str] = []
            for named in refusal.settings:
                for setting in named[:1]:  # the most likely cause of each violation
                    if setting not in settings:
                        settings.append(setting)
            problems.append(ProfileProblem(slug, option, choice, refusal.log_message.split(":", 1)[-1].strip(), tuple(settings)))
        except Exception as e:  # a broken override (unknown trait, bad type) is a problem too
            problems.append(ProfileProblem(slug, option, choice, f"cannot be rendered: {type(e).__name__}: {e}"))
    return problems


def check_profiles(config: Config, spawner_class=None) -> list[ProfileProblem]:
    """Every profile and option choice that would be refused for a user with no groups.

    Runs in a worker thread with its own event loop, so it can be called while the hub loads
    its configuration (inside the hub's running loop) as well as from a plain script.
    """
    if spawner_class is None:
        from .spawner import PlatformSpawner as spawner_class
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _check(config, spawner_class)).result()


def fail_on_problems(config: Config, spawner_class=None, stream=sys.stderr) -> None:
    """Print each problem as ``FATAL: ...`` and exit 1 if there are any."""
    try:
        problems = check_profiles(config, spawner_class)
    except Exception as e:
        # Without Kubernetes client config (say, a config lint on a laptop) there is nothing
        # to render with; spawns are still checked one by one.
        print(f"WARNING: jhplatform could not check profiles at load time: {type(e).__name__}: {e}", file=stream)
        return
    if not problems:
        return
    for problem in problems:
        print(f"FATAL: {problem}", file=stream)
    print(
        "FATAL: jhplatform refuses to start with profiles that can never meet the platform's security "
        "policy. Fix the settings named above (see docs/security.md), or set "
        'c.PlatformSpawner.security_mode = "warn" while migrating.',
        file=stream,
    )
    sys.exit(1)


def load_time_problems(config: Config) -> list[str]:
    """Every problem the load-time checks find in a hub config, ready to print.

    In order: GPU profiles (well-formed), storage settings, entitlements (rules that parse and
    name only profiles, options and choices that exist), then every profile and option choice
    rendered for a sample user and checked like a spawn.
    """
    from .entitlements import check_entitlements
    from .gpu import check_gpu_profiles
    from .storage import storage_config_problems

    problems = [str(p) for p in check_gpu_profiles(config)]
    problems += storage_config_problems(config)
    problems += check_entitlements(config)
    if problems:
        # A profile list with broken GPU or storage entries would only repeat them below.
        return problems
    return [str(p) for p in check_profiles(config)]


def fail_on_load_time_problems(config: Config, stream=None) -> None:
    """Print each load-time problem as ``FATAL: ...`` (stderr) and exit 1 if there are any."""
    stream = stream or sys.stderr
    try:
        problems = load_time_problems(config)
    except Exception as e:
        print(f"WARNING: jhplatform could not check the configuration at start: {type(e).__name__}: {e}", file=stream)
        return
    if not problems:
        log.info("jhplatform: load-time checks passed")
        return
    for problem in problems:
        print(f"FATAL: {problem}", file=stream)
    print(
        "FATAL: jhplatform refuses to start with settings that cannot work or can never meet the "
        "platform's security policy. Fix the settings named above (in z2jh values: "
        "singleuser.profileList, hub.config or hub.extraConfig; see docs/security.md, docs/gpu.md, "
        "docs/storage.md and docs/auth.md).",
        file=stream,
        flush=True,
    )
    sys.exit(1)


def check_when_hub_starts(config: Config) -> bool:
    """Schedule the load-time checks to run once the hub has loaded all its configuration.

    Returns True when scheduled on the hub's running event loop. Outside a running loop (a
    config file loaded by a plain script, e.g. a lint) nothing is scheduled and False is
    returned: there is no "after the whole config" moment to wait for; ``jhplatform check``
    runs the same checks on the final configuration instead.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        log.info("jhplatform: no running hub; load-time checks not scheduled")
        return False
    loop.call_soon(fail_on_load_time_problems, config)
    return True


__all__ = [
    "ProfileProblem",
    "SAMPLE_USER",
    "check_profiles",
    "check_when_hub_starts",
    "fail_on_load_time_problems",
    "fail_on_problems",
    "load_time_problems",
]
