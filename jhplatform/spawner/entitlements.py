"""Entitlements for PlatformSpawner: what a user's JupyterHub groups let them start.

The decisions are pure (:mod:`jhplatform.policy.entitlements`); this mixin reads the user's hub
groups (whatever filled them: PlatformAuthenticator from the identity provider, LDAP, an admin at
``/hub/admin``) and applies them at KubeSpawner's extension points:

- ``_render_options_form``: the form lists only the profiles, option choices and free-text
  choices the user is entitled to;
- ``run_options_from_form`` and ``load_user_options`` (every spawn, the REST API's included):
  a profile or choice the user is not entitled to is refused with a 403 whose message names the
  groups that grant it, before anything else happens. With no profile asked for, the first
  entitled profile (and entitled choices) are used instead of a default the user may not have;
- ``_gpu_policy``: the GPU ledger's per-user and per-group caps come from the entitlements.

With ``entitlements`` empty (the default) nothing changes: every profile is offered and the
``gpu_*`` settings give the caps.
"""

from __future__ import annotations

import copy
import sys

from tornado import web
from traitlets import Dict, TraitError, validate
from traitlets.config import LoggingConfigurable

from ..policy.entitlements import (
    UNLISTED,
    EntitledPolicy,
    EntitlementError,
    Entitlements,
    parse_entitlements,
    profile_problems,
    refusal_message,
)
from ..policy.profiles import gpu_spec


def _gpu_kind(profile) -> str | None:
    spec = gpu_spec(profile)
    return None if spec is None else spec.kind


