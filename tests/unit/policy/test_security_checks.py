"""Unit tests for jhplatform.policy.security (Pod Security Standards as pod-security-admission runs them).

Aspects covered:
- every check id, passing and failing, with the exact reason and detail text;
- init, regular and ephemeral containers are all visited, in that order;
- violation order (baseline ids, then restricted ids, bytewise) and overrides;
- the exact 403 message for KubeSpawner 7.1's default pod;
- a fully compliant pod passes at every policy version; privileged allows all;
  the baseline level never reports restricted-only checks;
- version gates, ``hostUsers: false`` relaxations and ``spec.os.name: windows`` skips;
- parse_level, parse_version and namespace_policy label semantics;
- message helpers (pluralize, join_quote, Violation.__str__, summary, 403 text);
- robustness: ``{}``, None values and odd shapes never raise.
"""

import pytest

from jhplatform.policy.security.pss import (
    LATEST_VERSION, LEVELS, Violation, baseline_violations, evaluate, forbidden_message,
    join_quote, namespace_policy, parse_level, parse_version, pluralize, restricted_violations,
    violation_summary)

UNSET = object()
OK_SC = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
         "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def ctr(name="notebook", **sc):
    """A container that is compliant with restricted, except for the overrides in ``sc``."""
    merged = {k: v for k, v in {**OK_SC, **sc}.items() if v is not UNSET}
    return {"name": name, "image": "quay.io/jupyter/base-notebook", "securityContext": merged}


def bare(name="notebook", **fields):
    """A container with only the given fields (baseline-level tests)."""
    return {"name": name, "image": "busybox", **fields}


def pod(*containers, sc=None, init=(), ephemeral=(), annotations=None, **spec):
    meta = {"name": "p", "namespace": "ns"}
    if annotations is not None:
        meta["annotations"] = annotations
    body = {"containers": list(containers) or [ctr()], "securityContext": sc or {}, **spec}
    if init:
        body["initContainers"] = list(init)
    if ephemeral:
        body["ephemeralContainers"] = list(ephemeral)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body}


def V(check, reason, detail=""):
    return Violation(check, reason, detail)


AA = "container.apparmor.security.beta.kubernetes.io/"
SECCOMP_POD = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CTR = "container.seccomp.security.alpha.kubernetes.io/"
NOT_ROOT = "runAsNonRoot != true"

