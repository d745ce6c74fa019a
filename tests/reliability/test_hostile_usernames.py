"""Hostile usernames through a real hub: PlatformSpawner with home volumes on the emulator.

JupyterHub 5.5 and configurable-http-proxy with PlatformSpawner (``storage_pvc_ensure``, the home
claim ``{pvc_name}`` mounted at /home/jovyan), as z2jh's singleuser storage sets it up. Users are
created and spawned through the REST API; names are URL-quoted in paths as any client must.

The names: unicode (accents, CJK, emoji), 253 characters, dots, upper case, names that differ
only by case, and names that differ only by characters a slug drops (``a.b``, ``a-b``, ``a_b``,
``a+b``, ``a@b``), plus names that are another name's KubeSpawner < 7 ("escape") slug
(``a-2eb`` is how KubeSpawner 6 wrote ``a.b``). CI size: the dozen-odd names below and one
colliding pair with real notebook servers; full size: a few hundred names from a seeded
generator as well, and three pairs.

We test these aspects:
- every pod name is a DNS-1123 label and every claim name a DNS-1123 subdomain, and every label
  value KubeSpawner/PlatformSpawner writes on pods and claims is a valid label value (the
  Kubernetes rules, written out below); the emulator validates names too, and no request was
  answered 422;
- pod names, claim names and ``hub.jupyter.org/username`` label values are unique across users;
- each pod mounts exactly one claim, its own (annotated for the pod's user), and no claim is
  mounted by two pods;
- names that differ only by case are one user: JupyterHub lower-cases names when it creates
  users, the REST API then knows the user only by the lower-case name (another case is a 404),
  and one server and one claim exist;
- a colliding pair with real ``jupyterhub-singleuser`` servers (the emulator's process kubelet):
  the user whose new-scheme claim name is the other's old-scheme name spawns first and writes a
  file; the other user's server does not see it (its home is another claim), and neither user
  can reach the other's server with their own token (the server's hub OAuth answers 403).
  (This found a bug: the older-name lookup handed ``a.b`` the claim of ``a-2eb``; fixed in
  jhplatform/spawner/storage.py with ``claim_owner_conflict``.)
"""

from __future__ import annotations

import asyncio
import random
import re
from urllib.parse import quote

import pytest

from helpers import reliability_size, wait_for
from hubrbac import HUB_NAMESPACE, HUB_SERVICE_ACCOUNT
from hubstack import HubStack
from jhplatform.devcluster.nodes import parse_nodes

pytestmark = [pytest.mark.contract, pytest.mark.reliability]

NS = "default"

# Kubernetes' rules (k8s.io/apimachinery/pkg/util/validation/validation.go, and
# https://kubernetes.io/docs/concepts/overview/working-with-objects/names/ and .../labels/):
# - IsDNS1123Label: at most 63 characters, lower-case alphanumerics and '-', starting and ending
#   with an alphanumeric. Pod names must be one here: the pod's hostname is its name, and
#   KubeSpawner names the pod's Service after it (Service names are RFC 1035 labels, which also
#   must start with a letter).
# - IsDNS1123Subdomain: at most 253 characters, DNS-1123 labels joined by '.'. What a
#   PersistentVolumeClaim name must be.
# - IsValidLabelValue: at most 63 characters, empty or alphanumerics, '-', '_' and '.', starting
#   and ending with an alphanumeric.
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_LABEL_MAX = 63
RFC1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS1123_SUBDOMAIN_MAX = 253
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
LABEL_VALUE_MAX = 63

#: Names as people and identity providers send them (before the hub's normalisation).
NAMES = [
    "émile", "zoë-o'brien", "渡辺", "数据科学家", "🚀rocket", "a" * 253,
    "a-2eb", "first.last", "Upper.Case", "a.b", "a-b", "a_b", "a+b", "a@b",
]
#: Names that differ only by case: JupyterHub makes them one user.
CASE_VARIANTS = ["Zoë", "ZOË", "zoë"]
#: (spawns first, spawns second): the first one's KubeSpawner 7 claim name is the second one's
#: KubeSpawner 6 ("escape" slug scheme) claim name.
PAIRS = reliability_size(ci=[("a-2eb", "a.b")], full=[("a-2eb", "a.b"), ("a-2db", "a-b"), ("x-5fy", "x_y")])
GENERATED = reliability_size(ci=0, full=300)

