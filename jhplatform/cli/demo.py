"""``jhplatform demo``: the whole platform on this machine, on loopback only.

The hub is started the way z2jh 4.4.0's hub pod starts it: one private mount namespace
(:class:`jhplatform.z2jh.HubPod`: the pod's files at the pod's paths, the Service names ``hub`` and
``proxy-api`` on loopback) holds everything the demo runs, so the notebook servers reach the hub
by its Service name as on a cluster:

- the Kubernetes API emulator with the process kubelet (notebooks are real
  ``jupyterhub-singleuser`` processes, JupyterLab with an ipykernel kernel), a node pool with
  A100 and T4 GPU nodes tainted as GPU pools are, and the namespace of
  ``helm-values/namespace.yaml`` (Pod Security "restricted" enforced, a ResourceQuota, a
  LimitRange) with the chart's RBAC for the hub plus ``helm-values/*-rbac.yaml``;
- the emulator's GPU metrics in the DCGM exporter's format, and Prometheus (Debian's) scraping them;
- an OpenID Connect provider (oidc-provider-mock) with the demo users;
- configurable-http-proxy, and JupyterHub from the values files through the z2jh loader, as
  ServiceAccount ``jhub:hub`` under the chart's RBAC plus the project's; the culler service runs
  hub-managed, as the values' ``custom.jhplatform.culler`` configures it.

Everything the demo keeps (the hub database, home directories, Prometheus' data, logs, the
secrets) lives in ``--state-dir``; ``--reset`` empties it first. Ctrl-C (or SIGTERM) stops
everything that was started, in reverse order, and waits until no process is left.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import sys
from pathlib import Path

import yaml

from ..z2jh import HubPod
from .processes import Processes, free_port, port_is_free

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "jhub"
SERVICE_ACCOUNT = "hub"
CLIENT_ID = "jhplatform-demo"

#: Two CPU nodes, one node with 4 A100s and one with 2 T4s, GPU nodes tainted as GKE taints them.
DEMO_NODES = (
    "cpux2:cpu=8,memory=32Gi,pods=110;"
    "gpu-a100x1:cpu=16,memory=128Gi,pods=110,nvidia.com/gpu=4,"
    "label:nvidia.com/gpu.product=NVIDIA-A100-SXM4-40GB,taint:nvidia.com/gpu=present:NoSchedule;"
    "gpu-t4x1:cpu=8,memory=32Gi,pods=110,nvidia.com/gpu=2,"
    "label:nvidia.com/gpu.product=Tesla-T4,taint:nvidia.com/gpu=present:NoSchedule"
)

#: The demo's users at the identity provider: (subject, groups, what they are for).
DEMO_USERS = (
    ("admin", ["platform-admins"], "hub admin: /hub/admin and the culler's GPU page"),
    ("gpu-user", ["gpu-users"], "may start the A100 and T4 GPU profiles (one GPU at a time)"),
    ("cpu-user", ["data-scientists"], "CPU profiles only"),
)

#: What the emulator cannot have: z2jh's user-scheduler (the emulator runs the default scheduler).
EMULATOR_VALUES = {"scheduling": {"userScheduler": {"enabled": False}}}

RBAC_FILES = ("jhplatform/z2jh/chart/hub-rbac.yaml", "helm-values/gpu-rbac.yaml", "helm-values/storage-rbac.yaml")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole platform locally: emulator, IdP, Prometheus, proxy, the hub as z2jh runs it, the culler",
        description="Run the whole platform on this machine, on loopback only, in the foreground: the "
        "Kubernetes API emulator, an OpenID Connect provider, Prometheus, configurable-http-proxy and "
        "JupyterHub loaded from these z2jh values exactly as z2jh 4.4.0's hub pod loads them. "
        "Stop with Ctrl-C: everything started is stopped.",
    )
    p.add_argument("values", nargs="*", type=Path, help="z2jh values files, in `helm upgrade -f` order "
                   "(default: helm-values/demo.yaml)")
    p.add_argument("--port", type=int, default=8000, help="the hub's public port on 127.0.0.1 (default: 8000)")
    p.add_argument("--state-dir", type=Path, default=Path(".demo"), help="where all state lives (default: .demo)")
    p.add_argument("--reset", action="store_true", help="empty the state directory first: hub database, homes, data")
    p.add_argument("--snippets", type=Path, default=None, help="the hub image's jupyterhub_config.d (default: the checkout's)")
    p.add_argument("--nodes", default=DEMO_NODES, help="the emulator's node pool, as for `jhplatform devcluster --nodes`")


class DemoError(RuntimeError):
    """The demo cannot start; the message says why and what to do."""


def _secrets(state: Path) -> dict:
    """The hub's cookie secret and CryptKeeper key, kept across runs so logins and auth state survive."""
    path = state / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {"cookie_secret": secrets.token_hex(32), "crypt_key": secrets.token_hex(32), "client_secret": secrets.token_hex(16)}
    path.write_text(json.dumps(values))
    path.chmod(0o600)
    return values


