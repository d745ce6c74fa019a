"""RBAC over HTTP: the emulator authenticates and authorises every request like an apiserver.

We test these aspects:
- a ServiceAccount bound by a RoleBinding in one namespace may list there and is refused in
  another, with the apiserver's 403 body byte for byte (Content-Type application/json), and the
  kubernetes_asyncio client sees the same status and body;
- a named request, a subresource (``pods/log``), a cluster-scoped list and a named group are
  refused with their own message forms; the refusal is in the request log with status 403;
- a RoleBinding to a ClusterRole grants it in the binding's namespace only; a binding to a
  missing Role is refused with the ``RBAC: role... not found`` reason;
- a token nobody issued is 401 with the apiserver's body; no token is ``system:anonymous``, who
  may read ``/version`` but not discovery; the admin token may do everything;
- SelfSubjectAccessReview over HTTP (JSON) answers for the caller, 201, nothing stored;
- RBAC objects are validated over HTTP (422 with the field), and NetworkPolicies are stored.
"""

from __future__ import annotations

import json

import aiohttp
import pytest
from kubernetes_asyncio import client, config

pytestmark = pytest.mark.contract

SA = ("team-a", "robot")
USER = 'User \\"system:serviceaccount:team-a:robot\\"'
READ_PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}


def status_body(message: str, details: str) -> str:
    return ('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"' + message
            + '","reason":"Forbidden","details":' + details + ',"code":403}')


