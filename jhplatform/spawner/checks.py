"""Load-time checks: find a profile that can never start before a user does.

``check_profiles(config)`` renders every profile of ``PlatformSpawner.profile_list`` (and every
choice of each profile option) for a sample user with no groups and runs the same security check
a spawn runs. ``fail_on_problems(config)`` is what ``jupyterhub_config.d/`` calls when the hub
starts: it prints each problem z2jh-style and exits, so a broken profile is found at
``helm upgrade`` time, in the hub's log, instead of by a user.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
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


async def _check(config: Config, spawner_class) -> list[ProfileProblem]:
    from jupyterhub import orm
    from jupyterhub.objects import Hub

    from .spawner import SecurityPolicyRefusal

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
            problems.append(ProfileProblem(slug, option, choice, refusal.log_message.split(":", 1)[-1].strip()))
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


__all__ = ["ProfileProblem", "SAMPLE_USER", "check_profiles", "fail_on_problems"]
