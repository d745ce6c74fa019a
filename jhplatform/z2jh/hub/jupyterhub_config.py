# The hub pod's /usr/local/etc/jupyterhub/jupyterhub_config.py, for the test and demo loader.
#
# Written for jhplatform from the facts in docs/z2jh-loader.md (what z2jh 4.4.0's file does, step
# by step, in which order, in which namespace). JupyterHub runs it with traitlets'
# PyFileConfigLoader; the step numbers below are the ones in that document.
import glob
import os
import sys

# -- 1. traitlets' config object, then z2jh's helpers over traitlets' get_config -----------------
c = get_config()  # noqa: F821 (traitlets' get_config, from the loader's namespace)

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from z2jh import get_config, get_name, get_name_env, get_secret_value, set_config_if_not_none  # noqa: E402

# -- 2. tornado's curl HTTP client ----------------------------------------------------------------
from tornado.httpclient import AsyncHTTPClient  # noqa: E402

AsyncHTTPClient.configure("tornado.curl_httpclient.CurlAsyncHTTPClient")

# -- 3. fixed hub settings --------------------------------------------------------------------------
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.ConfigurableHTTPProxy.api_url = f'http://{get_name("proxy-api")}:{get_name_env("proxy-api", "_SERVICE_PORT")}'
c.ConfigurableHTTPProxy.should_start = False
c.JupyterHub.cleanup_servers = False
c.JupyterHub.last_activity_interval = 60
# A spawn request answers at once (202); the outcome arrives on the progress stream.
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}

hub_container_port = 8081
c.JupyterHub.hub_bind_url = f"http://:{hub_container_port}"
c.JupyterHub.hub_connect_url = f'http://{get_name("hub")}:{get_name_env("hub", "_SERVICE_PORT")}'

db_type = get_config("hub.db.type")
if db_type == "sqlite-pvc":
    c.JupyterHub.db_url = "sqlite:///jupyterhub.sqlite"
elif db_type == "sqlite-memory":
    c.JupyterHub.db_url = "sqlite://"
elif db_type not in ("mysql", "postgres", "other"):
    print(f"FATAL: Unknown hub.db.type {db_type!r}", file=sys.stderr)
    sys.exit(1)
set_config_if_not_none(c.JupyterHub, "db_url", "hub.db.url")
set_config_if_not_none(c.JupyterHub, "upgrade_db", "hub.db.upgrade")

# -- 4. hub.* onto JupyterHub ---------------------------------------------------------------------
for trait, key in [
    ("concurrent_spawn_limit", "concurrentSpawnLimit"),
    ("active_server_limit", "activeServerLimit"),
    ("base_url", "baseUrl"),
    ("allow_named_servers", "allowNamedServers"),
    ("named_server_limit_per_user", "namedServerLimitPerUser"),
    ("authenticate_prometheus", "authenticatePrometheus"),
    ("redirect_to_server", "redirectToServer"),
    ("shutdown_on_logout", "shutdownOnLogout"),
    ("template_paths", "templatePaths"),
    ("template_vars", "templateVars"),
]:
    set_config_if_not_none(c.JupyterHub, trait, "hub." + key)
set_config_if_not_none(c.Spawner, "consecutive_failure_limit", "hub.consecutiveFailureLimit")

# -- 5. user pods: KubeSpawner ------------------------------------------------------------------------
release = get_config("Release.Name")
chart = f'{get_config("Chart.Name")}-{str(get_config("Chart.Version")).replace("+", "_")}'
c.KubeSpawner.common_labels = {
    "app": get_config("nameOverride") or get_config("Chart.Name", "jupyterhub"),
    "heritage": "jupyterhub",
    "chart": chart,
    "release": release,
}
c.KubeSpawner.namespace = os.environ.get("POD_NAMESPACE", "default")

for trait, key in [
    ("pod_name_template", "podNameTemplate"),
    ("start_timeout", "startTimeout"),
    ("uid", "uid"),
    ("fs_gid", "fsGid"),
    ("service_account", "serviceAccountName"),
    ("node_selector", "nodeSelector"),
    ("lifecycle_hooks", "lifecycleHooks"),
    ("init_containers", "initContainers"),
    ("extra_containers", "extraContainers"),
    ("mem_limit", "memory.limit"),
    ("mem_guarantee", "memory.guarantee"),
    ("cpu_limit", "cpu.limit"),
    ("cpu_guarantee", "cpu.guarantee"),
    ("extra_resource_limits", "extraResource.limits"),
    ("extra_resource_guarantees", "extraResource.guarantees"),
    ("environment", "extraEnv"),
    ("profile_list", "profileList"),
    ("extra_pod_config", "extraPodConfig"),
    ("extra_labels", "extraLabels"),
    ("extra_annotations", "extraAnnotations"),
    ("events_enabled", "events"),
    ("allow_privilege_escalation", "allowPrivilegeEscalation"),
]:
    set_config_if_not_none(c.KubeSpawner, trait, "singleuser." + key)