# (id, pod, level, version, expected violations): one table row per failing scenario.
FAILING = [
    # --- appArmorProfile ---
    ("apparmor-pod-field", pod(bare(), sc={"appArmorProfile": {"type": "Unconfined"}}), "baseline", "latest",
     [V("appArmorProfile", "forbidden AppArmor profile", 'pod must not set AppArmor profile type to "Unconfined"')]),
    ("apparmor-containers", pod(bare("a", securityContext={"appArmorProfile": {"type": "Unconfined"}}),
                                bare("b", securityContext={"appArmorProfile": {"type": "Bogus"}})),
     "baseline", "latest",
     [V("appArmorProfile", "forbidden AppArmor profiles",
        'containers "a", "b" must not set AppArmor profile type to "Bogus", "Unconfined"')]),
    ("apparmor-annotation", pod(bare(), annotations={AA + "notebook": "unconfined"}), "baseline", "latest",
     [V("appArmorProfile", "forbidden AppArmor profile",
        'annotation must not set AppArmor profile type to '
        '"container.apparmor.security.beta.kubernetes.io/notebook=\\"unconfined\\""')]),
    ("apparmor-all-setters",
     pod(bare("a", securityContext={"appArmorProfile": {"type": "Unconfined"}}),
         sc={"appArmorProfile": {"type": "Unconfined"}},
         annotations={AA + "b": "x", AA + "a": "unconfined", "other": "unconfined"}),
     "baseline", "v1.21",
     [V("appArmorProfile", "forbidden AppArmor profiles",
        'pod and container "a" and annotations must not set AppArmor profile type to "Unconfined", '
        '"container.apparmor.security.beta.kubernetes.io/a=\\"unconfined\\"", '
        '"container.apparmor.security.beta.kubernetes.io/b=\\"x\\""')]),
    # --- capabilities_baseline (and restricted before 1.22) ---
    ("capabilities-baseline", pod(bare("a", securityContext={"capabilities": {"add": ["SYS_ADMIN", "NET_RAW", "CHOWN"]}}),
                                  bare("b", securityContext={"capabilities": {"add": ["SYS_ADMIN"]}})),
     "baseline", "latest",
     [V("capabilities_baseline", "non-default capabilities",
        'containers "a", "b" must not include "NET_RAW", "SYS_ADMIN" in securityContext.capabilities.add')]),
    ("capabilities-baseline-in-restricted-v1.21", pod(ctr(capabilities={"add": ["NET_ADMIN"]})), "restricted", "v1.21",
     [V("capabilities_baseline", "non-default capabilities",
        'container "notebook" must not include "NET_ADMIN" in securityContext.capabilities.add')]),
    # --- hostNamespaces ---
    ("host-namespaces", pod(bare(), hostNetwork=True, hostPID=False, hostIPC=True), "baseline", "latest",
     [V("hostNamespaces", "host namespaces", "hostNetwork=true, hostIPC=true")]),
    ("host-pid", pod(hostPID=True), "restricted", "latest", [V("hostNamespaces", "host namespaces", "hostPID=true")]),
    # --- hostPathVolumes (baseline only: restrictedVolumes overrides it) ---
    ("host-path-volumes", pod(bare(), volumes=[{"name": "a", "hostPath": {"path": "/"}}, {"name": "b", "emptyDir": {}},
                                               {"name": "c", "hostPath": {"path": "/etc"}}]),
     "baseline", "latest", [V("hostPathVolumes", "hostPath volumes", 'volumes "a", "c"')]),
    ("host-path-volume", pod(bare(), volumes=[{"name": "data", "hostPath": {"path": "/srv"}}]), "baseline", "v1.0",
     [V("hostPathVolumes", "hostPath volumes", 'volume "data"')]),
    # --- hostPorts ---
    ("host-ports", pod(bare("a", ports=[{"containerPort": 80, "hostPort": 8080}, {"containerPort": 90, "hostPort": 9090}]),
                       bare("b", ports=[{"containerPort": 1, "hostPort": 10000}, {"containerPort": 2}])),
     "baseline", "latest", [V("hostPorts", "hostPort", 'containers "a", "b" use hostPorts 10000, 8080, 9090')]),
    ("host-port", pod(ctr(), init=[bare("i", ports=[{"hostPort": 8888}])]), "baseline", "latest",
     [V("hostPorts", "hostPort", 'container "i" uses hostPort 8888')]),
    # --- hostProbesAndHostLifecycle (1.34) ---
    ("probe-hosts", pod(bare("b", livenessProbe={"httpGet": {"host": "evil.example", "port": 80}},
                             readinessProbe={"tcpSocket": {"host": "", "port": 1}}),
                        bare("a", lifecycle={"preStop": {"tcpSocket": {"host": "10.0.0.1", "port": 9}}})),
     "baseline", "latest",
     [V("hostProbesAndHostLifecycle", "probe or lifecycle host",
        'containers "a", "b" use probe or lifecycle hosts "10.0.0.1", "evil.example"')]),
    ("probe-host", pod(bare(startupProbe={"httpGet": {"host": "h", "port": 1}},
                            lifecycle={"postStart": {"httpGet": {"host": "h"}}})), "baseline", "v1.34",
     [V("hostProbesAndHostLifecycle", "probe or lifecycle host", 'container "notebook" uses probe or lifecycle host "h"')]),
    # --- privileged ---
    ("privileged", pod(bare("a", securityContext={"privileged": True}), bare("b", securityContext={"privileged": False})),
     "baseline", "latest",
     [V("privileged", "privileged", 'container "a" must not set securityContext.privileged=true')]),
    # --- procMount / procMount_restricted ---
    ("proc-mount", pod(bare(securityContext={"procMount": "Unmasked"})), "baseline", "latest",
     [V("procMount", "procMount", 'container "notebook" must not set securityContext.procMount to "Unmasked"')]),
    ("proc-mount-user-ns-before-1.35", pod(bare(securityContext={"procMount": "Unmasked"}), hostUsers=False),
     "baseline", "v1.34",
     [V("procMount", "procMount", 'container "notebook" must not set securityContext.procMount to "Unmasked"')]),
    ("proc-mount-restricted", pod(ctr("a", procMount="Unmasked"), ctr("b", procMount="Weird"), hostUsers=False),
     "restricted", "latest",
     [V("procMount_restricted", "procMount",
        'containers "a", "b" must not set securityContext.procMount to "Unmasked", "Weird"')]),
    ("proc-mount-in-restricted-v1.34", pod(ctr(procMount="Unmasked")), "restricted", "v1.34",
     [V("procMount", "procMount", 'container "notebook" must not set securityContext.procMount to "Unmasked"')]),
    # --- seLinuxOptions ---
    ("selinux-all", pod(bare("a", securityContext={"seLinuxOptions": {"user": "u", "role": "r"}}),
                        bare("b", securityContext={"seLinuxOptions": {"type": "unconfined_t", "level": "s0"}}),
                        sc={"seLinuxOptions": {"type": "spc_t"}}),
     "baseline", "latest",
     [V("seLinuxOptions", "seLinuxOptions", 'pod and containers "a", "b" set forbidden securityContext.seLinuxOptions: '
        'types "spc_t", "unconfined_t"; user may not be set; role may not be set')]),
    ("selinux-engine-type-before-1.31", pod(bare(securityContext={"seLinuxOptions": {"type": "container_engine_t"}})),
     "baseline", "v1.30",
     [V("seLinuxOptions", "seLinuxOptions",
        'container "notebook" set forbidden securityContext.seLinuxOptions: type "container_engine_t"')]),
    ("selinux-role", pod(sc={"seLinuxOptions": {"type": "container_t", "role": "sysadm_r"}}), "restricted", "latest",
     [V("seLinuxOptions", "seLinuxOptions", "pod set forbidden securityContext.seLinuxOptions: role may not be set")]),
    # --- seccompProfile_baseline ---
    ("seccomp-baseline-fields", pod(bare("a", securityContext={"seccompProfile": {"type": "Unconfined"}}),
                                    sc={"seccompProfile": {"type": "Unconfined"}}),
     "baseline", "latest",
     [V("seccompProfile_baseline", "seccompProfile",
        'pod and container "a" must not set securityContext.seccompProfile.type to "Unconfined"')]),
    ("seccomp-baseline-annotations-v1.18",
     pod(ctr("a"), annotations={SECCOMP_POD: "unconfined", SECCOMP_CTR + "a": "unconfined", SECCOMP_CTR + "zz": "unconfined"}),
     "restricted", "v1.18",
     [V("seccompProfile_baseline", "seccompProfile",
        'forbidden annotations container.seccomp.security.alpha.kubernetes.io/a="unconfined", '
        'seccomp.security.alpha.kubernetes.io/pod="unconfined"')]),
    ("seccomp-baseline-annotation", pod(bare(), annotations={SECCOMP_POD: "unconfined"}), "baseline", "v1.10",
     [V("seccompProfile_baseline", "seccompProfile",
        'forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined"')]),
    # --- sysctls ---
    ("sysctls", pod(bare(), sc={"sysctls": [{"name": "net.core.somaxconn", "value": "1"},
                                            {"name": "kernel.shm_rmid_forced", "value": "1"},
                                            {"name": "kernel.msgmax", "value": "1"}]}),
     "baseline", "latest", [V("sysctls", "forbidden sysctls", "net.core.somaxconn, kernel.msgmax")]),
    # --- windowsHostProcess ---
    ("host-process", pod(bare("a", securityContext={"windowsOptions": {"hostProcess": True}}),
                         sc={"windowsOptions": {"hostProcess": True}}),
     "baseline", "latest",
     [V("windowsHostProcess", "hostProcess",
        'pod and container "a" must not set securityContext.windowsOptions.hostProcess=true')]),
    ("host-process-container", pod(ctr(windowsOptions={"hostProcess": True})), "restricted", "latest",
     [V("windowsHostProcess", "hostProcess",
        'container "notebook" must not set securityContext.windowsOptions.hostProcess=true')]),
    # --- allowPrivilegeEscalation ---
    ("allow-privilege-escalation", pod(ctr("a", allowPrivilegeEscalation=UNSET), ctr("b", allowPrivilegeEscalation=True),
                                       ctr("c")),
     "restricted", "latest",
     [V("allowPrivilegeEscalation", "allowPrivilegeEscalation != false",
        'containers "a", "b" must set securityContext.allowPrivilegeEscalation=false')]),
    ("allow-privilege-escalation-windows-before-1.25",
     pod(ctr(allowPrivilegeEscalation=UNSET), os={"name": "windows"}), "restricted", "v1.24",
     [V("allowPrivilegeEscalation", "allowPrivilegeEscalation != false",
        'container "notebook" must set securityContext.allowPrivilegeEscalation=false')]),
    # --- capabilities_restricted ---
    ("capabilities-restricted-both", pod(ctr("a", capabilities={"add": ["SYS_ADMIN", "NET_BIND_SERVICE"]}),
                                         ctr("b", capabilities={"drop": ["ALL"], "add": ["CHOWN"]})),
     "restricted", "latest",
     [V("capabilities_restricted", "unrestricted capabilities",
        'container "a" must set securityContext.capabilities.drop=["ALL"]; '
        'containers "a", "b" must not include "CHOWN", "SYS_ADMIN" in securityContext.capabilities.add')]),
    ("capabilities-restricted-no-context", pod(ctr("a"), bare("b")), "restricted", "v1.22",
     [V("allowPrivilegeEscalation", "allowPrivilegeEscalation != false",
        'container "b" must set securityContext.allowPrivilegeEscalation=false'),
      V("capabilities_restricted", "unrestricted capabilities",
        'container "b" must set securityContext.capabilities.drop=["ALL"]'),
      V("runAsNonRoot", NOT_ROOT, 'pod or container "b" must set securityContext.runAsNonRoot=true'),
      V("seccompProfile_restricted", "seccompProfile",
        'pod or container "b" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"')]),
    # --- restrictedVolumes ---
    ("restricted-volumes", pod(volumes=[{"name": "a", "hostPath": {"path": "/"}}, {"name": "b", "nfs": {"server": "s"}},
                                        {"name": "c", "emptyDir": {}}, {"name": "d"}, {"name": "e", "nfs": {}}]),
     "restricted", "latest",
     [V("restrictedVolumes", "restricted volume types",
        'volumes "a", "b", "e" use restricted volume types "hostPath", "nfs"')]),
    ("volume-of-an-unknown-type", pod(volumes=[{"name": "x", "someFutureSource": {}}]), "restricted", "latest",
     [V("restrictedVolumes", "restricted volume types", 'volume "x" uses restricted volume type "unknown"')]),
    ("restricted-volume", pod(volumes=[{"name": "a", "hostPath": {"path": "/"}}]), "restricted", "v1.0",
     [V("restrictedVolumes", "restricted volume types", 'volume "a" uses restricted volume type "hostPath"')]),
    # --- runAsNonRoot ---
    ("run-as-non-root-explicit", pod(ctr("a", runAsNonRoot=UNSET), ctr("b", runAsNonRoot=False),
                                     sc={"runAsNonRoot": False}),
     "restricted", "latest",
     [V("runAsNonRoot", NOT_ROOT, 'pod and container "b" must not set securityContext.runAsNonRoot=false')]),
    ("run-as-non-root-implicit", pod(ctr("a", runAsNonRoot=UNSET), ctr("b"), ctr("c", runAsNonRoot=UNSET)),
     "restricted", "latest",
     [V("runAsNonRoot", NOT_ROOT, 'pod or containers "a", "c" must set securityContext.runAsNonRoot=true')]),
    ("run-as-non-root-user-ns-before-1.35", pod(ctr(runAsNonRoot=UNSET), hostUsers=False), "restricted", "v1.34",
     [V("runAsNonRoot", NOT_ROOT, 'pod or container "notebook" must set securityContext.runAsNonRoot=true')]),
    # --- runAsUser (1.23) ---
    ("run-as-user", pod(ctr("a", runAsUser=0), ctr("b", runAsUser=1000), sc={"runAsUser": 0}), "restricted", "latest",
     [V("runAsUser", "runAsUser=0", 'pod and container "a" must not set runAsUser=0')]),
    ("run-as-user-containers", pod(ctr("a", runAsUser=0), ctr("b", runAsUser=0), sc={"runAsUser": 1000}),
     "restricted", "v1.23", [V("runAsUser", "runAsUser=0", 'containers "a", "b" must not set runAsUser=0')]),
    # --- seccompProfile_restricted (1.19) ---
    ("seccomp-restricted-explicit", pod(ctr("a", seccompProfile={"type": "Unconfined"}), ctr("b", seccompProfile=UNSET),
                                        sc={"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}),
     "restricted", "latest",
     [V("seccompProfile_restricted", "seccompProfile",
        'container "a" must not set securityContext.seccompProfile.type to "Unconfined"')]),
    ("seccomp-restricted-pod-unconfined", pod(ctr(seccompProfile=UNSET), sc={"seccompProfile": {"type": "Unconfined"}}),
     "restricted", "v1.19",
     [V("seccompProfile_restricted", "seccompProfile",
        'pod must not set securityContext.seccompProfile.type to "Unconfined"')]),
    ("seccomp-restricted-implicit", pod(ctr("a", seccompProfile=UNSET), ctr("b", seccompProfile=UNSET)),
     "restricted", "latest",
     [V("seccompProfile_restricted", "seccompProfile",
        'pod or containers "a", "b" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"')]),
]


@pytest.mark.parametrize("pod_, level, version, expected", [c[1:] for c in FAILING], ids=[c[0] for c in FAILING])
def test_failing_checks(pod_, level, version, expected):
    assert evaluate(pod_, level, version) == expected


def test_every_check_id_has_a_failing_case():
    seen = {v.check for case in FAILING for v in case[4]}
    assert seen == {
        "appArmorProfile", "capabilities_baseline", "hostNamespaces", "hostPathVolumes", "hostPorts",
        "hostProbesAndHostLifecycle", "privileged", "procMount", "seLinuxOptions", "seccompProfile_baseline",
        "sysctls", "windowsHostProcess", "allowPrivilegeEscalation", "capabilities_restricted",
        "procMount_restricted", "restrictedVolumes", "runAsNonRoot", "runAsUser", "seccompProfile_restricted"}


ALL_VOLUMES = [{"name": k, k: {}} for k in ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
                                             "persistentVolumeClaim", "projected", "secret")]

# (id, pod, level, version): each pod sets the fields of one check to allowed values.
PASSING = [
    # The apiserver defaults a volume that names no source to emptyDir (SetDefaults_Volume).
    ("volume-without-source-is-empty-dir", pod(volumes=[{"name": "d"}, {"name": "n", "emptyDir": None}]),
     "restricted", "latest"),
    ("apparmor-allowed", pod(ctr("a", appArmorProfile={"type": "Localhost", "localhostProfile": "p"}),
                             sc={"appArmorProfile": {"type": "RuntimeDefault"}},
                             annotations={AA + "a": "runtime/default", AA + "b": "localhost/p", AA + "c": ""}),
     "restricted", "latest"),
    ("capabilities-default-set", pod(bare(securityContext={"capabilities": {"add": ["CHOWN", "NET_BIND_SERVICE", "KILL"]}})),
     "baseline", "latest"),
    ("host-namespaces-false", pod(hostNetwork=False, hostPID=False, hostIPC=False), "restricted", "latest"),
    ("no-host-path", pod(bare(), volumes=ALL_VOLUMES), "baseline", "latest"),
    ("host-port-zero", pod(ctr() | {"ports": [{"containerPort": 8888, "hostPort": 0}, {"containerPort": 1}]}),
     "restricted", "latest"),
    ("probe-without-host", pod(ctr() | {"livenessProbe": {"httpGet": {"path": "/", "port": 80}},
                                        "lifecycle": {"preStop": {"exec": {"command": ["x"]}}}}), "restricted", "latest"),
    ("probe-host-before-1.34", pod(bare(livenessProbe={"httpGet": {"host": "h"}})), "baseline", "v1.33"),
    ("privileged-false", pod(ctr(privileged=False)), "restricted", "latest"),
    ("proc-mount-default", pod(ctr(procMount="Default")), "restricted", "latest"),
    ("proc-mount-user-ns-baseline", pod(bare(securityContext={"procMount": "Unmasked"}), hostUsers=False),
     "baseline", "latest"),
    ("selinux-allowed", pod(ctr("a", seLinuxOptions={"type": "container_init_t", "level": "s0:c1"}),
                            ctr("b", seLinuxOptions={"type": "container_engine_t"}),
                            sc={"seLinuxOptions": {"type": "container_t"}}), "restricted", "latest"),
    ("seccomp-baseline-unset", pod(bare()), "baseline", "latest"),
    ("seccomp-annotation-ignored-from-1.19", pod(annotations={SECCOMP_POD: "unconfined"}), "restricted", "v1.19"),
    ("seccomp-annotations-allowed", pod(annotations={SECCOMP_POD: "localhost/p.json", SECCOMP_CTR + "notebook":
                                                     "docker/default", SECCOMP_CTR + "other": "runtime/default"}),
     "restricted", "v1.18"),
    ("sysctls-allowed-1.37", pod(sc={"sysctls": [{"name": "net.ipv4.tcp_notsent_lowat", "value": "1"},
                                                 {"name": "net.ipv4.tcp_rmem", "value": "1"},
                                                 {"name": "kernel.shm_rmid_forced", "value": "1"}]}),
     "restricted", "latest"),
    ("host-process-false", pod(ctr(windowsOptions={"hostProcess": False}),
                               sc={"windowsOptions": {"runAsUserName": "x"}}), "restricted", "latest"),
    ("allow-privilege-escalation-before-1.8", pod(ctr(allowPrivilegeEscalation=UNSET)), "restricted", "v1.7"),
    ("windows-skips", pod(ctr(allowPrivilegeEscalation=UNSET, capabilities=UNSET, seccompProfile=UNSET),
                          os={"name": "windows"}), "restricted", "v1.25"),
    ("capabilities-net-bind", pod(ctr(capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]})), "restricted", "latest"),
    ("allowed-volumes", pod(volumes=ALL_VOLUMES), "restricted", "latest"),
    ("run-as-non-root-pod-level", pod(ctr("a", runAsNonRoot=UNSET), ctr("b", runAsNonRoot=True),
                                      sc={"runAsNonRoot": True}), "restricted", "latest"),
    ("user-ns-relaxations", pod(ctr(runAsNonRoot=False, runAsUser=0), sc={"runAsUser": 0}, hostUsers=False),
     "restricted", "v1.35"),
    ("run-as-user-before-1.23", pod(ctr(runAsUser=0)), "restricted", "v1.22"),
    ("run-as-user-nonzero", pod(ctr(runAsUser=1000), sc={"runAsUser": 1000, "runAsGroup": 0}), "restricted", "latest"),
    ("seccomp-pod-level", pod(ctr("a", seccompProfile=UNSET), ctr("b", seccompProfile={"type": "Localhost"}),
                              sc={"seccompProfile": {"type": "RuntimeDefault"}}), "restricted", "latest"),
    ("seccomp-restricted-before-1.19", pod(ctr(seccompProfile=UNSET)), "restricted", "v1.18"),
]