def runtime_values(*, port: int, idp_url: str, prometheus_url: str, culler_port: int, kept: dict) -> dict:
    """The values only known when the demo starts: loopback URLs and ports, and kept secrets."""
    return {
        "hub": {
            "config": {
                "JupyterHub": {"cookie_secret": kept["cookie_secret"]},
                "CryptKeeper": {"keys": [kept["crypt_key"]]},
                "PlatformAuthenticator": {
                    "issuer": idp_url,
                    "client_id": CLIENT_ID,
                    "client_secret": kept["client_secret"],
                    "oauth_callback_url": f"http://127.0.0.1:{port}/hub/oauth_callback",
                },
            }
        },
        "custom": {"jhplatform": {"culler": {"prometheus": {"url": prometheus_url}, "port": culler_port}}},
    }


def plan_demo(args: argparse.Namespace) -> tuple[HubPod, dict]:
    """Lay out the hub pod's files and say what the inside of the pod runs."""
    from .values_check import CHECKOUT_SNIPPETS

    values = list(args.values) or [REPO / "helm-values" / "demo.yaml"]
    missing = [str(p) for p in values if not p.is_file()]
    if missing:
        raise DemoError(f"no such values file: {', '.join(missing)}")
    tools = {name: shutil.which(name) for name in ("configurable-http-proxy", "prometheus")}
    for name, path in tools.items():
        if path is None:
            raise DemoError(f"{name} is not installed: run `make demo`, which installs it")
    if not port_is_free(args.port):
        raise DemoError(f"port {args.port} on 127.0.0.1 is in use: stop what uses it, or pass --port")
    state = args.state_dir.resolve()
    if args.reset and state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True)
    kept = _secrets(state)
    ports = {name: free_port() for name in ("idp", "prometheus", "exporter", "culler", "proxy_api", "hub")}
    idp_url = f"http://127.0.0.1:{ports['idp']}"
    prometheus_url = f"http://127.0.0.1:{ports['prometheus']}"
    pod_dir = state / "pod"
    # The pod's config files are written anew each run; /srv/jupyterhub (the database) is kept.
    shutil.rmtree(pod_dir / "usr-local-etc", ignore_errors=True)
    pod = HubPod.from_files(
        pod_dir,
        values,
        args.snippets or (CHECKOUT_SNIPPETS if CHECKOUT_SNIPPETS.is_dir() else None),
        namespace=NAMESPACE,
        hub_port=ports["hub"],
        proxy_api_port=ports["proxy_api"],
        proxy_public_port=args.port,
        kubeconfig=state / "hub.kubeconfig",
    )
    pod.values += [
        EMULATOR_VALUES,
        runtime_values(port=args.port, idp_url=idp_url, prometheus_url=prometheus_url, culler_port=ports["culler"], kept=kept),
    ]
    pod.lay_out()
    plan = {
        "state": str(state),
        "nodes": args.nodes,
        "url": f"http://127.0.0.1:{args.port}",
        "ports": ports,
        "idp_url": idp_url,
        "prometheus_url": prometheus_url,
        "proxy": pod.proxy_command(tools["configurable-http-proxy"]),
        "hub": pod.hub_command(),
        "prometheus": tools["prometheus"],
        "repo": str(REPO),
    }
    return pod, plan


def run(args: argparse.Namespace) -> int:
    try:
        pod, plan = plan_demo(args)
    except DemoError as e:
        print(f"jhplatform demo: {e}", file=sys.stderr)
        return 2
    inner = pod.popen([sys.executable, "-m", "jhplatform.cli.demo", json.dumps(plan)], start_new_session=True)

    def forward(signum, frame):
        # Ctrl-C or SIGTERM here stops the inside, which stops everything it started.
        if inner.poll() is None:
            inner.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return inner.wait()


