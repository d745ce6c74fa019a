"""The ``jhplatform`` command.

``jhplatform devcluster`` runs the Kubernetes API emulator in the foreground.
``jhplatform orphaned-claims`` lists home claims whose hub user no longer exists.
``jhplatform check VALUES.yaml…`` checks z2jh values offline through the hub's own config loading.
``jhplatform render VALUES.yaml… --user NAME --profile SLUG`` prints the PVC and pod a spawn creates.
``jhplatform demo [VALUES.yaml…]`` runs the whole platform locally (emulator, IdP, Prometheus, proxy, hub, culler).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from . import orphaned_claims, values_check

SAMPLE_NAMESPACE = "jhub"


def sample_manifests(namespace: str = SAMPLE_NAMESPACE, gpus: int = 4) -> list[dict]:
    """A namespace like the platform runs in: PSS restricted enforced, with a GPU quota."""
    return [
        {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": namespace,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        },
        {
            "kind": "ResourceQuota",
            "apiVersion": "v1",
            "metadata": {"name": "gpu-quota", "namespace": namespace},
            "spec": {"hard": {"requests.nvidia.com/gpu": str(gpus)}},
        },
    ]


def _devcluster_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "devcluster",
        help="run the Kubernetes API emulator in the foreground",
        description="Run the Kubernetes API emulator on loopback. When it is ready it writes a "
        "kubeconfig pointing at itself and prints one line saying so. Stop it with Ctrl-C.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default: 0)")
    p.add_argument("--kubeconfig", required=True, type=Path, help="where to write the kubeconfig")
    p.add_argument("--state-dir", type=Path, default=None, help="where the process kubelet keeps volumes and logs")
    p.add_argument(
        "--nodes",
        default=None,
        help="node pool: a YAML/JSON file of Node manifests, or a spec such as "
        "'cpu-x2:cpu=8,memory=32Gi;gpu-x1:cpu=16,memory=64Gi,nvidia.com/gpu=4,taint:nvidia.com/gpu=present:NoSchedule' "
        "(default: two CPU nodes and two 4-GPU A100 nodes)",
    )
    p.add_argument("--kubelet", choices=("simulated", "process"), default="simulated", help="how pods run (default: simulated)")
    p.add_argument("--seed", type=int, default=0, help="seed for fault injection (default: 0)")
    p.add_argument(
        "--extended-resource-toleration",
        action="store_true",
        help="run the ExtendedResourceToleration admission plugin, as GKE does: a pod asking for an "
        "extended resource such as nvidia.com/gpu tolerates the taint of that name (default: off)",
    )
    p.add_argument(
        "--sample",
        action="store_true",
        help=f"also create namespace '{SAMPLE_NAMESPACE}' with PSS restricted enforced and a 4-GPU ResourceQuota",
    )
    p.add_argument(
        "--serviceaccount-kubeconfig",
        action="append",
        default=[],
        type=_service_account_target,
        metavar="NAMESPACE:SERVICEACCOUNT=PATH",
        help="also write a kubeconfig at PATH that acts as that ServiceAccount (created if missing; the "
        "namespace must exist, e.g. jhub with --sample); RBAC decides what it may do. Repeatable.",
    )
    p.add_argument("--log-level", default="WARNING", help="logging level (default: WARNING)")


def _service_account_target(text: str) -> tuple[str, str, Path]:
    target, sep, path = text.partition("=")
    namespace, colon, name = target.partition(":")
    if not (sep and colon and namespace and name and path):
        raise argparse.ArgumentTypeError(f"expected NAMESPACE:SERVICEACCOUNT=PATH, e.g. jhub:hub=hub.kubeconfig, not {text!r}")
    return namespace, name, Path(path)


async def _run_devcluster(args: argparse.Namespace) -> int:
    from ..devcluster.runtime import DevCluster

    try:
        server = DevCluster(nodes=args.nodes, kubelet=args.kubelet, state_dir=args.state_dir, seed=args.seed,
                            extended_resource_toleration=args.extended_resource_toleration)
    except (ValueError, OSError) as e:
        print(f"jhplatform devcluster: {e}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start(args.host, args.port)
    except OSError as e:
        print(f"jhplatform devcluster: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        await server.stop()
        return 2
    try:
        if args.sample:
            server.apply(sample_manifests())
        # HTTPS, so that kubectl sends the token (it sends none over plain HTTP).
        server.write_kubeconfig(args.kubeconfig, namespace=SAMPLE_NAMESPACE if args.sample else "default", tls=True)
        for namespace, name, path in args.serviceaccount_kubeconfig:
            if server.cluster.store.find("namespaces", "", namespace) is None:
                print(f"jhplatform devcluster: cannot write a kubeconfig for ServiceAccount {namespace}:{name}: "
                      f"namespace {namespace!r} does not exist (use --sample for '{SAMPLE_NAMESPACE}')", file=sys.stderr)
                return 2
            server.service_account_kubeconfig(path, namespace, name, tls=True)
            print(f"kubeconfig for system:serviceaccount:{namespace}:{name} written to {path}", flush=True)
        print(
            f"devcluster ready at {server.url} (kubelet: {args.kubelet}); kubeconfig written to {args.kubeconfig}",
            flush=True,
        )
        await stop.wait()
    finally:
        await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jhplatform", description="jhplatform command-line tools")
    sub = parser.add_subparsers(dest="command", required=True)
    _devcluster_parser(sub)
    orphaned_claims.add_parser(sub)
    values_check.add_parsers(sub)
    from . import demo  # it imports this module's sample_manifests

    demo.add_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(args, "log_level", "WARNING").upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "devcluster":
        return asyncio.run(_run_devcluster(args))
    if args.command == "orphaned-claims":
        return asyncio.run(orphaned_claims.run(args))
    if args.command == "check":
        return values_check.run_check(args)
    if args.command == "render":
        return values_check.run_render(args)
    if args.command == "demo":
        return demo.run(args)
    parser.error(f"unknown command {args.command}")
    return 2