@pytest.mark.parametrize("pod_, level, version", [c[1:] for c in PASSING], ids=[c[0] for c in PASSING])
def test_passing_checks(pod_, level, version):
    assert evaluate(pod_, level, version) == []


@pytest.mark.parametrize("version, name, allowed", [
    ("v1.26", "net.ipv4.ip_local_reserved_ports", False), ("v1.27", "net.ipv4.ip_local_reserved_ports", True),
    ("v1.28", "net.ipv4.tcp_keepalive_time", False), ("v1.29", "net.ipv4.tcp_keepalive_probes", True),
    ("v1.31", "net.ipv4.tcp_wmem", False), ("v1.32", "net.ipv4.tcp_wmem", True),
    ("v1.36", "net.ipv4.tcp_slow_start_after_idle", False), ("latest", "net.ipv4.tcp_slow_start_after_idle", True),
    ("v1.0", "net.ipv4.ip_unprivileged_port_start", True), ("latest", "net.ipv4.ip_forward", False),
], ids=lambda v: str(v))
def test_sysctl_allow_list_by_version(version, name, allowed):
    result = baseline_violations(pod(bare(), sc={"sysctls": [{"name": name, "value": "1"}]}), version)
    assert result == ([] if allowed else [V("sysctls", "forbidden sysctls", name)])