STORAGE_CONFIG = """
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.storage_capacity = "1Gi"
c.KubeSpawner.volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]
c.KubeSpawner.volume_mounts = [{"name": "home", "mountPath": "/home/jovyan"}]
c.KubeSpawner.working_dir = "/home/jovyan"
c.KubeSpawner.start_timeout = 60
c.JupyterHub.concurrent_spawn_limit = 0
"""


def generated_names(n: int, seed: int = 15) -> list[str]:
    """``n`` hostile names from a seeded generator: mixed scripts, separators, case, lengths."""
    rng = random.Random(seed)
    alphabets = ["abcxyz", "ABCXYZ", "0123456789", ".-_+@~'", "éüñøåç", "ÉÜÑØ", "漢字データ科学", "ßαβγδ", "🚀🐍🎉"]
    out: list[str] = []
    while len(out) < n:
        length = rng.choice([1, 2, 3, 8, 20, 40, 63, 64, 100, 253])
        name = "".join(rng.choice(rng.choice(alphabets)) for _ in range(length))
        # What JupyterHub refuses (validate_username): empty, only dots, or '/'; and characters
        # whose lower case is longer (the hub would create a different-looking name).
        if set(name) <= {"."} or len(name.lower()) != len(name):
            continue
        out.append(name)
    return out


def user_path(name: str) -> str:
    return f"/users/{quote(name, safe='')}"


async def create(hub: HubStack, names: list[str]) -> list[dict]:
    status, body = await hub.request("POST", "/users", {"usernames": names})
    assert status == 201, body
    return body


async def hub_user_names(hub: HubStack) -> set[str]:
    """Every user the hub has, page by page (the hub answers at most 200 per request)."""
    names: set[str] = set()
    while True:
        status, page = await hub.request("GET", f"/users?offset={len(names)}&limit=200")
        assert status == 200, page
        names |= {m["name"] for m in page}
        if len(page) < 200:
            return names


async def start_all(hub: HubStack, names: list[str], batch: int = 25) -> None:
    for i in range(0, len(names), batch):
        chunk = names[i:i + batch]
        results = await asyncio.gather(*(hub.request("POST", user_path(n) + "/server") for n in chunk))
        bad = [(n, r) for n, r in zip(chunk, results) if r[0] not in (201, 202)]
        assert not bad, (bad, hub.log_tail())
        await asyncio.gather(*(hub.wait_ready(quote(n, safe="")) for n in chunk))


def labels_and_names(cluster) -> tuple[list[dict], list[dict]]:
    return cluster.cluster.store.list("pods", NS), cluster.cluster.store.list("persistentvolumeclaims", NS)


def problems_with(pods: list[dict], claims: list[dict]) -> list[str]:
    """Every name and label value that breaks the Kubernetes rules."""
    found = []
    for pod in pods:
        name = pod["metadata"]["name"]
        if not (DNS1123_LABEL.fullmatch(name) and RFC1035_LABEL.fullmatch(name) and len(name) <= DNS1123_LABEL_MAX):
            found.append(f"pod name {name!r}")
    for claim in claims:
        name = claim["metadata"]["name"]
        if not (DNS1123_SUBDOMAIN.fullmatch(name) and len(name) <= DNS1123_SUBDOMAIN_MAX):
            found.append(f"claim name {name!r}")
    for obj in pods + claims:
        for key, value in (obj["metadata"].get("labels") or {}).items():
            if not (LABEL_VALUE.fullmatch(value) and len(value) <= LABEL_VALUE_MAX):
                found.append(f"label {key}={value!r} on {obj['metadata']['name']}")
    return found