image = get_config("singleuser.image.name")
if image:
    tag = get_config("singleuser.image.tag")
    c.KubeSpawner.image = f"{image}:{tag}" if tag else image
set_config_if_not_none(c.KubeSpawner, "image_pull_policy", "singleuser.image.pullPolicy")
pull_secrets = list(get_config("singleuser.image.pullSecrets", []) or [])
if get_config("imagePullSecret.create"):
    pull_secrets.append(get_name("image-pull-secret"))
if pull_secrets:
    c.KubeSpawner.image_pull_secrets = pull_secrets

if get_config("scheduling.userScheduler.enabled"):
    c.KubeSpawner.scheduler_name = get_name("user-scheduler")
if get_config("scheduling.podPriority.enabled"):
    c.KubeSpawner.priority_class_name = get_name("priority")

match_node_purpose = get_config("scheduling.userPods.nodeAffinity.matchNodePurpose")
purpose = {"matchExpressions": [{"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}]}
node_required = list(get_config("singleuser.extraNodeAffinity.required", []) or [])
node_preferred = list(get_config("singleuser.extraNodeAffinity.preferred", []) or [])
if match_node_purpose == "prefer":
    node_preferred.append({"weight": 100, "preference": purpose})
elif match_node_purpose == "require":
    node_required.append(purpose)
elif match_node_purpose != "ignore":
    print(f"FATAL: Unrecognized scheduling.userPods.nodeAffinity.matchNodePurpose: {match_node_purpose!r}", file=sys.stderr)
    sys.exit(1)
c.KubeSpawner.node_affinity_required = node_required
c.KubeSpawner.node_affinity_preferred = node_preferred
for trait, key in [
    ("pod_affinity_required", "extraPodAffinity.required"),
    ("pod_affinity_preferred", "extraPodAffinity.preferred"),
    ("pod_anti_affinity_required", "extraPodAntiAffinity.required"),
    ("pod_anti_affinity_preferred", "extraPodAntiAffinity.preferred"),
]:
    set_config_if_not_none(c.KubeSpawner, trait, "singleuser." + key)

c.KubeSpawner.tolerations = list(get_config("scheduling.userPods.tolerations", []) or []) + list(
    get_config("singleuser.extraTolerations", []) or []
)

storage_type = get_config("singleuser.storage.type")
volumes = {}
volume_mounts = {}
if storage_type == "dynamic":
    set_config_if_not_none(c.KubeSpawner, "pvc_name_template", "singleuser.storage.dynamic.pvcNameTemplate")
    volume_name = get_config("singleuser.storage.dynamic.volumeNameTemplate")
    c.KubeSpawner.storage_pvc_ensure = True
    set_config_if_not_none(c.KubeSpawner, "storage_class", "singleuser.storage.dynamic.storageClass")
    set_config_if_not_none(c.KubeSpawner, "storage_access_modes", "singleuser.storage.dynamic.storageAccessModes")
    set_config_if_not_none(c.KubeSpawner, "storage_capacity", "singleuser.storage.capacity")
    set_config_if_not_none(c.KubeSpawner, "storage_extra_labels", "singleuser.storage.extraLabels")
    volumes[volume_name] = {"name": volume_name, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
    mount = {"name": volume_name, "mountPath": get_config("singleuser.storage.homeMountPath")}
    if get_config("singleuser.storage.dynamic.subPath"):
        mount["subPath"] = get_config("singleuser.storage.dynamic.subPath")
    volume_mounts[volume_name] = mount
elif storage_type == "static":
    claim = get_config("singleuser.storage.static.pvcName")
    volumes["home"] = {"name": "home", "persistentVolumeClaim": {"claimName": claim}}
    volume_mounts["home"] = {
        "name": "home",
        "mountPath": get_config("singleuser.storage.homeMountPath"),
        "subPath": get_config("singleuser.storage.static.subPath"),
    }
for extra, into in (("extraVolumes", volumes), ("extraVolumeMounts", volume_mounts)):
    items = get_config("singleuser.storage." + extra) or {}
    if isinstance(items, list):
        items = {item["name"]: item for item in items}
    into.update(items)
c.KubeSpawner.volumes = volumes
c.KubeSpawner.volume_mounts = volume_mounts

set_config_if_not_none(c.Spawner, "cmd", "singleuser.cmd")
set_config_if_not_none(c.Spawner, "default_url", "singleuser.defaultUrl")

# -- 6. services and roles ------------------------------------------------------------------------
c.JupyterHub.services = []
c.JupyterHub.load_roles = []
if get_config("cull.enabled", False):
    cull_cmd = ["python3", "-m", "jupyterhub_idle_culler"]
    base_url = c.JupyterHub.get("base_url", "/")
    cull_cmd.append("--url=http://localhost:8081" + base_url.rstrip("/") + "/hub/api")
    for flag, key in [
        ("--timeout", "timeout"),
        ("--cull-every", "every"),
        ("--concurrency", "concurrency"),
        ("--max-age", "maxAge"),
    ]:
        value = get_config("cull." + key)
        if value is not None:
            cull_cmd.append(f"{flag}={value}")
    for flag, key in [
        ("--cull-users", "users"),
        ("--remove-named-servers", "removeNamedServers"),
    ]:
        if get_config("cull." + key):
            cull_cmd.append(flag)
    if not get_config("cull.adminUsers", True):
        cull_cmd.append("--cull-admin-users=false")
    scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    if get_config("cull.users"):
        scopes.append("admin:users")
    c.JupyterHub.services.append({"name": "jupyterhub-idle-culler", "command": cull_cmd})
    c.JupyterHub.load_roles.append(
        {"name": "jupyterhub-idle-culler", "scopes": scopes, "services": ["jupyterhub-idle-culler"]}
    )

for key, service in (get_config("hub.services", {}) or {}).items():
    service = dict(service)
    service.setdefault("name", key)
    service.pop("apiToken", None)
    service["api_token"] = get_secret_value(f"hub.services.{key}.apiToken")
    c.JupyterHub.services.append(service)

for key, role in (get_config("hub.loadRoles", {}) or {}).items():
    role = dict(role)
    role.setdefault("name", key)
    c.JupyterHub.load_roles.append(role)

# -- 7. the cloud metadata blocker ----------------------------------------------------------------
if get_config("singleuser.cloudMetadata.blockWithIptables") is True:
    tools = get_config("singleuser.networkTools.image.name")
    tools_tag = get_config("singleuser.networkTools.image.tag")
    blocker = {
        "name": "block-cloud-metadata",
        "image": f"{tools}:{tools_tag}",
        "command": ["iptables", "--append", "OUTPUT", "--protocol", "tcp", "--destination",
                    get_config("singleuser.cloudMetadata.ip"), "--destination-port", "80", "--jump", "DROP"],
        "securityContext": {"privileged": True, "runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}},
    }
    c.KubeSpawner.init_containers = list(get_config("singleuser.initContainers", []) or []) + [blocker]

# -- 8. secrets -----------------------------------------------------------------------------------
c.JupyterHub.cookie_secret = get_secret_value("hub.config.JupyterHub.cookie_secret")
c.CryptKeeper.keys = get_secret_value("hub.config.CryptKeeper.keys").split(";")

# -- 9. hub.config pass-through ---------------------------------------------------------------------
for section, section_config in (get_config("hub.config", {}) or {}).items():
    if not section[:1].isupper():
        print(
            f"FATAL: Invalid hub.config section name {section!r}: a section must start with a "
            "capital letter. Maybe misplaced or misspelled config?",
            file=sys.stderr,
        )
        sys.exit(1)
    c[section].update(section_config)

# -- 10. the image's snippets, in file name order, in this namespace --------------------------------
config_d = "/usr/local/etc/jupyterhub/jupyterhub_config.d"
if os.path.isdir(config_d):
    for file_path in sorted(glob.glob(f"{config_d}/*.py")):
        file_name = os.path.basename(file_path)
        print(f"Loading {config_d} config: {file_name}")
        with open(file_path) as f:
            source = f.read()
        exec(compile(source=source, filename=file_name, mode="exec"))

# -- 11. hub.extraConfig, in key order, in this namespace -------------------------------------------
for key, source in sorted((get_config("hub.extraConfig", {}) or {}).items()):
    print(f"Loading extra config: {key}")
    exec(compile(source=source, filename=f"hub.extraConfig.{key}", mode="exec"))