KUBESPAWNER_DEFAULT_POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "jupyter-start", "labels": {"component": "singleuser-server"}, "annotations": {}},
    "spec": {"automountServiceAccountToken": False, "restartPolicy": "OnFailure", "securityContext": {},
             "containers": [{"name": "notebook", "image": "quay.io/jupyterhub/singleuser:latest",
                             "ports": [{"containerPort": 8888, "name": "notebook-port"}],
                             "securityContext": {"allowPrivilegeEscalation": False},
                             "resources": {}, "volumeMounts": [], "env": [{"name": "JUPYTERHUB_API_TOKEN"}]}],
             "volumes": []}}


def test_kubespawner_default_pod_403_message():
    violations = restricted_violations(KUBESPAWNER_DEFAULT_POD)
    assert [v.check for v in violations] == ["capabilities_restricted", "runAsNonRoot", "seccompProfile_restricted"]
    assert forbidden_message("jupyter-start", violations) == (
        'pods "jupyter-start" is forbidden: violates PodSecurity "restricted:latest": unrestricted capabilities '
        '(container "notebook" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or '
        'container "notebook" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container '
        '"notebook" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')


def test_kubespawner_default_pod_passes_baseline():
    assert baseline_violations(KUBESPAWNER_DEFAULT_POD) == []


