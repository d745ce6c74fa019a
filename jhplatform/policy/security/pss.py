"""Kubernetes Pod Security Standards checks, as pod-security-admission runs them.

A pure re-implementation (stdlib only, no I/O) of ``k8s.io/pod-security-admission``
policy versions v1.0 to v1.37 ("latest" = v1.37): the same check ids, reasons,
details, version gates, check order and 403 message.  Pods are API-form dicts
(camelCase, as ``kubectl get pod -o yaml`` prints them); any key may be missing or
None and is then treated as unset, as a Go zero value would be.

The contract is the project's emulator spec, section 3 (Pod Security Standards).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Callable, Iterable, Iterator

LEVELS = ("privileged", "baseline", "restricted")
LATEST_VERSION = (1, 37)
LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "audit", "warn")

Version = tuple[int, int]


@dataclass(frozen=True)
class Violation:
    """One failed check: its id, its reason and (possibly empty) detail."""

    check: str
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        # policy/checks.go ForbiddenDetail: "reason (detail)", or the bare reason.
        return f"{self.reason} ({self.detail})" if self.detail else self.reason


# --- Formatting helpers (policy/helpers.go) ---

_GO_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n",
               "\r": r"\r", "\t": r"\t", "\v": r"\v", '"': r"\"", "\\": r"\\"}


def go_quote(value: object) -> str:
    """Quote like Go's ``%q`` / ``strconv.Quote`` (the messages are built with it)."""
    def escape(ch: str) -> str:
        if ch in _GO_ESCAPES or ch.isprintable():
            return _GO_ESCAPES.get(ch, ch)
        o = ord(ch)
        return f"\\x{o:02x}" if o < 0x80 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"
    return '"' + "".join(map(escape, str(value))) + '"'


def join_quote(items: Iterable[object]) -> str:
    """``joinQuote``: each item Go-quoted, joined by ", " (``"a", "b"``)."""
    return ", ".join(go_quote(i) for i in items)


def pluralize(singular: str, plural: str, n: int) -> str:
    """``pluralize``: the singular form iff n == 1."""
    return singular if n == 1 else plural


# --- Level / version / namespace labels (api/helpers.go) ---

def _parse_version_tuple(value: object) -> Version | None:
    """``v1.<minor>`` -> (1, minor); None for anything else (api.ParseVersion's regexp)."""
    match = re.fullmatch(r"v1\.(0|[1-9][0-9]{0,8})", value, re.ASCII) if isinstance(value, str) else None
    return (1, int(match.group(1))) if match else None


def parse_level(value: str | None) -> str:
    """Parse a level like ``api.ParseLevel``.

    None or "" (no label) is the default level, ``privileged``.  Any other value
    that is not exactly one of LEVELS evaluates as ``restricted``: a typo in a
    label must fail closed, not open.
    """
    if value is None or value == "":
        return "privileged"
    return value if value in LEVELS else "restricted"


def parse_version(value: str | None) -> str:
    """Parse a policy version like ``api.ParseVersion``.

    None, "", "latest" and invalid values give "latest".  "v1.N" is kept as is,
    except that a version newer than LATEST_VERSION is clamped to "latest"
    (the registry evaluates it with its newest policy anyway).
    """
    parsed = _parse_version_tuple(value)
    if parsed is None or parsed > LATEST_VERSION:
        return "latest"
    return f"v{parsed[0]}.{parsed[1]}"