class EntitlementsMixin(LoggingConfigurable):
    """Group entitlements for profiles, choices and GPU caps; mix in before GpuQuotaMixin."""

    entitlements = Dict(
        config=True,
        help="""
        What members of each JupyterHub group may start: ``{group: rule}``, where a rule has
        ``profiles`` (slugs or ``"*"``), ``choices`` (``{profile slug: {option: [choice keys] or
        "*"}}``; ``"unlisted"`` allows the free-text choice), ``gpus_per_user`` (default 0: no GPU
        profiles), ``gpu_types`` (absent: any) and ``gpus_total`` (GPUs all members together).
        A user's groups are merged: any group allowing a profile allows it, choices are the
        union, the highest ``gpus_per_user`` applies. Users in none of these groups get
        ``default_entitlement``. Empty (the default): no restrictions. When set, the GPU caps come
        from here and ``gpu_user_limit``, ``gpu_user_limit_by_group`` and ``gpu_group_limits`` are
        ignored. See docs/auth.md.

        Example::

            c.PlatformSpawner.entitlements = {
                "gpu-users": {"profiles": ["cpu", "a100"], "gpus_per_user": 1, "gpu_types": ["A100"]},
                "staff": {"profiles": "*", "gpus_per_user": 4},
            }
        """,
    )

    default_entitlement = Dict(
        {"profiles": "*"},
        config=True,
        help="""
        The rule for users in none of the groups of ``entitlements`` (same keys as a rule there).
        Default ``{"profiles": "*"}``: every profile without a GPU, no GPUs.

        Example::

            c.PlatformSpawner.default_entitlement = {"profiles": ["cpu"]}
        """,
    )

    @validate("entitlements")
    def _validate_entitlements(self, proposal):
        self._parse(proposal["value"], self.default_entitlement)
        return proposal["value"]

    @validate("default_entitlement")
    def _validate_default_entitlement(self, proposal):
        self._parse(self.entitlements, proposal["value"])
        return proposal["value"]

    @staticmethod
    def _parse(groups, default) -> Entitlements:
        try:
            return parse_entitlements(groups, default)
        except EntitlementError as e:
            raise TraitError(str(e)) from None

    def entitlement_rules(self) -> Entitlements:
        return self._parse(self.entitlements, self.default_entitlement)

    def user_entitlement(self):
        groups = sorted(g.name for g in (getattr(self.user, "groups", None) or []))
        return self.entitlement_rules().for_groups(groups)

    # -- the ledger's caps --

    def _gpu_policy(self):
        base = super()._gpu_policy()
        rules = self.entitlement_rules()
        if not rules.enabled:
            return base
        return EntitledPolicy.of(rules, base)

    # -- the form --

    def entitled_profiles(self, profile_list: list) -> list:
        """A copy of (initialized) ``profile_list`` with only what the user is entitled to."""
        rules = self.entitlement_rules()
        if not rules.enabled:
            return profile_list
        ent = rules.for_groups(sorted(g.name for g in (getattr(self.user, "groups", None) or [])))
        out = []
        for profile in copy.deepcopy(profile_list):
            slug, kind = profile.get("slug"), _gpu_kind(profile)
            if not ent.allows_profile(slug, kind):
                continue
            for option, spec in (profile.get("profile_options") or {}).items():
                allowed = ent.allowed_choices(slug, option, kind)
                if allowed is None:
                    continue
                choices = {k: c for k, c in (spec.get("choices") or {}).items() if k in allowed}
                if choices and not any(c.get("default") for c in choices.values()):
                    next(iter(choices.values()))["default"] = True
                for key in set(spec.get("choices") or {}) - set(choices):
                    self.log.debug("Form for %s: choice %r of %s/%s not entitled", self.user.name, key, slug, option)
                spec["choices"] = choices
                if UNLISTED not in allowed and (spec.get("unlisted_choice") or {}).get("enabled"):
                    spec["unlisted_choice"] = {**spec["unlisted_choice"], "enabled": False}
            out.append(profile)
        if out and not any(p.get("default") for p in out):
            out[0]["default"] = True
        return out

    def _render_options_form(self, profile_list):
        profile_list = self._get_initialized_profile_list(profile_list)
        entitled = self.entitled_profiles(profile_list)
        if profile_list and not entitled:
            rules = self.entitlement_rules()
            granting = sorted({g for p in profile_list for g in rules.granting_profile(p.get("slug"), _gpu_kind(p))})
            message = refusal_message("any profile on this hub", granting)
            return f'<div class="alert alert-warning" role="alert">{web.escape.xhtml_escape(message)}</div>'
        return super()._render_options_form(entitled)

    # -- the checks --

    def _entitlement_refusal(self, message: str, detail: str) -> web.HTTPError:
        self.log.warning("Spawn refused for %s: not entitled (%s). Groups: %s", self.user.name, detail,
                         ", ".join(sorted(g.name for g in (getattr(self.user, "groups", None) or []))) or "none")
        # Not a broken spawner: keep it out of consecutive_failure_limit like a GPU refusal.
        getattr(self, "_gpu_not_a_failure", lambda: None)()
        error = web.HTTPError(403, "%s", message)
        error.jupyterhub_message = message
        return error

    def check_entitlement(self, profile_list: list, user_options: dict) -> dict:
        """Refuse (403) what ``user_options`` ask for beyond the user's entitlement; return the
        options to use (with the first entitled profile and choices filled in when none was
        asked for)."""
        rules = self.entitlement_rules()
        if not rules.enabled or not profile_list:
            return user_options
        options = dict(user_options or {})
        ent = self.user_entitlement()
        slug = options.get("profile")
        by_slug = {p.get("slug"): p for p in profile_list}
        if not slug:
            entitled = self.entitled_profiles(profile_list)
            if not entitled:
                granting = sorted({g for p in profile_list for g in rules.granting_profile(p.get("slug"), _gpu_kind(p))})
                raise self._entitlement_refusal(refusal_message("any profile on this hub", granting), "no profile")
            chosen = next((p for p in entitled if p.get("default")), entitled[0])
            options["profile"] = slug = chosen["slug"]
            for option, spec in (chosen.get("profile_options") or {}).items():
                if option not in options and f"{option}--unlisted-choice" not in options:
                    default = next((k for k, c in (spec.get("choices") or {}).items() if c.get("default")), None)
                    if default is not None:
                        options[option] = default
        profile = by_slug.get(slug)
        if profile is None:
            return options  # KubeSpawner refuses an unknown slug with its own message
        kind, name = _gpu_kind(profile), profile.get("display_name") or slug
        if not ent.allows_profile(slug, kind):
            raise self._entitlement_refusal(refusal_message(f'the profile "{name}"', rules.granting_profile(slug, kind)),
                                            f"profile {slug!r}")
        for option, spec in (profile.get("profile_options") or {}).items():
            label = spec.get("display_name") or option
            if options.get(f"{option}--unlisted-choice"):
                if not ent.allows_choice(slug, option, UNLISTED, kind):
                    raise self._entitlement_refusal(
                        refusal_message(f'a value of your own for "{label}" in "{name}"',
                                        rules.granting_choice(slug, option, UNLISTED, kind)),
                        f"profile {slug!r} option {option!r} unlisted choice")
                continue
            choice = options.get(option)
            if choice is None:
                # KubeSpawner would use the option's default: use the first entitled one instead.
                allowed = ent.allowed_choices(slug, option, kind)
                keys = list((spec.get("choices") or {}))
                default = next((k for k, c in (spec.get("choices") or {}).items() if c.get("default")), None)
                if allowed is not None and default not in allowed:
                    pick = next((k for k in keys if k in allowed), None)
                    if pick is not None:
                        options[option] = pick
                continue
            if not ent.allows_choice(slug, option, str(choice), kind):
                choice_name = ((spec.get("choices") or {}).get(choice) or {}).get("display_name") or choice
                raise self._entitlement_refusal(
                    refusal_message(f'"{choice_name}" for "{label}" in "{name}"',
                                    rules.granting_choice(slug, option, str(choice), kind)),
                    f"profile {slug!r} option {option!r} choice {choice!r}")
        return options

    async def _entitled_options(self, user_options: dict) -> dict:
        profile_list = self._sorted_dict_values(self.profile_list)
        if callable(profile_list):
            from jupyterhub.utils import maybe_future

            profile_list = await maybe_future(profile_list(self))
        return self.check_entitlement(self._get_initialized_profile_list(profile_list), user_options)

    async def run_options_from_form(self, form_data):
        if self.entitlements:
            from jupyterhub.utils import maybe_future

            # Checked before the GPU mixin reserves anything for the submission.
            await self._entitled_options(await maybe_future(self.options_from_form(form_data)))
        return await super().run_options_from_form(form_data)

    async def load_user_options(self):
        if self.user is not None and getattr(self.user, "name", None) and self.entitlements:
            try:
                checked = await self._entitled_options(self.user_options or {})
            except web.HTTPError:
                self._release_form_reservation()
                raise
            if checked != (self.user_options or {}):
                self.user_options = checked
        await super().load_user_options()

    def _release_form_reservation(self) -> None:
        # A form rendered before the user's groups changed may have reserved a GPU on
        # submission; the spawn refreshed the groups and is refused, so free it now rather than
        # when the reservation lapses (PlatformSpawner.gpu_form_reservation_seconds).
        key = getattr(self, "_gpu_form_key", None)
        if key:
            from .gpu import gpu_ledger

            gpu_ledger().release(key)
            self._gpu_form_key = None