def compliant_pod():
    return pod(ctr("notebook", seLinuxOptions={"type": "container_t"}, appArmorProfile={"type": "RuntimeDefault"},
                   runAsUser=1000, procMount="Default") | {"ports": [{"containerPort": 8888, "hostPort": 0}]},
               ctr("sidecar", capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}),
               init=[ctr("init")], ephemeral=[ctr("debugger")],
               sc={"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 100,
                   "seccompProfile": {"type": "RuntimeDefault"},
                   "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}]},
               volumes=ALL_VOLUMES, hostNetwork=False, hostUsers=True)


@pytest.mark.parametrize("version", ["latest"] + [f"v1.{n}" for n in range(LATEST_VERSION[1] + 3)])
def test_compliant_pod_passes_every_version(version):
    assert restricted_violations(compliant_pod(), version) == []
    assert baseline_violations(compliant_pod(), version) == []


def test_init_and_ephemeral_containers_are_checked_in_visit_order():
    p = pod(ctr("main", allowPrivilegeEscalation=UNSET), init=[ctr("init", allowPrivilegeEscalation=True)],
            ephemeral=[ctr("debug", allowPrivilegeEscalation=None)])
    assert restricted_violations(p) == [V("allowPrivilegeEscalation", "allowPrivilegeEscalation != false",
                                          'containers "init", "main", "debug" must set '
                                          "securityContext.allowPrivilegeEscalation=false")]