def check_pods_and_claims(cluster, users: set[str]) -> None:
    pods, claims = labels_and_names(cluster)
    # Claims of earlier users (kept when servers stop) are not this check's business.
    claims = [c for c in claims if c["metadata"]["annotations"]["hub.jupyter.org/username"] in users]
    assert problems_with(pods, claims) == []
    by_user = {p["metadata"]["annotations"]["hub.jupyter.org/username"]: p for p in pods}
    assert set(by_user) == users and len(pods) == len(users), "one pod per user"
    assert len({p["metadata"]["name"] for p in pods}) == len(pods)
    assert len({c["metadata"]["name"] for c in claims}) == len(claims) == len(users)
    assert len({p["metadata"]["labels"]["hub.jupyter.org/username"] for p in pods}) == len(users)
    owner = {c["metadata"]["name"]: c["metadata"]["annotations"]["hub.jupyter.org/username"] for c in claims}
    mounted = []
    for user, pod in by_user.items():
        names = [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if v.get("persistentVolumeClaim")]
        assert len(names) == 1 and owner.get(names[0]) == user, (user, names)
        mounted += names
    assert len(set(mounted)) == len(mounted), "no claim mounted by two pods"
    rejected = [e for e in cluster.requests if e.get("status") == 422]
    assert rejected == [], rejected


async def stop_all(hub: HubStack, cluster, names: list[str]) -> None:
    for i in range(0, len(names), 50):
        results = await asyncio.gather(*(hub.request("DELETE", user_path(n) + "/server") for n in names[i:i + 50]))
        assert all(status in (202, 204) for status, _ in results), results
    await wait_for(lambda: not cluster.cluster.store.list("pods", NS), 60, 0.2, message="all pods gone")


@pytest.fixture
async def hub(cluster, tmp_path, chp_path, notebook_stub):
    config = STORAGE_CONFIG + f'c.KubeSpawner.get_pod_url = lambda spawner, pod: "http://127.0.0.1:{notebook_stub}"\n'
    kubeconfig = cluster.write_serviceaccount_kubeconfig(tmp_path / "kubeconfig", HUB_NAMESPACE, HUB_SERVICE_ACCOUNT)
    stack = HubStack(tmp_path, kubeconfig, config, spawner_class="jhplatform")
    await stack.start()
    try:
        yield stack
    finally:
        await stack.stop()


async def test_names_labels_and_claims_are_valid_unique_and_own(hub, cluster):
    # The default pool fits 220 user pods (2 CPU nodes of 110 pods; the GPU nodes are tainted):
    # add nodes so every generated user's pod can run at the full size.
    for node in parse_nodes(f"hostilex{1 + GENERATED // 110}:cpu=64,memory=256Gi,pods=110"):
        cluster.cluster.create("nodes", None, node)
    names = NAMES + generated_names(GENERATED)
    names = list(dict.fromkeys(n.lower() for n in names))  # as the hub will store them
    users = set(names)
    for i in range(0, len(names), 100):
        created = await create(hub, names[i:i + 100])
        assert {u["name"] for u in created} <= users
    assert await hub_user_names(hub) == users
    # "a-2eb" first: its claim name is "a.b"'s older name (see the module docstring).
    await start_all(hub, names[:1])
    await start_all(hub, names[1:])
    check_pods_and_claims(cluster, users)
    await stop_all(hub, cluster, names)
    assert len(cluster.cluster.store.list("persistentvolumeclaims", NS)) == len(users), "stopping keeps every claim"


