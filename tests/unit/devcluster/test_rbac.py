"""RBAC in the emulator (``jhplatform.devcluster.rbac``), without HTTP.

We test these aspects:

- request attributes as the apiserver derives them from method, path and query: get/list/watch,
  create/update/patch/delete/deletecollection, namespaced and cluster-scoped paths, a namespace
  object's own path, subresources (``pods/log``, ``pods/status``), named API groups, the
  ``metadata.name`` field selector naming the object, and discovery paths as non-resource URLs;
- rule matching as a table: verbs (incl. ``*``), apiGroups (incl. ``*``), resources with
  subresources and ``*/subresource``, resourceNames (which never match list/watch/create),
  nonResourceURLs with and without a trailing ``*``;
- subjects: User, Group, ServiceAccount with and without a namespace on a RoleBinding or a
  ClusterRoleBinding;
- the authorizer: a Role bound in one namespace allows there and not in another; a RoleBinding
  to a ClusterRole grants it only in the binding's namespace; a ClusterRoleBinding grants
  everywhere; ``system:masters`` is allowed everything; a binding to a missing role adds the
  apiserver's ``RBAC: role... not found`` reason; the bootstrap policy lets authenticated users
  read discovery and create access reviews, anonymous users only ``/version`` and health;
- the forbidden message and Status body, byte for byte, for list, named get, subresource,
  cluster scope, a named group and a non-resource path; 401's body;
- validation of Roles, bindings and names, and the immutable roleRef;
- SelfSubjectAccessReview answers and its refusal without attributes.
"""

from __future__ import annotations

import pytest

from jhplatform.devcluster import errors, rbac, validation
from jhplatform.devcluster.cluster import Cluster
from jhplatform.devcluster.rbac import Attributes, UserInfo, request_attributes, rule_allows

HUB = UserInfo.service_account("jhub", "hub")
ALICE = UserInfo("alice", ("devs", rbac.AUTHENTICATED))
ADMIN = UserInfo("system:admin", (rbac.MASTERS, rbac.AUTHENTICATED))


def res(verb, resource, namespace="jhub", name="", subresource="", group=""):
    return Attributes(verb=verb, resource_request=True, api_group=group, api_version="v1", namespace=namespace,
                      resource=resource, subresource=subresource, name=name)


def url(verb, path):
    return Attributes(verb=verb, resource_request=False, path=path)


# -- request attributes ---------------------------------------------------------------------------

ATTRIBUTE_CASES = [
    ("list-pods", "GET", "/api/v1/namespaces/jhub/pods", {}, ("list", "", "jhub", "pods", "", "")),
    ("watch-pods-True", "GET", "/api/v1/namespaces/jhub/pods", {"watch": "True"}, ("watch", "", "jhub", "pods", "", "")),
    ("watch-false-is-list", "GET", "/api/v1/namespaces/jhub/pods", {"watch": "false"}, ("list", "", "jhub", "pods", "", "")),
    ("get-pod", "GET", "/api/v1/namespaces/jhub/pods/jupyter-ada", {}, ("get", "", "jhub", "pods", "", "jupyter-ada")),
    ("pod-log", "GET", "/api/v1/namespaces/jhub/pods/jupyter-ada/log", {}, ("get", "", "jhub", "pods", "log", "jupyter-ada")),
    ("pod-status-put", "PUT", "/api/v1/namespaces/jhub/pods/p/status", {}, ("update", "", "jhub", "pods", "status", "p")),
    ("create", "POST", "/api/v1/namespaces/jhub/pods", {}, ("create", "", "jhub", "pods", "", "")),
    ("patch-pvc", "PATCH", "/api/v1/namespaces/jhub/persistentvolumeclaims/claim-ada", {},
     ("patch", "", "jhub", "persistentvolumeclaims", "", "claim-ada")),
    ("delete", "DELETE", "/api/v1/namespaces/jhub/pods/p", {}, ("delete", "", "jhub", "pods", "", "p")),
    ("deletecollection", "DELETE", "/api/v1/namespaces/jhub/pods", {}, ("deletecollection", "", "jhub", "pods", "", "")),
    ("all-namespaces", "GET", "/api/v1/pods", {}, ("list", "", "", "pods", "", "")),
    ("nodes", "GET", "/api/v1/nodes", {}, ("list", "", "", "nodes", "", "")),
    ("namespace-object", "GET", "/api/v1/namespaces/jhub", {}, ("get", "", "jhub", "namespaces", "", "jhub")),
    ("namespace-status", "PUT", "/api/v1/namespaces/jhub/status", {}, ("update", "", "jhub", "namespaces", "status", "jhub")),
    ("named-group", "GET", "/apis/rbac.authorization.k8s.io/v1/namespaces/jhub/roles", {},
     ("list", "rbac.authorization.k8s.io", "jhub", "roles", "", "")),
    ("field-selector-name", "GET", "/api/v1/namespaces/jhub/pods", {"fieldSelector": "metadata.name=p", "watch": "1"},
     ("watch", "", "jhub", "pods", "", "p")),
    ("other-field-selector", "GET", "/api/v1/namespaces/jhub/events", {"fieldSelector": "involvedObject.kind=Pod"},
     ("list", "", "jhub", "events", "", "")),
]