@pytest.mark.parametrize("where", ["initContainers", "ephemeralContainers"])
def test_only_a_non_regular_container_violates(where):
    p = pod(ctr())
    p["spec"][where] = [ctr("x", privileged=True)]
    assert evaluate(p, "baseline") == [
        V("privileged", "privileged", 'container "x" must not set securityContext.privileged=true')]


def test_order_is_baseline_ids_then_restricted_ids_bytewise():
    p = pod(bare("c", securityContext={"privileged": True, "runAsUser": 0, "procMount": "Unmasked",
                                       "seLinuxOptions": {"user": "x"}, "capabilities": {"add": ["SYS_ADMIN"]}}),
            sc={"sysctls": [{"name": "vm.swappiness"}], "seccompProfile": {"type": "Unconfined"}},
            annotations={AA + "c": "unconfined"}, hostIPC=True,
            volumes=[{"name": "h", "hostPath": {"path": "/"}}])
    assert [v.check for v in restricted_violations(p)] == [
        "appArmorProfile", "hostNamespaces", "privileged", "seLinuxOptions", "sysctls",
        "allowPrivilegeEscalation", "capabilities_restricted", "procMount_restricted", "restrictedVolumes",
        "runAsNonRoot", "runAsUser", "seccompProfile_restricted"]
    assert [v.check for v in baseline_violations(p)] == [
        "appArmorProfile", "capabilities_baseline", "hostNamespaces", "hostPathVolumes", "privileged",
        "procMount", "seLinuxOptions", "seccompProfile_baseline", "sysctls"]
    # Before 1.35 procMount is not overridden, so it keeps its baseline slot.
    assert [v.check for v in restricted_violations(p, "v1.34")][:6] == [
        "appArmorProfile", "hostNamespaces", "privileged", "procMount", "seLinuxOptions", "sysctls"]


