"""``jhplatform orphaned-claims``: home claims whose hub user no longer exists.

PlatformSpawner keeps a user's home claim when the user is deleted (``delete_pvc`` is False by
default), so a mistaken deletion loses nothing. The price is claims that nobody owns any more;
this command finds them so an admin can archive (snapshot, copy) and then delete them. It only
reads: it never deletes anything.

It asks the hub for every user (``GET /hub/api/users``, paginated) and Kubernetes for every home
claim (label ``component=singleuser-storage``) in the namespace, and lists the claims whose
``hub.jupyter.org/username`` names no hub user. The decision is
:func:`jhplatform.policy.storage.orphaned_claims`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp

from ..policy import storage

PAGINATION_MEDIA_TYPE = "application/jupyterhub-pagination+json"
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
PAGE_LIMIT = 200


class CommandError(Exception):
    """Something the admin has to fix; the message says what."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "orphaned-claims",
        help="list home volume claims whose hub user no longer exists",
        description="List the home PersistentVolumeClaims (label component=singleuser-storage) whose "
        "hub.jupyter.org/username names a user the hub no longer has, with their size and age, so "
        "they can be archived or removed. Read-only: nothing is deleted. The token needs the "
        "list:users scope (e.g. a hub service with a role granting it).",
    )
    p.add_argument("--hub-url", required=True, help="the hub's URL, e.g. https://jupyter.example.org or http://hub:8081")
    p.add_argument(
        "--token",
        default=os.environ.get("JUPYTERHUB_API_TOKEN"),
        help="hub API token with the list:users scope (default: $JUPYTERHUB_API_TOKEN)",
    )
    p.add_argument("--namespace", default=None, help="namespace of the user claims (default: the kubeconfig context's, else in-cluster, else 'default')")
    p.add_argument("--kubeconfig", type=Path, default=None, help="kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def users_url(hub_url: str) -> str:
    """``.../hub/api/users`` for a hub URL given with or without ``/hub`` or ``/hub/api``."""
    base = hub_url.rstrip("/")
    for suffix in ("/hub/api", "/hub"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return f"{base}/hub/api/users"


async def hub_usernames(hub_url: str, token: str, session: aiohttp.ClientSession | None = None) -> list[str]:
    """Every user name the hub has, following JupyterHub's pagination."""
    url = users_url(hub_url)
    headers = {"Authorization": f"token {token}", "Accept": PAGINATION_MEDIA_TYPE}
    own = session is None
    session = session or aiohttp.ClientSession()
    names: list[str] = []
    offset = 0
    try:
        while True:
            try:
                async with session.get(url, params={"offset": str(offset), "limit": str(PAGE_LIMIT)}, headers=headers) as r:
                    text = await r.text()
                    if r.status in (401, 403):
                        raise CommandError(
                            f"the hub refused the token ({r.status}) for GET {url}: it needs the list:users "
                            "scope (give the service or user a role with scopes: [list:users])"
                        )
                    if r.status != 200:
                        raise CommandError(f"GET {url} returned {r.status}: {text[:200]}")
                    data = json.loads(text)
            except aiohttp.ClientError as e:
                raise CommandError(f"cannot reach the hub at {url}: {e}") from e
            if isinstance(data, list):  # a hub without pagination support: everything at once
                return [u["name"] for u in data]
            names.extend(u["name"] for u in data.get("items") or [])
            following = (data.get("_pagination") or {}).get("next")
            if not following:
                return names
            offset = int(following["offset"])
    finally:
        if own:
            await session.close()


def _kubeconfig_file(explicit: Path | None) -> str | None:
    if explicit is not None:
        if not explicit.exists():
            raise CommandError(f"kubeconfig {explicit} does not exist")
        return str(explicit)
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    default = Path("~/.kube/config").expanduser()
    return str(default) if default.exists() else None


async def list_home_claims(namespace: str | None, kubeconfig: Path | None) -> tuple[str, list[dict]]:
    """The namespace used and its home claims (API form)."""
    from kubernetes_asyncio import client, config

    config_file = _kubeconfig_file(kubeconfig)
    configuration = client.Configuration()
    if config_file is not None:
        await config.load_kube_config(config_file=config_file, client_configuration=configuration, persist_config=False)
        if namespace is None:
            _, current = config.list_kube_config_contexts(config_file)
            namespace = ((current or {}).get("context") or {}).get("namespace")
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)
        if namespace is None and IN_CLUSTER_NAMESPACE.exists():
            namespace = IN_CLUSTER_NAMESPACE.read_text().strip()
    else:
        raise CommandError("no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, or run inside the cluster")
    namespace = namespace or "default"
    async with client.ApiClient(configuration) as api_client:
        api = client.CoreV1Api(api_client)
        try:
            result = await api.list_namespaced_persistent_volume_claim(namespace, label_selector=f"component={storage.HOME_COMPONENT}")
        except client.exceptions.ApiException as e:
            raise CommandError(f"cannot list PersistentVolumeClaims in namespace {namespace!r}: {e.status} {e.reason}") from e
        except aiohttp.ClientError as e:
            raise CommandError(f"cannot reach the Kubernetes API: {e}") from e
        return namespace, api_client.sanitize_for_serialization(result).get("items") or []


def _label_slug(name: str) -> str:
    from kubespawner.slugs import is_valid_label, safe_slug

    return safe_slug(name, is_valid=is_valid_label)


def render_table(orphans: list[storage.OrphanedClaim], now=None) -> str:
    rows = [("CLAIM", "USER", "SERVER", "SIZE", "AGE")]
    rows += [(o.name, o.user, o.server or "-", o.size or "?", storage.format_age(o.created, now)) for o in orphans]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


async def run(args: argparse.Namespace, out=sys.stdout, err=sys.stderr) -> int:
    if not args.token:
        print("jhplatform orphaned-claims: --token is required (or set JUPYTERHUB_API_TOKEN)", file=err)
        return 2
    try:
        users = await hub_usernames(args.hub_url, args.token)
        namespace, claims = await list_home_claims(args.namespace, args.kubeconfig)
    except CommandError as e:
        print(f"jhplatform orphaned-claims: {e}", file=err)
        return 2
    if not users and claims:
        print(
            "jhplatform orphaned-claims: warning: the hub returned no users, so every claim is listed; "
            "check that the token's role has the list:users scope for all users.",
            file=err,
        )
    orphans = storage.orphaned_claims(claims, users, slug=_label_slug)
    if args.json:
        items: list[dict[str, Any]] = [{**o.as_dict(), "age": storage.format_age(o.created)} for o in orphans]
        print(json.dumps(items, indent=2), file=out)
        return 0
    if not orphans:
        print(f"No orphaned home claims in namespace {namespace!r} ({len(claims)} home claims, {len(users)} hub users).", file=out)
        return 0
    print(render_table(orphans), file=out)
    print(
        f"\n{len(orphans)} of {len(claims)} home claims in namespace {namespace!r} belong to no hub user. "
        "Archive what you need, then delete with: kubectl delete pvc -n NAMESPACE CLAIM",
        file=out,
    )
    return 0


__all__ = ["CommandError", "add_parser", "hub_usernames", "list_home_claims", "render_table", "run", "users_url"]