def check_entitlements(config) -> list[str]:
    """Names in the entitlement settings that match no profile, option or choice (load time)."""
    section = config["PlatformSpawner"] if "PlatformSpawner" in config else {}
    if "entitlements" not in section:
        return []
    profile_list = None
    for name in ("PlatformSpawner", "KubeSpawner"):
        if name in config and "profile_list" in config[name]:
            profile_list = config[name]["profile_list"]
            break
    try:
        rules = parse_entitlements(section["entitlements"], section.get("default_entitlement", {"profiles": "*"}))
    except EntitlementError as e:
        return e.problems
    if profile_list is None or callable(profile_list):
        return []
    profiles = []
    for i, p in enumerate(profile_list if isinstance(profile_list, list) else []):
        slug = p.get("slug") or p.get("display_name", f"#{i + 1}")
        options = {opt: list((spec or {}).get("choices") or {}) for opt, spec in (p.get("profile_options") or {}).items()}
        profiles.append((slug, options))
    return profile_problems(rules, profiles)


def fail_on_entitlement_problems(config, stream=sys.stderr) -> None:
    """Print each entitlement problem as ``FATAL: ...`` and exit 1 (the hub does not start)."""
    problems = check_entitlements(config)
    if not problems:
        return
    for problem in problems:
        print(f"FATAL: {problem}", file=stream)
    print("FATAL: jhplatform refuses to start with entitlements that name no profile; see docs/auth.md.", file=stream)
    sys.exit(1)


__all__ = ["EntitlementsMixin", "check_entitlements", "fail_on_entitlement_problems"]