@pytest.fixture
async def api(cluster):
    c = cluster.cluster
    for ns in ("team-a", "team-b"):
        c.create("namespaces", None, {"metadata": {"name": ns}})
    c.create("serviceaccounts", "team-a", {"metadata": {"name": "robot"}})
    c.create("roles", "team-a", {"metadata": {"name": "read-pods"}, "rules": [READ_PODS]})
    c.create("rolebindings", "team-a", {"metadata": {"name": "robot"}, "subjects": [{"kind": "ServiceAccount", "name": "robot"}],
                                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-pods"}})
    token = cluster.tokens.issue(*SA)

    async def call(method: str, path: str, body=None, token: str | None = token):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as session:
            async with session.request(method, cluster.url + path, json=body, headers=headers) as resp:
                return resp.status, resp.headers.get("Content-Type"), await resp.text()

    return call


async def test_allowed_in_one_namespace_refused_in_another(cluster, api):
    status, _, text = await api("GET", "/api/v1/namespaces/team-a/pods")
    assert status == 200 and json.loads(text)["kind"] == "PodList"
    status, ctype, text = await api("GET", "/api/v1/namespaces/team-b/pods")
    assert (status, ctype) == (403, "application/json")
    assert text == status_body(f'pods is forbidden: {USER} cannot list resource \\"pods\\" in API group \\"\\" in the namespace \\"team-b\\"',
                               '{"kind":"pods"}')
    assert cluster.requests[-1] == {"method": "GET", "path_qs": "/api/v1/namespaces/team-b/pods", "verb": "list", "resource": "pods",
                                    "namespace": "team-b", "name": None, "subresource": None, "status": 403,
                                    "user": "system:serviceaccount:team-a:robot"}

    path = cluster.write_serviceaccount_kubeconfig(cluster.state_dir / "robot.kubeconfig", *SA)
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(path), client_configuration=cfg)
    async with client.ApiClient(configuration=cfg) as api_client:
        core = client.CoreV1Api(api_client)
        assert (await core.list_namespaced_pod("team-a")).items == []
        with pytest.raises(client.ApiException) as info:
            await core.list_namespaced_pod("team-b")
        assert info.value.status == 403 and info.value.body == text


REFUSALS = [
    ("named", "GET", "/api/v1/namespaces/team-a/secrets/s1",
     status_body(f'secrets \\"s1\\" is forbidden: {USER} cannot get resource \\"secrets\\" in API group \\"\\" in the namespace \\"team-a\\"',
                 '{"name":"s1","kind":"secrets"}')),
    ("subresource", "GET", "/api/v1/namespaces/team-a/pods/p/log",
     status_body(f'pods \\"p\\" is forbidden: {USER} cannot get resource \\"pods/log\\" in API group \\"\\" in the namespace \\"team-a\\"',
                 '{"name":"p","kind":"pods"}')),
    ("cluster-scope", "GET", "/api/v1/nodes",
     status_body(f'nodes is forbidden: {USER} cannot list resource \\"nodes\\" in API group \\"\\" at the cluster scope', '{"kind":"nodes"}')),
    ("named-group", "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/roles",
     status_body(f'roles.rbac.authorization.k8s.io is forbidden: {USER} cannot create resource \\"roles\\" in API group '
                 '\\"rbac.authorization.k8s.io\\" in the namespace \\"team-a\\"', '{"group":"rbac.authorization.k8s.io","kind":"roles"}')),
    ("verb", "DELETE", "/api/v1/namespaces/team-a/pods/p",
     status_body(f'pods \\"p\\" is forbidden: {USER} cannot delete resource \\"pods\\" in API group \\"\\" in the namespace \\"team-a\\"',
                 '{"name":"p","kind":"pods"}')),
]


@pytest.mark.parametrize("method,path,body", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
async def test_refusal_forms(api, method, path, body):
    status, _, text = await api(method, path, {"metadata": {"name": "x"}} if method == "POST" else None)
    assert (status, text) == (403, body)


async def test_cluster_role_through_role_binding_and_missing_role(cluster, api):
    c = cluster.cluster
    c.create("clusterroles", None, {"metadata": {"name": "read-secrets"},
                                    "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]})
    for ns in ("team-a", "team-b"):
        c.create("rolebindings", ns, {"metadata": {"name": "secrets"}, "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "team-a"}],
                                      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole" if ns == "team-a" else "Role",
                                                  "name": "read-secrets"}})
    assert (await api("GET", "/api/v1/namespaces/team-a/secrets"))[0] == 200
    status, _, text = await api("GET", "/api/v1/namespaces/team-b/secrets")
    assert status == 403 and json.loads(text)["message"].endswith(
        'in the namespace "team-b": RBAC: role.rbac.authorization.k8s.io "read-secrets" not found')
    assert (await api("GET", "/api/v1/secrets"))[0] == 403, "a RoleBinding never grants at the cluster scope"


async def test_authentication(cluster, api):
    status, _, text = await api("GET", "/api/v1/namespaces/team-a/pods", token="forged")
    assert (status, text) == (401, '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized",'
                                   '"reason":"Unauthorized","code":401}')
    assert (await api("GET", "/version", token=None))[0] == 200
    status, _, text = await api("GET", "/api", token=None)
    assert (status, json.loads(text)["message"]) == (403, 'forbidden: User "system:anonymous" cannot get path "/api"')
    assert (await api("GET", "/api", token=cluster.tokens.admin_token))[0] == 200
    assert (await api("GET", "/api/v1/nodes", token=cluster.tokens.admin_token))[0] == 200
    assert (await api("GET", "/apis/rbac.authorization.k8s.io/v1"))[0] == 200, "discovery for every authenticated user"


async def test_access_review(cluster, api):
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": {"namespace": "team-a", "verb": "watch", "resource": "pods"}}}
    status, _, text = await api("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review)
    assert status == 201
    assert json.loads(text)["status"] == {"allowed": True, "reason": 'RBAC: allowed by RoleBinding "robot/team-a" of Role "read-pods" to '
                                                                     'ServiceAccount "robot/team-a"'}
    review["spec"]["resourceAttributes"]["namespace"] = "team-b"
    assert json.loads((await api("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review))[2])["status"] == {"allowed": False}
    assert cluster.cluster.store.count("selfsubjectaccessreviews") == 0
    status, _, text = await api("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {"spec": {}})
    assert status == 422


async def test_validation_and_network_policies(cluster, api):
    admin = cluster.tokens.admin_token
    bad = {"metadata": {"name": "b"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
           "subjects": [{"kind": "ServiceAccount", "name": "robot"}]}
    status, _, text = await api("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", bad, token=admin)
    assert status == 422
    assert json.loads(text)["message"] == ('ClusterRoleBinding "b" is invalid: [roleRef.kind: Unsupported value: "Role": supported values: '
                                           '"ClusterRole", subjects[0].namespace: Required value]')
    policy = {"metadata": {"name": "deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    status, _, text = await api("POST", "/apis/networking.k8s.io/v1/namespaces/team-a/networkpolicies", policy, token=admin)
    assert status == 201 and json.loads(text)["apiVersion"] == "networking.k8s.io/v1"
    assert cluster.cluster.get("networkpolicies", "team-a", "deny")["spec"]["policyTypes"] == ["Ingress"]