@pytest.mark.parametrize("method,path,query,expected", [c[1:] for c in ATTRIBUTE_CASES], ids=[c[0] for c in ATTRIBUTE_CASES])
def test_request_attributes(method, path, query, expected):
    a = request_attributes(method, path, query)
    assert a.resource_request
    assert (a.verb, a.api_group, a.namespace, a.resource, a.subresource, a.name) == expected


@pytest.mark.parametrize("path", ["/api", "/api/v1", "/apis", "/apis/rbac.authorization.k8s.io/v1", "/version", "/openapi/v3",
                                  "/healthz"], ids=lambda p: p)
def test_discovery_paths_are_non_resource(path):
    a = request_attributes("GET", path)
    assert not a.resource_request and a.verb == "get" and a.path == path


# -- rule matching -------------------------------------------------------------------------------

CORE_PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
RULE_CASES = [
    ("verb-listed", CORE_PODS, res("list", "pods"), True),
    ("verb-missing", CORE_PODS, res("patch", "pods"), False),
    ("verb-star", {"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}, res("deletecollection", "pods"), True),
    ("group-mismatch", CORE_PODS, res("list", "pods", group="apps"), False),
    ("group-star", {"apiGroups": ["*"], "resources": ["roles"], "verbs": ["get"]},
     res("get", "roles", group="rbac.authorization.k8s.io"), True),
    ("resource-mismatch", CORE_PODS, res("list", "secrets"), False),
    ("resource-star", {"apiGroups": [""], "resources": ["*"], "verbs": ["list"]}, res("list", "secrets"), True),
    ("subresource-needs-own-rule", CORE_PODS, res("get", "pods", name="p", subresource="log"), False),
    ("pods-log", {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}, res("get", "pods", name="p", subresource="log"), True),
    ("pods-log-not-pods", {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}, res("get", "pods", name="p"), False),
    ("star-status", {"apiGroups": [""], "resources": ["*/status"], "verbs": ["update"]},
     res("update", "pods", name="p", subresource="status"), True),
    ("star-status-not-log", {"apiGroups": [""], "resources": ["*/status"], "verbs": ["get"]},
     res("get", "pods", name="p", subresource="log"), False),
    ("resource-star-covers-subresource", {"apiGroups": [""], "resources": ["*"], "verbs": ["get"]},
     res("get", "pods", name="p", subresource="log"), True),
    ("resourcename-match", {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["hub"], "verbs": ["get"]},
     res("get", "configmaps", name="hub"), True),
    ("resourcename-other", {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["hub"], "verbs": ["get"]},
     res("get", "configmaps", name="other"), False),
    ("resourcename-never-list", {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["hub"], "verbs": ["list"]},
     res("list", "configmaps"), False),
    ("resourcename-never-create", {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["hub"], "verbs": ["create"]},
     res("create", "configmaps"), False),
    ("nonresource-exact", {"nonResourceURLs": ["/version"], "verbs": ["get"]}, url("get", "/version"), True),
    ("nonresource-prefix-star", {"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}, url("get", "/apis/rbac.authorization.k8s.io/v1"), True),
    ("nonresource-prefix-not-parent", {"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}, url("get", "/apis"), False),
    ("nonresource-verb", {"nonResourceURLs": ["/version"], "verbs": ["get"]}, url("post", "/version"), False),
    ("nonresource-rule-not-resource", {"nonResourceURLs": ["*"], "verbs": ["*"]}, res("get", "pods"), False),
    ("resource-rule-not-url", {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, url("get", "/version"), False),
]


@pytest.mark.parametrize("rule,attrs,allowed", [c[1:] for c in RULE_CASES], ids=[c[0] for c in RULE_CASES])
def test_rule_matching(rule, attrs, allowed):
    assert rule_allows(attrs, rule) is allowed


SUBJECT_CASES = [
    ("user", {"kind": "User", "name": "alice", "apiGroup": rbac.GROUP}, ALICE, "", True),
    ("user-other", {"kind": "User", "name": "bob", "apiGroup": rbac.GROUP}, ALICE, "", False),
    ("group", {"kind": "Group", "name": "devs", "apiGroup": rbac.GROUP}, ALICE, "", True),
    ("sa", {"kind": "ServiceAccount", "name": "hub", "namespace": "jhub"}, HUB, "", True),
    ("sa-other-namespace", {"kind": "ServiceAccount", "name": "hub", "namespace": "other"}, HUB, "", False),
    ("sa-namespace-from-rolebinding", {"kind": "ServiceAccount", "name": "hub"}, HUB, "jhub", True),
    ("sa-no-namespace-on-clusterrolebinding", {"kind": "ServiceAccount", "name": "hub"}, HUB, "", False),
    ("sa-group", {"kind": "Group", "name": "system:serviceaccounts:jhub", "apiGroup": rbac.GROUP}, HUB, "", True),
]


@pytest.mark.parametrize("subject,user,binding_ns,applies", [c[1:] for c in SUBJECT_CASES], ids=[c[0] for c in SUBJECT_CASES])
def test_subjects(subject, user, binding_ns, applies):
    assert rbac.subject_applies(user, subject, binding_ns) is applies


# -- the authorizer over a store ------------------------------------------------------------------


def role(name, ns, rules, kind="Role"):
    md = {"name": name, **({"namespace": ns} if ns else {})}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": md, "rules": rules}


def binding(name, ns, role_kind, role_name, subjects):
    md = {"name": name, **({"namespace": ns} if ns else {})}
    return {"metadata": md, "roleRef": {"apiGroup": rbac.GROUP, "kind": role_kind, "name": role_name}, "subjects": subjects}


SA_HUB = [{"kind": "ServiceAccount", "name": "hub", "namespace": "jhub"}]


@pytest.fixture
def cluster():
    c = Cluster()
    for ns in ("jhub", "other"):
        c.create("namespaces", None, {"metadata": {"name": ns}})
    for resource, obj in rbac.BOOTSTRAP_POLICY:
        c.create(resource, None, obj)
    return c


def test_role_binding_allows_in_its_namespace_only(cluster):
    cluster.create("roles", "jhub", role("hub", "jhub", [CORE_PODS]))
    cluster.create("rolebindings", "jhub", binding("hub", "jhub", "Role", "hub", SA_HUB))
    authz = rbac.Authorizer(cluster.store)
    allowed = authz.authorize(HUB, res("list", "pods", "jhub"))
    assert allowed.allowed and allowed.reason == 'RBAC: allowed by RoleBinding "hub/jhub" of Role "hub" to ServiceAccount "hub/jhub"'
    assert authz.authorize(HUB, res("list", "pods", "other")) == rbac.Decision(False, "")
    assert not authz.authorize(HUB, res("list", "pods", "")).allowed, "a Role never grants at the cluster scope"


def test_role_binding_to_cluster_role_grants_only_in_binding_namespace(cluster):
    cluster.create("clusterroles", None, role("reader", "", [CORE_PODS], kind="ClusterRole"))
    cluster.create("rolebindings", "jhub", binding("read", "jhub", "ClusterRole", "reader", SA_HUB))
    authz = rbac.Authorizer(cluster.store)
    assert authz.authorize(HUB, res("get", "pods", "jhub", name="p")).allowed
    assert not authz.authorize(HUB, res("get", "pods", "other", name="p")).allowed
    cluster.create("clusterrolebindings", None, binding("read-all", "", "ClusterRole", "reader", SA_HUB))
    assert authz.authorize(HUB, res("get", "pods", "other", name="p")).allowed
    assert authz.authorize(HUB, res("list", "pods", "")).allowed


def test_masters_allowed_everything_even_without_bindings():
    authz = rbac.Authorizer(Cluster().store)
    assert authz.authorize(ADMIN, res("delete", "nodes", "", name="n")).allowed
    assert authz.authorize(ADMIN, url("post", "/anything")).allowed


def test_binding_to_missing_role_gives_the_reason(cluster):
    cluster.create("rolebindings", "jhub", binding("hub", "jhub", "Role", "gone", SA_HUB))
    cluster.create("clusterrolebindings", None, binding("x", "", "ClusterRole", "gone-too", SA_HUB))
    decision = rbac.Authorizer(cluster.store).authorize(HUB, res("list", "pods", "jhub"))
    assert decision == rbac.Decision(False, 'RBAC: [clusterrole.rbac.authorization.k8s.io "gone-too" not found, '
                                            'role.rbac.authorization.k8s.io "gone" not found]')


BOOTSTRAP_CASES = [
    ("authenticated-discovery", HUB, url("get", "/apis/rbac.authorization.k8s.io/v1"), True),
    ("authenticated-openapi", HUB, url("get", "/openapi/v3/api/v1"), True),
    ("authenticated-access-review", HUB, res("create", "selfsubjectaccessreviews", "", group="authorization.k8s.io"), True),
    ("authenticated-no-pods", HUB, res("list", "pods", "jhub"), False),
    ("anonymous-version", rbac.ANONYMOUS_USER, url("get", "/version"), True),
    ("anonymous-healthz", rbac.ANONYMOUS_USER, url("get", "/healthz"), True),
    ("anonymous-no-discovery", rbac.ANONYMOUS_USER, url("get", "/api"), False),
    ("anonymous-no-pods", rbac.ANONYMOUS_USER, res("list", "pods", "default"), False),
]


@pytest.mark.parametrize("user,attrs,allowed", [c[1:] for c in BOOTSTRAP_CASES], ids=[c[0] for c in BOOTSTRAP_CASES])
def test_bootstrap_policy(cluster, user, attrs, allowed):
    assert rbac.Authorizer(cluster.store).authorize(user, attrs).allowed is allowed


# -- messages, byte for byte ----------------------------------------------------------------------

FORBIDDEN_CASES = [
    ("list-in-namespace", res("list", "pods", "jhub"),
     '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods is forbidden: User '
     '\\"system:serviceaccount:jhub:hub\\" cannot list resource \\"pods\\" in API group \\"\\" in the namespace \\"jhub\\"",'
     '"reason":"Forbidden","details":{"kind":"pods"},"code":403}'),
    ("named-get", res("get", "pods", "jhub", name="jupyter-ada"),
     '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \\"jupyter-ada\\" is forbidden: '
     'User \\"system:serviceaccount:jhub:hub\\" cannot get resource \\"pods\\" in API group \\"\\" in the namespace \\"jhub\\"",'
     '"reason":"Forbidden","details":{"name":"jupyter-ada","kind":"pods"},"code":403}'),
    ("subresource", res("get", "pods", "jhub", name="jupyter-ada", subresource="log"),
     '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \\"jupyter-ada\\" is forbidden: '
     'User \\"system:serviceaccount:jhub:hub\\" cannot get resource \\"pods/log\\" in API group \\"\\" in the namespace \\"jhub\\"",'
     '"reason":"Forbidden","details":{"name":"jupyter-ada","kind":"pods"},"code":403}'),
    ("cluster-scope", res("list", "nodes", ""),
     '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"nodes is forbidden: User '
     '\\"system:serviceaccount:jhub:hub\\" cannot list resource \\"nodes\\" in API group \\"\\" at the cluster scope",'
     '"reason":"Forbidden","details":{"kind":"nodes"},"code":403}'),
    ("named-group", res("create", "rolebindings", "jhub", group="rbac.authorization.k8s.io"),
     '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"rolebindings.rbac.authorization.k8s.io '
     'is forbidden: User \\"system:serviceaccount:jhub:hub\\" cannot create resource \\"rolebindings\\" in API group '
     '\\"rbac.authorization.k8s.io\\" in the namespace \\"jhub\\"","reason":"Forbidden",'
     '"details":{"group":"rbac.authorization.k8s.io","kind":"rolebindings"},"code":403}'),
    ("non-resource", url("get", "/metrics"),
     '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"forbidden: User '
     '\\"system:serviceaccount:jhub:hub\\" cannot get path \\"/metrics\\"","reason":"Forbidden","details":{},"code":403}'),
]


@pytest.mark.parametrize("attrs,body", [c[1:] for c in FORBIDDEN_CASES], ids=[c[0] for c in FORBIDDEN_CASES])
def test_forbidden_body(attrs, body):
    assert rbac.forbidden(HUB, attrs).body() == body


def test_forbidden_with_reason_and_unauthorized():
    err = rbac.forbidden(HUB, res("list", "pods", "jhub"), 'RBAC: role.rbac.authorization.k8s.io "gone" not found')
    assert err.message.endswith('in the namespace "jhub": RBAC: role.rbac.authorization.k8s.io "gone" not found')
    assert rbac.unauthorized().body() == ('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                                          '"message":"Unauthorized","reason":"Unauthorized","code":401}')


# -- validation -----------------------------------------------------------------------------------

VALIDATION_CASES = [
    ("role-ok", "roles", role("r", "jhub", [CORE_PODS]), []),
    ("role-no-rules-ok", "roles", role("r", "jhub", []), []),
    ("role-colon-name-ok", "clusterroles", role("system:x", "", [CORE_PODS], kind="ClusterRole"), []),
    ("role-slash-name", "roles", role("a/b", "jhub", [CORE_PODS]), ["metadata.name"]),
    ("rule-no-verbs", "roles", role("r", "jhub", [{"apiGroups": [""], "resources": ["pods"]}]), ["rules[0].verbs"]),
    ("rule-no-group", "roles", role("r", "jhub", [{"resources": ["pods"], "verbs": ["get"]}]), ["rules[0].apiGroups"]),
    ("rule-no-resources", "roles", role("r", "jhub", [{"apiGroups": [""], "verbs": ["get"]}]), ["rules[0].resources"]),
    ("role-nonresource", "roles", role("r", "jhub", [{"nonResourceURLs": ["/x"], "verbs": ["get"]}]), ["rules[0].nonResourceURLs"]),
    ("clusterrole-nonresource-ok", "clusterroles", role("r", "", [{"nonResourceURLs": ["/x"], "verbs": ["get"]}], "ClusterRole"), []),
    ("binding-ok", "rolebindings", binding("b", "jhub", "Role", "r", SA_HUB), []),
    ("binding-bad-kind", "rolebindings", binding("b", "jhub", "Pod", "r", SA_HUB), ["roleRef.kind"]),
    ("clusterbinding-role", "clusterrolebindings", binding("b", "", "Role", "r", SA_HUB), ["roleRef.kind"]),
    ("clusterbinding-sa-needs-ns", "clusterrolebindings",
     binding("b", "", "ClusterRole", "r", [{"kind": "ServiceAccount", "name": "hub"}]), ["subjects[0].namespace"]),
    ("binding-user-needs-group", "rolebindings", binding("b", "jhub", "Role", "r", [{"kind": "User", "name": "u"}]),
     ["subjects[0].apiGroup"]),
    ("binding-bad-subject", "rolebindings", binding("b", "jhub", "Role", "r", [{"kind": "Robot", "name": "u"}]), ["subjects[0].kind"]),
]


@pytest.mark.parametrize("resource,obj,fields", [c[1:] for c in VALIDATION_CASES], ids=[c[0] for c in VALIDATION_CASES])
def test_validation(resource, obj, fields):
    assert [c["field"] for c in validation.collect_causes(resource, obj)] == fields


def test_role_ref_cannot_change(cluster):
    cluster.create("rolebindings", "jhub", binding("b", "jhub", "Role", "r", SA_HUB))
    with pytest.raises(errors.ApiError) as info:
        cluster.patch("rolebindings", "jhub", "b", {"roleRef": {"name": "other"}}, "application/merge-patch+json")
    assert info.value.code == 422
    assert info.value.message == 'RoleBinding "b" is invalid: roleRef: Invalid value: cannot change roleRef'
    cluster.patch("rolebindings", "jhub", "b", {"subjects": []}, "application/merge-patch+json")


# -- access reviews -------------------------------------------------------------------------------


def test_access_review(cluster):
    cluster.create("roles", "jhub", role("hub", "jhub", [CORE_PODS]))
    cluster.create("rolebindings", "jhub", binding("hub", "jhub", "Role", "hub", SA_HUB))
    authz = rbac.Authorizer(cluster.store)
    ask = {"spec": {"resourceAttributes": {"namespace": "jhub", "verb": "watch", "resource": "pods"}}}
    assert rbac.access_review_status(authz, HUB, ask)["allowed"] is True
    ask["spec"]["resourceAttributes"]["namespace"] = "other"
    assert rbac.access_review_status(authz, HUB, ask) == {"allowed": False}
    assert rbac.access_review_status(authz, HUB, {"spec": {"nonResourceAttributes": {"path": "/api", "verb": "get"}}})["allowed"]
    with pytest.raises(errors.ApiError) as info:
        rbac.access_review_status(authz, HUB, {"spec": {}})
    assert info.value.code == 422
