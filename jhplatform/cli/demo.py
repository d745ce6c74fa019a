"""``jhplatform demo VALUES.yaml…``: the platform on this machine, the hub started as z2jh's hub pod starts it.

One private mount namespace (:class:`jhplatform.z2jh.HubPod`: the pod's files at the pod's paths,
the Service names ``hub``/``proxy-api`` on loopback) holds the Kubernetes API emulator (with the
process kubelet, so notebook servers are real local processes that reach the hub by its Service
name), configurable-http-proxy as the proxy pod, and JupyterHub with z2jh's command and
environment. Open the printed URL and log in with any name (the chart's default authenticator).

The demo adds one values layer of its own (:data:`DEMO_VALUES`): the emulator runs only the
default scheduler, so z2jh's user-scheduler is off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from ..z2jh import HubPod
from . import SAMPLE_NAMESPACE, sample_manifests

DEMO_VALUES = {"scheduling": {"userScheduler": {"enabled": False}}}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the platform locally: emulator, proxy and the hub as z2jh's hub pod runs it",
        description="Start the Kubernetes API emulator (GPU node pool, PSS-restricted namespace "
        f"'{SAMPLE_NAMESPACE}'), configurable-http-proxy and JupyterHub loaded from these z2jh values exactly as "
        "z2jh 4.4.0's hub pod loads them. Stop with Ctrl-C.",
    )
    p.add_argument("values", nargs="+", type=Path, help="z2jh values files, in `helm upgrade -f` order")
    p.add_argument("--port", type=int, default=8001, help="the proxy's public port on 127.0.0.1 (default: 8001)")
    p.add_argument("--hub-port", type=int, default=8081, help="the hub's port on 127.0.0.1 (default: 8081, as in the pod)")
    p.add_argument("--state-dir", type=Path, default=Path(".demo"), help="where the pod's files, the volumes and logs go")
    p.add_argument("--snippets", type=Path, default=None, help="the hub image's jupyterhub_config.d (default: the checkout's)")
    p.add_argument("--kubelet", choices=("simulated", "process"), default="process", help="how pods run (default: process)")
    p.add_argument("--nodes", default=None, help="the emulator's node pool, as for `jhplatform devcluster --nodes` "
                   "(default: the emulator's default pool)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: argparse.Namespace) -> int:
    from .values_check import CHECKOUT_SNIPPETS

    missing = [str(p) for p in args.values if not p.is_file()]
    if missing:
        print(f"jhplatform demo: no such values file: {', '.join(missing)}", file=sys.stderr)
        return 2
    chp = shutil.which("configurable-http-proxy")
    if not chp:
        print("jhplatform demo: configurable-http-proxy is not on PATH; run `make install` (npm installs it)", file=sys.stderr)
        return 2
    state = args.state_dir.resolve()
    pod_dir = state / "pod"
    shutil.rmtree(pod_dir, ignore_errors=True)
    pod = HubPod.from_files(
        pod_dir,
        args.values,
        args.snippets or (CHECKOUT_SNIPPETS if CHECKOUT_SNIPPETS.is_dir() else None),
        namespace=SAMPLE_NAMESPACE,
        hub_port=args.hub_port,
        proxy_api_port=_free_port(),
        proxy_public_port=args.port,
        kubeconfig=state / "kubeconfig",
    )
    pod.values.append(DEMO_VALUES)
    pod.lay_out()
    plan = {
        "state": str(state),
        "kubelet": args.kubelet,
        "nodes": args.nodes,
        "proxy": pod.proxy_command(chp),
        "hub": pod.hub_command(),
        "url": f"http://127.0.0.1:{args.port}",
    }
    inner = pod.popen([sys.executable, "-m", "jhplatform.cli.demo", json.dumps(plan)], start_new_session=True)
    # Ctrl-C or a SIGTERM here stops the inner process, which stops the hub, proxy and emulator.
    forward = lambda signum, frame: inner.send_signal(signal.SIGTERM)  # noqa: E731
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return inner.wait()


async def _inside(plan: dict) -> int:
    """In the pod's namespace: the emulator here, the proxy and the hub as child processes."""
    from ..devcluster.runtime import DevCluster

    state = Path(plan["state"])
    cluster = DevCluster(nodes=plan.get("nodes"), kubelet=plan["kubelet"], state_dir=state / "cluster")
    await cluster.start("127.0.0.1", 0)
    cluster.apply(sample_manifests())
    cluster.write_kubeconfig(Path(os.environ["KUBECONFIG"]), namespace=SAMPLE_NAMESPACE)
    logs = {name: open(state / f"{name}.log", "wb") for name in ("proxy", "hub")}
    procs = {name: subprocess.Popen(plan[name], stdout=logs[name], stderr=subprocess.STDOUT) for name in ("proxy", "hub")}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"jhplatform demo: emulator at {cluster.url}; hub starting (log: {state / 'hub.log'})", flush=True)
    announced = False
    code = 0
    while not stop.is_set():
        if procs["hub"].poll() is not None:
            print(f"jhplatform demo: the hub exited with {procs['hub'].returncode}; see {state / 'hub.log'}", file=sys.stderr, flush=True)
            code = 1
            break
        if not announced and b"JupyterHub is now running" in (state / "hub.log").read_bytes():
            print(f"jhplatform demo: ready at {plan['url']} (log in with any name); Ctrl-C stops it", flush=True)
            announced = True
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except asyncio.TimeoutError:
            pass
    for name in ("hub", "proxy"):
        proc = procs[name]
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        logs[name].close()
    await cluster.stop()
    return code


if __name__ == "__main__":
    sys.exit(asyncio.run(_inside(json.loads(sys.argv[1]))))