# -- inside the hub pod's mount namespace ----------------------------------------------------------


def _rbac_manifests(repo: Path) -> list[dict]:
    docs = []
    for name in RBAC_FILES:
        docs += [d for d in yaml.safe_load_all((repo / name).read_text()) if d]
    return docs


def idp_command(port: int) -> list[str]:
    argv = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)]
    for sub, groups, _ in DEMO_USERS:
        claims = {"sub": sub, "preferred_username": sub, "email": f"{sub}@demo.example", "name": sub, "groups": groups}
        argv += ["--user-claims", json.dumps(claims)]
    return argv


def prometheus_command(binary: str, state: Path, port: int, exporter: str) -> list[str]:
    config = state / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "scrape_configs": [{"job_name": "dcgm-exporter", "static_configs": [{"targets": [exporter]}]}],
    }))
    return [binary, f"--config.file={config}", f"--storage.tsdb.path={state / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d"]


def banner(plan: dict) -> str:
    state = Path(plan["state"])
    url = plan["url"]
    lines = [
        f"jhplatform demo is ready: {url}",
        "",
        "  Sign in at the identity provider by picking a user (no password):",
        *(f"    {sub:<9} {why}" for sub, _, why in DEMO_USERS),
        "",
        "  Things to try:",
        "    - as gpu-user: the spawn form shows how many A100s and T4s are free; start one, open a",
        "      notebook, leave it idle: the culler warns on the home page, then stops it (files stay)",
        "    - as cpu-user: no GPU profile is offered; asking for one through the REST API is refused",
        f"    - as admin: {url}/hub/admin and the culler's GPU page {url}/services/jhplatform-culler/",
        f"    - Prometheus: {plan['prometheus_url']} (DCGM_FI_DEV_GPU_UTIL)",
        "",
        f"  kubectl, as cluster admin:  export KUBECONFIG={state / 'kubeconfig'}",
        f"                              kubectl get pods -n {NAMESPACE}",
        f"  Logs: {state / 'logs'}    Stop: Ctrl-C",
    ]
    return "\n".join(lines)


async def _inside(plan: dict) -> int:
    from aiohttp import web

    from ..devcluster.gpu_metrics import GpuMetrics
    from ..devcluster.runtime import DevCluster

    state = Path(plan["state"])
    ports = plan["ports"]
    repo = Path(plan["repo"])
    processes = Processes(state / "logs")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    cluster = DevCluster(nodes=plan["nodes"], kubelet="process", state_dir=state / "cluster")
    await cluster.start("127.0.0.1", 0)
    runner = None
    code = 0
    try:
        manifests = [d for d in yaml.safe_load_all((repo / "helm-values" / "namespace.yaml").read_text()) if d]
        cluster.apply(manifests + _rbac_manifests(repo))
        cluster.service_account_kubeconfig(Path(os.environ["KUBECONFIG"]), NAMESPACE, SERVICE_ACCOUNT, tls=True)
        cluster.write_kubeconfig(state / "kubeconfig", namespace=NAMESPACE, tls=True)

        runner = web.AppRunner(GpuMetrics(cluster).app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", ports["exporter"]).start()

        processes.start("idp", idp_command(ports["idp"]))
        processes.start("prometheus", prometheus_command(plan["prometheus"], state, ports["prometheus"], f"127.0.0.1:{ports['exporter']}"))
        processes.start("proxy", plan["proxy"])
        hub = processes.start("hub", plan["hub"])
        print(f"jhplatform demo: starting (logs in {state / 'logs'}) ...", flush=True)
        announced = False
        while not stop.is_set():
            gone = processes.exited()
            if gone:
                child = gone[0]
                print(f"jhplatform demo: {child.name} exited with {child.proc.returncode}; its log "
                      f"({child.log}) ends:\n{child.tail()}", file=sys.stderr, flush=True)
                code = 1
                break
            if not announced and b"JupyterHub is now running" in hub.log.read_bytes():
                print(banner(plan), flush=True)
                announced = True
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
    finally:
        print("jhplatform demo: stopping ...", flush=True)
        await processes.stop()
        if runner is not None:
            await runner.cleanup()
        await cluster.stop()
        print("jhplatform demo: stopped", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(_inside(json.loads(sys.argv[1]))))