async def test_names_differing_only_by_case_are_one_user(hub, cluster):
    created = await create(hub, CASE_VARIANTS)
    # JupyterHub lower-cases each name (Authenticator.normalize_username) and answers with the
    # user once per name given: all three are the same user.
    assert [u["name"] for u in created] == ["zoë"] * 3
    status, models = await hub.request("GET", "/users")
    assert [m["name"] for m in models if m["name"].lower() == "zoë"] == ["zoë"]
    # The REST API does not normalise names in paths: only the stored, lower-case name exists.
    for variant in ("Zoë", "ZOË"):
        status, _ = await hub.request("GET", user_path(variant))
        assert status == 404, variant
        status, _ = await hub.request("POST", user_path(variant) + "/server")
        assert status == 404, variant
    status, _ = await hub.request("POST", user_path("zoë") + "/server")
    assert status in (201, 202)
    await hub.wait_ready(quote("zoë", safe=""))
    check_pods_and_claims(cluster, {"zoë"})


# -- a colliding pair with real notebook servers ------------------------------------------------


@pytest.fixture
async def process_hub(process_cluster, tmp_path, chp_path):
    kubeconfig = process_cluster.write_serviceaccount_kubeconfig(tmp_path / "kubeconfig", HUB_NAMESPACE, HUB_SERVICE_ACCOUNT)
    stack = HubStack(tmp_path, kubeconfig, STORAGE_CONFIG, spawner_class="jhplatform")
    await stack.start()
    try:
        yield stack
    finally:
        await stack.stop()


class Person:
    """A hub user with their own API token, reaching servers through the proxy."""

    def __init__(self, hub: HubStack, name: str):
        self.hub, self.name, self.token = hub, name, None

    async def start(self) -> None:
        await create(self.hub, [self.name])
        status, body = await self.hub.request("POST", user_path(self.name) + "/server")
        assert status in (201, 202), (body, self.hub.log_tail())
        await self.hub.wait_ready(quote(self.name, safe=""), timeout=60)
        status, model = await self.hub.request("POST", user_path(self.name) + "/tokens", {"note": "hostile names"})
        assert status == 201, model
        self.token = model["token"]

    def contents(self, owner: str, path: str = "") -> str:
        return f"/user/{quote(owner, safe='')}/api/contents/{path}"

    async def write(self, path: str, text: str):
        return await self.hub.request("PUT", self.contents(self.name, path), {"type": "file", "format": "text", "content": text},
                                      token=self.token, base=self.hub.url)

    async def listing(self, owner: str | None = None):
        return await self.hub.request("GET", self.contents(owner or self.name), token=self.token, base=self.hub.url)


async def test_colliding_pair_cannot_reach_each_other(process_hub, process_cluster):
    hub = process_hub
    for first_name, second_name in PAIRS:
        first, second = Person(hub, first_name), Person(hub, second_name)
        await first.start()
        status, _ = await first.write(f"private-{first_name}.txt", f"only {first_name} may read this\n")
        assert status in (200, 201)
        await second.start()

        pods = {p["metadata"]["annotations"]["hub.jupyter.org/username"]: p for p in process_cluster.cluster.store.list("pods", NS)}
        claim_of = {u: [v["persistentVolumeClaim"]["claimName"] for v in pods[u]["spec"]["volumes"] if v.get("persistentVolumeClaim")]
                    for u in (first_name, second_name)}
        assert claim_of[first_name] != claim_of[second_name], claim_of
        assert "not using claim" in hub.log_path.read_text(), "the older-name candidate was looked at and refused"

        status, listing = await second.listing()
        assert status == 200, listing
        assert f"private-{first_name}.txt" not in [item["name"] for item in listing["content"]]
        claim_dir = process_cluster.state_dir / "volumes" / NS
        assert not (claim_dir / claim_of[second_name][0] / f"private-{first_name}.txt").exists()
        assert (claim_dir / claim_of[first_name][0] / f"private-{first_name}.txt").exists()

        # Each user's token is refused by the other's server (hub OAuth: no access:servers there).
        status, body = await second.listing(first_name)
        assert status == 403, (status, body)
        status, body = await first.listing(second_name)
        assert status == 403, (status, body)
        check_pods_and_claims(process_cluster, {first_name, second_name})
        await stop_all(hub, process_cluster, [first_name, second_name])