def test_baseline_level_does_not_report_restricted_only_checks():
    p = pod(bare(), volumes=[{"name": "n", "nfs": {"server": "s"}}])
    assert baseline_violations(p) == []
    assert [v.check for v in restricted_violations(p)] == [
        "allowPrivilegeEscalation", "capabilities_restricted", "restrictedVolumes", "runAsNonRoot",
        "seccompProfile_restricted"]


@pytest.mark.parametrize("version, expected", [
    ("v1.0", ["restrictedVolumes", "runAsNonRoot"]),
    ("v1.8", ["allowPrivilegeEscalation", "restrictedVolumes", "runAsNonRoot"]),
    ("v1.19", ["allowPrivilegeEscalation", "restrictedVolumes", "runAsNonRoot", "seccompProfile_restricted"]),
    ("v1.22", ["allowPrivilegeEscalation", "capabilities_restricted", "restrictedVolumes", "runAsNonRoot",
               "seccompProfile_restricted"]),
    ("v1.23", ["allowPrivilegeEscalation", "capabilities_restricted", "restrictedVolumes", "runAsNonRoot",
               "runAsUser", "seccompProfile_restricted"]),
    ("v1.34", ["hostProbesAndHostLifecycle", "allowPrivilegeEscalation", "capabilities_restricted",
               "restrictedVolumes", "runAsNonRoot", "runAsUser", "seccompProfile_restricted"]),
    ("v1.99", ["hostProbesAndHostLifecycle", "allowPrivilegeEscalation", "capabilities_restricted",
               "restrictedVolumes", "runAsNonRoot", "runAsUser", "seccompProfile_restricted"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_version_gates(version, expected):
    p = pod(bare(securityContext={"runAsUser": 0}, livenessProbe={"tcpSocket": {"host": "h"}}),
            volumes=[{"name": "h", "hostPath": {"path": "/"}}])
    assert [v.check for v in restricted_violations(p, version)] == expected


def test_windows_is_not_skipped_for_run_as_non_root():
    p = pod(bare(), os={"name": "windows"})
    assert [v.check for v in restricted_violations(p)] == ["runAsNonRoot"]
    assert [v.check for v in restricted_violations(p, "v1.24")] == [
        "allowPrivilegeEscalation", "capabilities_restricted", "runAsNonRoot", "seccompProfile_restricted"]


def test_user_namespace_relaxations_start_at_1_35():
    p = pod(ctr(runAsNonRoot=UNSET, runAsUser=0), hostUsers=False)
    assert restricted_violations(p, "v1.35") == []
    assert [v.check for v in restricted_violations(p, "v1.34")] == ["runAsNonRoot", "runAsUser"]
    # hostUsers must be explicitly false; true or unset changes nothing.
    assert [v.check for v in restricted_violations(pod(ctr(runAsUser=0), hostUsers=True))] == ["runAsUser"]


@pytest.mark.parametrize("level", [None, "", "privileged"])
def test_privileged_level_allows_everything(level):
    p = pod(bare(securityContext={"privileged": True}), hostPID=True)
    assert evaluate(p, level) == []


def test_invalid_level_evaluates_as_restricted():
    assert evaluate(KUBESPAWNER_DEFAULT_POD, "Baseline") == restricted_violations(KUBESPAWNER_DEFAULT_POD)


@pytest.mark.parametrize("value, expected", [
    (None, "privileged"), ("", "privileged"), ("privileged", "privileged"), ("baseline", "baseline"),
    ("restricted", "restricted"), ("Restricted", "restricted"), ("bogus", "restricted"), (" baseline", "restricted"),
], ids=repr)
def test_parse_level(value, expected):
    assert parse_level(value) == expected


@pytest.mark.parametrize("value, expected", [
    (None, "latest"), ("", "latest"), ("latest", "latest"), ("v1.0", "v1.0"), ("v1.25", "v1.25"),
    ("v1.37", "v1.37"), ("v1.38", "latest"), ("v1.999", "latest"), ("v1.05", "latest"), ("1.25", "latest"),
    ("v2.0", "latest"), ("v1.", "latest"), ("v1.25 ", "latest"), ("v1.2x", "latest"), ("Latest", "latest"),
    ("v1.\u0663", "latest"),
], ids=repr)
def test_parse_version(value, expected):
    assert parse_version(value) == expected


NS = "pod-security.kubernetes.io/"


@pytest.mark.parametrize("labels, mode, expected", [
    (None, "enforce", ("privileged", "latest")),
    ({}, "enforce", ("privileged", "latest")),
    ({"app": "x"}, "audit", ("privileged", "latest")),
    ({NS + "enforce": "restricted"}, "enforce", ("restricted", "latest")),
    ({NS + "enforce": "baseline", NS + "enforce-version": "v1.30"}, "enforce", ("baseline", "v1.30")),
    ({NS + "enforce": "strict", NS + "enforce-version": "1.30"}, "enforce", ("restricted", "latest")),
    ({NS + "enforce": ""}, "enforce", ("restricted", "latest")),  # present but invalid fails closed
    ({NS + "enforce-version": "v1.20"}, "enforce", ("privileged", "v1.20")),
    ({NS + "enforce": "restricted", NS + "audit": "baseline"}, "audit", ("baseline", "latest")),
    ({NS + "enforce": "restricted", NS + "enforce-version": "v1.25"}, "warn", ("restricted", "v1.25")),
    ({NS + "enforce": "restricted", NS + "enforce-version": "v1.25", NS + "warn-version": "v1.30"}, "warn",
     ("restricted", "v1.30")),
    ({NS + "enforce": "restricted", NS + "warn": "baseline"}, "warn", ("baseline", "latest")),
    ({NS + "enforce": "privileged"}, "warn", ("privileged", "latest")),
    ({NS + "enforce": "restricted"}, "audit", ("privileged", "latest")),
    ({NS + "enforce": "bogus"}, "warn", ("privileged", "latest")),
], ids=lambda v: repr(v) if isinstance(v, tuple) else None)
def test_namespace_policy(labels, mode, expected):
    assert namespace_policy(labels, mode) == expected


def test_namespace_policy_rejects_unknown_mode():
    with pytest.raises(ValueError):
        namespace_policy({}, "deny")


def test_message_helpers():
    assert pluralize("container", "containers", 1) == "container"
    assert pluralize("container", "containers", 0) == "containers"
    assert join_quote(["a", 'b"c', "d\\e"]) == '"a", "b\\"c", "d\\\\e"'
    # Go's %q: C escapes, \x for other ASCII controls, \u for non-printable runes, printable UTF-8 kept.
    assert join_quote(["n\ta\x01", "caf\u00e9\u200b"]) == '"n\\ta\\x01", "caf\u00e9\\u200b"'
    assert str(V("x", "hostPort")) == "hostPort"
    assert str(V("x", "privileged", "d")) == "privileged (d)"
    assert LEVELS == ("privileged", "baseline", "restricted")


def test_summary_and_forbidden_message_with_pinned_version():
    vs = [V("hostNamespaces", "host namespaces", "hostPID=true"), V("x", "bare reason")]
    assert violation_summary(vs, "baseline", "v1.30") == (
        'violates PodSecurity "baseline:v1.30": host namespaces (hostPID=true), bare reason')
    assert forbidden_message("", vs[:1]) == (
        'pods is forbidden: violates PodSecurity "restricted:latest": host namespaces (hostPID=true)')
    assert forbidden_message('we"ird', vs[:1], "restricted", "v1.37").startswith('pods "we\\"ird" is forbidden: ')


ODD_PODS = [
    {}, None, {"metadata": None, "spec": None}, {"spec": {"containers": None, "securityContext": None}},
    {"metadata": {"annotations": None}, "spec": {"volumes": None, "initContainers": None, "ephemeralContainers": None}},
    {"spec": {"containers": [None, {}, {"name": None, "securityContext": None, "ports": None, "lifecycle": None}]}},
    {"spec": {"containers": [{"securityContext": {"capabilities": None, "seLinuxOptions": None, "seccompProfile": None,
                                                  "appArmorProfile": None, "windowsOptions": None}}]}},
    {"spec": {"containers": [{"securityContext": {"capabilities": {"add": None, "drop": None},
                                                  "seLinuxOptions": {}, "windowsOptions": {}},
                              "ports": [None, {"hostPort": None}],
                              "livenessProbe": {"httpGet": None, "tcpSocket": {"host": None}},
                              "lifecycle": {"preStop": None}}],
              "securityContext": {"sysctls": [None, {"name": None}], "seLinuxOptions": {"type": None}},
              "volumes": [None, {"name": None}], "os": None, "hostUsers": None}},
    {"metadata": {"annotations": {AA + "x": None, SECCOMP_POD: None}}, "spec": {"os": {"name": None}}},
]


@pytest.mark.parametrize("odd", ODD_PODS, ids=[f"odd{i}" for i in range(len(ODD_PODS))])
@pytest.mark.parametrize("version", ["latest", "v1.0", "v1.18", "v1.24", "v1.34", None, "junk"])
def test_never_raises_on_missing_or_none(odd, version):
    for level in LEVELS + ("junk", None):
        result = evaluate(odd, level, version)
        assert all(isinstance(v, Violation) for v in result)
        forbidden_message("p", result, level, version)


def test_empty_pod_has_no_violations_and_unnamed_containers_are_reported():
    assert evaluate({}, "restricted") == []
    vs = restricted_violations({"spec": {"containers": [{"securityContext": None}]}})
    assert vs[0] == V("allowPrivilegeEscalation", "allowPrivilegeEscalation != false",
                      'container "" must set securityContext.allowPrivilegeEscalation=false')