def namespace_policy(labels: dict | None, mode: str = "enforce") -> tuple[str, str]:
    """Return ``(level, version)`` for one mode from a namespace's labels.

    Reads ``pod-security.kubernetes.io/<mode>`` and ``<mode>-version``, as
    ``api.PolicyToEvaluate`` does: a missing label gives the default
    (``privileged``, ``latest``); a label that is present but invalid (even "")
    gives ``restricted`` / ``latest``.  Like Go, ``warn`` without its own label
    inherits a valid, more restrictive ``enforce`` level (and its version unless
    ``warn-version`` is set), so users see what enforcement will reject.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    labels = labels if isinstance(labels, dict) else {}

    def read(m: str) -> tuple[str | None, str, bool]:
        raw_level, raw_version = labels.get(LABEL_PREFIX + m), labels.get(f"{LABEL_PREFIX}{m}-version")
        level = None if raw_level is None else raw_level if raw_level in LEVELS else "restricted"
        return level, parse_version(raw_version), raw_version is not None

    level, version, has_version = read(mode)
    if mode == "warn" and level is None:
        enforce_raw = labels.get(LABEL_PREFIX + "enforce")
        if enforce_raw in LEVELS and LEVELS.index(enforce_raw) > 0:
            level = enforce_raw
            if not has_version:
                version = read("enforce")[1]
    return level or "privileged", version


# --- Safe accessors: every field may be missing or None. ---

def _d(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _l(value: object) -> list:
    return value if isinstance(value, list) else []


def _s(value: object) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _containers(spec: dict) -> Iterator[dict]:
    # policy/visitor.go: init containers, then containers, then ephemeral containers.
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for c in _l(spec.get(kind)):
            if isinstance(c, dict):
                yield c


def _name(container: dict) -> str:
    return _s(container.get("name"))


def _sc(pod_spec_or_container: dict) -> dict:
    return _d(pod_spec_or_container.get("securityContext"))


def _containers_phrase(names: list[str]) -> str:
    return f'{pluralize("container", "containers", len(names))} {join_quote(names)}'


def _setters(pod_bad: bool, containers: list[str]) -> list[str]:
    """``pod`` and/or ``container(s) "a"``, later joined by " and "."""
    return (["pod"] if pod_bad else []) + ([_containers_phrase(containers)] if containers else [])


def _explicit_setters(spec: dict, bad: Callable[[dict], bool]) -> list[str]:
    """Setters whose own securityContext (pod-level or per container) is ``bad``."""
    return _setters(bad(_sc(spec)), [_name(c) for c in _containers(spec) if bad(_sc(c))])


def _collect(spec: dict, found: Callable[[dict], Iterable[str]]) -> tuple[list[str], list[str]]:
    """Containers (visit order) for which ``found`` yields values, and those values sorted."""
    names, values = [], set()
    for c in _containers(spec):
        if hits := set(found(c)):
            names.append(_name(c))
            values |= hits
    return names, sorted(values)


Check = Callable[[dict, dict], "Violation | None"]

# --- Baseline checks ---

_APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
_GOOD_PROFILE_TYPES = ("RuntimeDefault", "Localhost")


def _profiles(spec: dict, field: str) -> tuple[bool | None, list[str], list[str], set[str]]:
    """Scan a ``{type: ...}`` profile field (seccompProfile, appArmorProfile).

    Returns (pod verdict: None if unset, else whether its type is allowed;
    containers setting a bad type; containers leaving it unset; bad types).
    A set profile with no type counts as type "", as Go decodes it.
    """
    bad_values: set[str] = set()

    def verdict(profile: object) -> bool | None:
        if not isinstance(profile, dict):
            return None
        if _s(profile.get("type")) in _GOOD_PROFILE_TYPES:
            return True
        bad_values.add(_s(profile.get("type")))
        return False

    pod_ok = verdict(_sc(spec).get(field))
    explicit, implicit = [], []
    for c in _containers(spec):
        ok = verdict(_sc(c).get(field))
        if ok is False:
            explicit.append(_name(c))
        elif ok is None:
            implicit.append(_name(c))
    return pod_ok, explicit, implicit, bad_values


def _app_armor(meta: dict, spec: dict) -> Violation | None:
    # The beta annotations and the 1.30 fields are two spellings of one policy,
    # so a single 1.0 check covers both (Unconfined, or unknown types, are forbidden).
    pod_ok, bad_containers, _, bad_values = _profiles(spec, "appArmorProfile")
    setters = _setters(pod_ok is False, bad_containers)
    annotations = sorted(
        f"{k}={go_quote(_s(v))}" for k, v in _d(meta.get("annotations")).items()
        if isinstance(k, str) and k.startswith(_APPARMOR_ANNOTATION_PREFIX)
        and not (_s(v) in ("", "runtime/default") or _s(v).startswith("localhost/")))
    values = sorted(bad_values) + annotations
    if annotations:
        setters.append(pluralize("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    return Violation(
        "appArmorProfile",
        pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
        f"{' and '.join(setters)} must not set AppArmor profile type to {join_quote(values)}")


# Docker's default capability set: adding any of these changes nothing.
_DEFAULT_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})


def _capabilities_baseline(meta: dict, spec: dict) -> Violation | None:
    bad, caps = _collect(spec, lambda c: [x for x in map(_s, _l(_d(_sc(c).get("capabilities")).get("add")))
                                          if x not in _DEFAULT_CAPABILITIES])
    if not bad:
        return None
    return Violation("capabilities_baseline", "non-default capabilities",
                     f"{_containers_phrase(bad)} must not include {join_quote(caps)} "
                     "in securityContext.capabilities.add")


def _host_namespaces(meta: dict, spec: dict) -> Violation | None:
    found = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k) is True]
    return Violation("hostNamespaces", "host namespaces", ", ".join(found)) if found else None


def _host_path_volumes(meta: dict, spec: dict) -> Violation | None:
    names = [_s(v.get("name")) for v in _l(spec.get("volumes"))
             if isinstance(v, dict) and v.get("hostPath") is not None]
    if not names:
        return None
    return Violation("hostPathVolumes", "hostPath volumes",
                     f'{pluralize("volume", "volumes", len(names))} {join_quote(names)}')


def _host_ports(meta: dict, spec: dict) -> Violation | None:
    # Ports are sorted as strings, as Go's sets.String.List() does.
    bad, ports = _collect(spec, lambda c: [str(int(p["hostPort"])) for p in map(_d, _l(c.get("ports")))
                                           if _is_number(p.get("hostPort")) and p["hostPort"] != 0])
    if not bad:
        return None
    return Violation("hostPorts", "hostPort",
                     f'{_containers_phrase(bad)} {pluralize("uses", "use", len(bad))} '
                     f'{pluralize("hostPort", "hostPorts", len(ports))} {", ".join(ports)}')


def _host_probes_lifecycle(meta: dict, spec: dict) -> Violation | None:
    # A probe or hook with a host lets the kubelet (on the node network) reach
    # arbitrary addresses on the pod's behalf: a server-side request forgery.
    def hosts_of(c: dict) -> Iterator[str]:
        lifecycle = _d(c.get("lifecycle"))
        handlers = [c.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        for handler in handlers + [lifecycle.get("postStart"), lifecycle.get("preStop")]:
            for kind in ("httpGet", "tcpSocket"):
                if host := _s(_d(_d(handler).get(kind)).get("host")):
                    yield host

    bad, hosts = _collect(spec, hosts_of)
    if not bad:
        return None
    bad.sort()  # unlike most checks, this one sorts the container names too
    return Violation(
        "hostProbesAndHostLifecycle", "probe or lifecycle host",
        f'{_containers_phrase(bad)} {pluralize("uses", "use", len(bad))} '
        f'{pluralize("probe or lifecycle host", "probe or lifecycle hosts", len(hosts))} '
        f"{join_quote(hosts)}")


def _per_container(check_id: str, reason: str, bad: Callable[[dict], bool], rule: str) -> Check:
    """A check that lists the containers whose securityContext is ``bad``."""
    def check(meta: dict, spec: dict) -> Violation | None:
        names = [_name(c) for c in _containers(spec) if bad(_sc(c))]
        return Violation(check_id, reason, f"{_containers_phrase(names)} {rule}") if names else None
    return check


_privileged = _per_container("privileged", "privileged", lambda sc: sc.get("privileged") is True,
                             "must not set securityContext.privileged=true")


def _proc_mount_check(check_id: str, relax_user_ns: bool) -> Check:
    def check(meta: dict, spec: dict) -> Violation | None:
        # An unmasked /proc only exposes the host when the pod shares the host's
        # user namespace; with hostUsers: false baseline (≥1.35) lets it through.
        if relax_user_ns and _user_namespace(spec):
            return None
        bad, kinds = _collect(spec, lambda c: [_s(v) for v in [_sc(c).get("procMount")]
                                               if v is not None and v != "Default"])
        if not bad:
            return None
        return Violation(check_id, "procMount",
                         f"{_containers_phrase(bad)} must not set securityContext.procMount to "
                         f"{join_quote(kinds)}")
    return check


_SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SELINUX_TYPES_1_31 = _SELINUX_TYPES_1_0 | {"container_engine_t"}


def _selinux_check(allowed_types: frozenset) -> Check:
    def check(meta: dict, spec: dict) -> Violation | None:
        # Only the container_* types keep the confinement; a custom user or role
        # could escape it, so they must stay empty.
        bad_types: set[str] = set()
        flags = {"user": False, "role": False}

        def invalid(options: object) -> bool:
            if not isinstance(options, dict):
                return False
            bad = False
            if _s(options.get("type")) not in allowed_types:
                bad_types.add(_s(options.get("type")))
                bad = True
            for key in ("user", "role"):
                if _s(options.get(key)):
                    flags[key] = bad = True
            return bad

        pod_bad = invalid(_sc(spec).get("seLinuxOptions"))
        bad = [_name(c) for c in _containers(spec) if invalid(_sc(c).get("seLinuxOptions"))]
        setters = _setters(pod_bad, bad)
        if not setters:
            return None
        data = []
        if bad_types:
            data.append(f'{pluralize("type", "types", len(bad_types))} {join_quote(sorted(bad_types))}')
        data += [f"{key} may not be set" for key in ("user", "role") if flags[key]]
        return Violation("seLinuxOptions", "seLinuxOptions",
                         f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: "
                         + "; ".join(data))
    return check


_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"


def _seccomp_baseline_1_0(meta: dict, spec: dict) -> Violation | None:
    # Before 1.19 seccomp existed only as alpha annotations; baseline forbids
    # only an explicit "unconfined".
    annotations = _d(meta.get("annotations"))
    keys = [_SECCOMP_POD_ANNOTATION] + [_SECCOMP_CONTAINER_PREFIX + _name(c) for c in _containers(spec)]
    bad = sorted({f"{k}={go_quote(_s(annotations[k]))}" for k in keys
                  if k in annotations and annotations[k] == "unconfined"})
    if not bad:
        return None
    return Violation("seccompProfile_baseline", "seccompProfile",
                     f'forbidden {pluralize("annotation", "annotations", len(bad))} {", ".join(bad)}')


def _seccomp_fields(check_id: str, require: bool, meta: dict, spec: dict) -> Violation | None:
    """seccompProfile_baseline (≥1.19 fields) and, with ``require``, seccompProfile_restricted."""
    # A valid pod-level profile is inherited by containers that set none.
    pod_ok, explicit, implicit, bad_values = _profiles(spec, "seccompProfile")
    setters = _setters(pod_ok is False, explicit)
    if setters:
        return Violation(check_id, "seccompProfile",
                         f"{' and '.join(setters)} must not set securityContext.seccompProfile.type "
                         f"to {join_quote(sorted(bad_values))}")
    if require and implicit and not pod_ok:
        return Violation(check_id, "seccompProfile",
                         f"pod or {_containers_phrase(implicit)} must set securityContext.seccompProfile"
                         '.type to "RuntimeDefault" or "Localhost"')
    return None


# Sysctls that are namespaced and isolated per pod, by the version that allowed
# them; the list grows as the kernel namespaces more of them.
_SYSCTLS_ADDED = {
    (1, 0): ("kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
             "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"),
    (1, 27): ("net.ipv4.ip_local_reserved_ports",),
    (1, 29): ("net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
              "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"),
    (1, 32): ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"),
    (1, 37): ("net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"),
}


def _sysctls_check(since: Version) -> Check:
    allowed = frozenset(n for v, names in _SYSCTLS_ADDED.items() if v <= since for n in names)

    def check(meta: dict, spec: dict) -> Violation | None:
        bad = [_s(s.get("name")) for s in _l(_sc(spec).get("sysctls"))
               if isinstance(s, dict) and _s(s.get("name")) not in allowed]
        return Violation("sysctls", "forbidden sysctls", ", ".join(bad)) if bad else None
    return check


def _windows_host_process(meta: dict, spec: dict) -> Violation | None:
    setters = _explicit_setters(spec, lambda sc: _d(sc.get("windowsOptions")).get("hostProcess") is True)
    if not setters:
        return None
    return Violation("windowsHostProcess", "hostProcess",
                     f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true")


# --- Restricted checks ---

def _unless(exempt: Callable[[dict], bool], check: Check) -> Check:
    """``check``, except that pods whose spec is ``exempt`` pass."""
    def wrapped(meta: dict, spec: dict) -> Violation | None:
        return None if exempt(spec) else check(meta, spec)
    return wrapped


def _windows(spec: dict) -> bool:
    # ≥1.25: these fields are Linux-only and API validation forbids setting them
    # when spec.os.name=windows, so requiring them would reject every Windows pod.
    return _d(spec.get("os")).get("name") == "windows"


def _user_namespace(spec: dict) -> bool:
    # ≥1.35: with hostUsers: false, UID 0 in the pod maps to an unprivileged
    # host UID, so root in the pod is not root on the node.
    return spec.get("hostUsers") is False


# The runtime default (no_new_privs unset) allows setuid escalation, so only an
# explicit false is safe.
_allow_privilege_escalation = _per_container(
    "allowPrivilegeEscalation", "allowPrivilegeEscalation != false",
    lambda sc: sc.get("allowPrivilegeEscalation") is not False,
    "must set securityContext.allowPrivilegeEscalation=false")


def _capabilities_restricted(meta: dict, spec: dict) -> Violation | None:
    missing_drop, adding, caps = [], [], set()
    for c in _containers(spec):
        capabilities = _sc(c).get("capabilities")
        if not isinstance(capabilities, dict):
            missing_drop.append(_name(c))
            continue
        if "ALL" not in [_s(x) for x in _l(capabilities.get("drop"))]:
            missing_drop.append(_name(c))
        extra = [_s(x) for x in _l(capabilities.get("add")) if _s(x) != "NET_BIND_SERVICE"]
        if extra:
            adding.append(_name(c))
            caps.update(extra)
    details = []
    if missing_drop:
        details.append(f'{_containers_phrase(missing_drop)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_containers_phrase(adding)} must not include {join_quote(sorted(caps))} "
                       "in securityContext.capabilities.add")
    return Violation("capabilities_restricted", "unrestricted capabilities", "; ".join(details)) if details else None


_ALLOWED_VOLUME_SOURCES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
                           "persistentVolumeClaim", "projected", "secret")
# Reported in this precedence when a volume has several sources (Go switch order).
_KNOWN_VOLUME_SOURCES = (
    "hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs",
    "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte",
    "azureDisk", "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos")


def _restricted_volumes(meta: dict, spec: dict) -> Violation | None:
    # Only volume types that cannot reach node or network storage outside the
    # cluster's own control are allowed.
    bad, kinds = [], set()
    for v in _l(spec.get("volumes")):
        if not isinstance(v, dict) or any(v.get(k) is not None for k in _ALLOWED_VOLUME_SOURCES):
            continue
        if not any(val is not None for k, val in v.items() if k != "name"):
            # A volume naming no source is defaulted to emptyDir by the apiserver
            # (SetDefaults_Volume), which restricted allows.
            continue
        bad.append(_s(v.get("name")))
        kinds.add(next((k for k in _KNOWN_VOLUME_SOURCES if v.get(k) is not None), "unknown"))
    if not bad:
        return None
    return Violation(
        "restrictedVolumes", "restricted volume types",
        f'{pluralize("volume", "volumes", len(bad))} {join_quote(bad)} {pluralize("uses", "use", len(bad))} '
        f'{pluralize("restricted volume type", "restricted volume types", len(kinds))} {join_quote(sorted(kinds))}')


def _run_as_non_root(meta: dict, spec: dict) -> Violation | None:
    # The pod-level value is inherited by containers that leave it unset, so
    # either the pod or every container must say true, and nobody may say false.
    pod_value = _sc(spec).get("runAsNonRoot")
    explicit, implicit = [], []
    for c in _containers(spec):
        value = _sc(c).get("runAsNonRoot")
        if value is not None:
            if value is not True:
                explicit.append(_name(c))
        elif pod_value is not True:
            implicit.append(_name(c))
    setters = _setters(pod_value is not None and pod_value is not True, explicit)
    if setters:
        return Violation("runAsNonRoot", "runAsNonRoot != true",
                         f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicit:
        return Violation("runAsNonRoot", "runAsNonRoot != true",
                         f"pod or {_containers_phrase(implicit)} must set securityContext.runAsNonRoot=true")
    return None


def _run_as_user(meta: dict, spec: dict) -> Violation | None:
    setters = _explicit_setters(spec, lambda sc: _is_number(sc.get("runAsUser")) and sc["runAsUser"] == 0)
    if not setters:
        return None
    return Violation("runAsUser", "runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")


_seccomp_restricted = partial(_seccomp_fields, "seccompProfile_restricted", True)

# --- Registry (policy/registry.go) ---

@dataclass(frozen=True)
class _Versioned:
    since: Version
    check: Check
    overrides: tuple[str, ...] = ()


_BASELINE: dict[str, tuple[_Versioned, ...]] = {
    "appArmorProfile": (_Versioned((1, 0), _app_armor),),
    "capabilities_baseline": (_Versioned((1, 0), _capabilities_baseline),),
    "hostNamespaces": (_Versioned((1, 0), _host_namespaces),),
    "hostPathVolumes": (_Versioned((1, 0), _host_path_volumes),),
    "hostPorts": (_Versioned((1, 0), _host_ports),),
    "hostProbesAndHostLifecycle": (_Versioned((1, 34), _host_probes_lifecycle),),
    "privileged": (_Versioned((1, 0), _privileged),),
    "procMount": (_Versioned((1, 0), _proc_mount_check("procMount", False)),
                  _Versioned((1, 35), _proc_mount_check("procMount", True))),
    "seLinuxOptions": (_Versioned((1, 0), _selinux_check(_SELINUX_TYPES_1_0)),
                       _Versioned((1, 31), _selinux_check(_SELINUX_TYPES_1_31))),
    "seccompProfile_baseline": (_Versioned((1, 0), _seccomp_baseline_1_0),
                                _Versioned((1, 19), partial(_seccomp_fields, "seccompProfile_baseline", False))),
    "sysctls": tuple(_Versioned(v, _sysctls_check(v)) for v in _SYSCTLS_ADDED),
    "windowsHostProcess": (_Versioned((1, 0), _windows_host_process),),
}

_RESTRICTED: dict[str, tuple[_Versioned, ...]] = {
    "allowPrivilegeEscalation": (_Versioned((1, 8), _allow_privilege_escalation),
                                 _Versioned((1, 25), _unless(_windows, _allow_privilege_escalation))),
    "capabilities_restricted": (
        _Versioned((1, 22), _capabilities_restricted, ("capabilities_baseline",)),
        _Versioned((1, 25), _unless(_windows, _capabilities_restricted), ("capabilities_baseline",))),
    "procMount_restricted": (_Versioned((1, 35), _proc_mount_check("procMount_restricted", False),
                                       ("procMount",)),),
    "restrictedVolumes": (_Versioned((1, 0), _restricted_volumes, ("hostPathVolumes",)),),
    "runAsNonRoot": (_Versioned((1, 0), _run_as_non_root),
                     _Versioned((1, 35), _unless(_user_namespace, _run_as_non_root))),
    "runAsUser": (_Versioned((1, 23), _run_as_user),
                  _Versioned((1, 35), _unless(_user_namespace, _run_as_user))),
    "seccompProfile_restricted": (
        _Versioned((1, 19), _seccomp_restricted, ("seccompProfile_baseline",)),
        _Versioned((1, 25), _unless(_windows, _seccomp_restricted), ("seccompProfile_baseline",))),
}


def _at(versions: tuple[_Versioned, ...], version: Version) -> _Versioned | None:
    """The newest variant of a check whose minimum version is <= version."""
    applicable = [v for v in versions if v.since <= version]
    return applicable[-1] if applicable else None


@lru_cache(maxsize=None)
def _checks_for(level: str, version: Version) -> tuple[Check, ...]:
    # Baseline ids sorted bytewise, then restricted ids sorted bytewise; an
    # overriding restricted check takes its own (restricted) slot.
    baseline = {cid: _at(vs, version) for cid, vs in sorted(_BASELINE.items())}
    if level == "baseline":
        return tuple(v.check for v in baseline.values() if v is not None)
    restricted = {cid: _at(vs, version) for cid, vs in sorted(_RESTRICTED.items())}
    overridden = {o for v in restricted.values() if v is not None for o in v.overrides}
    chosen = [v for cid, v in baseline.items() if cid not in overridden] + list(restricted.values())
    return tuple(v.check for v in chosen if v is not None)


def evaluate(pod: dict, level: str, version: str = "latest") -> list[Violation]:
    """Run the checks of ``level`` at policy ``version`` against a pod dict.

    Returns the violations in message order (empty when the pod is allowed).
    ``privileged`` allows everything; an invalid level evaluates as
    ``restricted`` and an invalid or too-new version as ``latest``.
    """
    level = parse_level(level)
    if level == "privileged":
        return []
    pod = _d(pod)
    meta, spec = _d(pod.get("metadata")), _d(pod.get("spec"))
    results = (check(meta, spec) for check in
               _checks_for(level, _parse_version_tuple(parse_version(version)) or LATEST_VERSION))
    return [r for r in results if r is not None]


def baseline_violations(pod: dict, version: str = "latest") -> list[Violation]:
    """Violations of the ``baseline`` level (see :func:`evaluate`)."""
    return evaluate(pod, "baseline", version)


def restricted_violations(pod: dict, version: str = "latest") -> list[Violation]:
    """Violations of the ``restricted`` level, including non-overridden baseline checks."""
    return evaluate(pod, "restricted", version)


def violation_summary(violations: Iterable[Violation], level: str = "restricted",
                      version: str = "latest") -> str:
    """``violates PodSecurity "<level>:<version>": r1 (d1), r2 (d2)`` (admission.go)."""
    policy = f"{parse_level(level)}:{parse_version(version)}"
    return f"violates PodSecurity {go_quote(policy)}: " + ", ".join(str(v) for v in violations)


def forbidden_message(pod_name: str, violations: Iterable[Violation], level: str = "restricted",
                      version: str = "latest") -> str:
    """The 403 Status message, as ``apierrors.NewForbidden(pods, name, err)`` builds it."""
    summary = violation_summary(violations, level, version)
    if not pod_name:
        return f"pods is forbidden: {summary}"
    return f"pods {go_quote(pod_name)} is forbidden: {summary}"
