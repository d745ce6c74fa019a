"""RBAC for the emulator: request attributes, rule matching and the authorizer, as the apiserver has them.

The pieces follow kube-apiserver (kubernetes/kubernetes):

- :func:`request_attributes` is ``RequestInfoFactory.NewRequestInfo``
  (``staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go``): the verb, API group,
  namespace, resource, subresource and name a request is authorised for.
- :func:`rule_allows` and friends are ``pkg/apis/rbac/v1/evaluation_helpers.go``; subjects match as
  ``appliesToUser`` in ``pkg/registry/rbac/validation/rule.go``.
- :class:`Authorizer` walks ClusterRoleBindings, then the namespace's RoleBindings, like
  ``plugin/pkg/auth/authorizer/rbac/rbac.go``; the ``system:masters`` group is allowed everything
  before RBAC is asked (the apiserver's privileged-group authorizer).
- :func:`forbidden` is ``responsewriters.Forbidden`` + ``apierrors.NewForbidden``: the 403 body a
  client sees, byte for byte.
- :data:`BOOTSTRAP_POLICY` holds the default ClusterRoles and bindings every cluster has, so an
  authenticated user may read discovery and ask ``kubectl auth can-i``.

Only RBAC's decision is here; the HTTP layer authenticates (:mod:`.tokens`) and calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import unquote

from . import errors
from .selectors import parse_bool

GROUP = "rbac.authorization.k8s.io"
KINDS = ("roles", "rolebindings", "clusterroles", "clusterrolebindings")

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"

VERBS_ALL = "*"
# /api/v1/namespaces/<ns>/status and /finalize are subresources of the namespace itself.
_NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(frozen=True)
class UserInfo:
    """Who is asking: a user name and the groups it belongs to."""

    name: str
    groups: tuple[str, ...] = ()

    @classmethod
    def service_account(cls, namespace: str, name: str) -> "UserInfo":
        """The identity a ServiceAccount token authenticates as."""
        return cls(
            f"system:serviceaccount:{namespace}:{name}",
            ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
        )


ANONYMOUS_USER = UserInfo(ANONYMOUS, (UNAUTHENTICATED,))


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, in RBAC's terms (``authorizer.AttributesRecord``)."""

    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def request_attributes(method: str, path: str, query: dict[str, str] | None = None) -> Attributes:
    """The authorization attributes of an HTTP request (``RequestInfoFactory.NewRequestInfo``)."""
    query = query or {}
    verb = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method, method.lower())
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    non_resource = Attributes(verb=verb, resource_request=False, path=path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource
    group = ""
    rest = parts[1:]
    if parts[0] == "apis":
        if len(rest) < 3:
            return non_resource
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces":
        if len(rest) > 1:
            namespace = rest[1]
            if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
                rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        verb = "watch" if parse_bool(query.get("watch")) else "list"
        exact = _exact_name(query.get("fieldSelector", ""))
        if exact:
            name = exact
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(verb, True, path, group, version, namespace, resource, subresource, name)


def _exact_name(field_selector: str) -> str:
    """``metadata.name=x`` in a field selector names the object a list or watch is for."""
    for term in field_selector.split(","):
        for op in ("==", "="):
            key, sep, value = term.partition(op)
            if sep and key.strip() == "metadata.name" and "!" not in key:
                value = value.strip()
                return value if value and "/" not in value and "%" not in value and value not in (".", "..") else ""
    return ""


# -- rule matching (evaluation_helpers.go) ----------------------------------------------------


def verb_matches(rule: dict, verb: str) -> bool:
    verbs = rule.get("verbs") or []
    return VERBS_ALL in verbs or verb in verbs


def api_group_matches(rule: dict, group: str) -> bool:
    groups = rule.get("apiGroups") or []
    return "*" in groups or group in groups


def resource_matches(rule: dict, combined: str, subresource: str) -> bool:
    for resource in rule.get("resources") or []:
        if resource == "*" or resource == combined:
            return True
        # "*/status" matches the status subresource of every resource.
        if subresource and len(resource) == len(subresource) + 2 and resource.startswith("*/") and resource.endswith(subresource):
            return True
    return False


def resource_name_matches(rule: dict, name: str) -> bool:
    names = rule.get("resourceNames") or []
    return not names or name in names


def non_resource_url_matches(rule: dict, path: str) -> bool:
    for url in rule.get("nonResourceURLs") or []:
        if url == "*" or url == path:
            return True
        if url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False


def rule_allows(attrs: Attributes, rule: dict) -> bool:
    """Whether one PolicyRule allows the request."""
    if attrs.resource_request:
        combined = attrs.resource + ("/" + attrs.subresource if attrs.subresource else "")
        return (
            verb_matches(rule, attrs.verb)
            and api_group_matches(rule, attrs.api_group)
            and resource_matches(rule, combined, attrs.subresource)
            and resource_name_matches(rule, attrs.name)
        )
    return verb_matches(rule, attrs.verb) and non_resource_url_matches(rule, attrs.path)


def subject_applies(user: UserInfo, subject: dict, binding_namespace: str) -> bool:
    """Whether a binding's subject is ``user`` (``appliesToUser``)."""
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user.name
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        if not namespace:
            return False
        return user.name == f"system:serviceaccount:{namespace}:{subject.get('name')}"
    return False


# -- the authorizer -----------------------------------------------------------------------------


@dataclass
class Decision:
    allowed: bool
    reason: str = ""


class Authorizer:
    """RBAC over a store of Roles, ClusterRoles and their bindings.

    ``store`` needs ``find(resource, namespace, name)`` and ``list(resource, namespace)``.
    """

    def __init__(self, store: Any):
        self.store = store

    def authorize(self, user: UserInfo, attrs: Attributes) -> Decision:
        if MASTERS in user.groups:
            return Decision(True)
        problems: list[str] = []
        for binding in self.store.list("clusterrolebindings"):
            found = self._visit(user, attrs, binding, "", problems)
            if found is not None:
                return found
        if attrs.namespace:
            for binding in self.store.list("rolebindings", attrs.namespace):
                found = self._visit(user, attrs, binding, attrs.namespace, problems)
                if found is not None:
                    return found
        # RBAC has no opinion; the reason lists bindings it could not follow (a missing role).
        return Decision(False, "RBAC: " + _aggregate(problems) if problems else "")

    def _visit(self, user: UserInfo, attrs: Attributes, binding: dict, namespace: str, problems: list[str]) -> Decision | None:
        if not any(subject_applies(user, s, namespace) for s in binding.get("subjects") or []):
            return None
        ref = binding.get("roleRef") or {}
        kind, role_name = ref.get("kind"), ref.get("name", "")
        if kind == "ClusterRole":
            role = self.store.find("clusterroles", "", role_name)
            missing = f'clusterrole.rbac.authorization.k8s.io "{role_name}" not found'
        else:
            role = self.store.find("roles", namespace, role_name)
            missing = f'role.rbac.authorization.k8s.io "{role_name}" not found'
        if role is None:
            problems.append(missing)
            return None
        for rule in role.get("rules") or []:
            if rule_allows(attrs, rule):
                binding_kind = "RoleBinding" if namespace else "ClusterRoleBinding"
                where = f'"{binding["metadata"]["name"]}/{namespace}"' if namespace else f'"{binding["metadata"]["name"]}"'
                return Decision(True, f"RBAC: allowed by {binding_kind} {where} of {kind} \"{role_name}\" to {_who(user, binding, namespace)}")
        return None

    def rules_for(self, user: UserInfo, namespace: str) -> list[dict]:
        """Every rule that applies to ``user`` in ``namespace`` (SelfSubjectRulesReview)."""
        rules: list[dict] = []
        bindings = [(b, "") for b in self.store.list("clusterrolebindings")]
        if namespace:
            bindings += [(b, namespace) for b in self.store.list("rolebindings", namespace)]
        for binding, ns in bindings:
            if not any(subject_applies(user, s, ns) for s in binding.get("subjects") or []):
                continue
            ref = binding.get("roleRef") or {}
            role = (self.store.find("clusterroles", "", ref.get("name", "")) if ref.get("kind") == "ClusterRole"
                    else self.store.find("roles", ns, ref.get("name", "")))
            rules.extend((role or {}).get("rules") or [])
        return rules


def _who(user: UserInfo, binding: dict, namespace: str) -> str:
    for s in binding.get("subjects") or []:
        if subject_applies(user, s, namespace):
            if s.get("kind") == "ServiceAccount":
                return f'ServiceAccount "{s.get("name")}/{s.get("namespace") or namespace}"'
            return f'{s.get("kind")} "{s.get("name")}"'
    return ""


def _aggregate(messages: list[str]) -> str:
    # utilerrors.NewAggregate: one error as is, several as "[a, b]".
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


def forbidden_message(user: UserInfo, attrs: Attributes) -> str:
    """``forbiddenMessage`` of the apiserver's responsewriters."""
    if not attrs.resource_request:
        return f'User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
    resource = attrs.resource + ("/" + attrs.subresource if attrs.subresource else "")
    if attrs.namespace:
        return (f'User "{user.name}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}" '
                f'in the namespace "{attrs.namespace}"')
    return f'User "{user.name}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}" at the cluster scope'


def forbidden(user: UserInfo, attrs: Attributes, reason: str = "") -> errors.ApiError:
    """The 403 the apiserver answers when no authorizer allowed the request."""
    message = forbidden_message(user, attrs)
    if reason:
        message = f"{message}: {reason}"
    if not attrs.resource_request:
        return errors.ApiError(403, "Forbidden", f"forbidden: {message}", {})
    qualified = attrs.resource + ("." + attrs.api_group if attrs.api_group else "")
    details: dict[str, Any] = {}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.api_group:
        details["group"] = attrs.api_group
    details["kind"] = attrs.resource
    head = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    return errors.ApiError(403, "Forbidden", f"{head} is forbidden: {message}", details)


def unauthorized() -> errors.ApiError:
    """401 for a bearer token nobody issued (``apierrors.NewUnauthorized("Unauthorized")``)."""
    return errors.ApiError(401, "Unauthorized", "Unauthorized")


# -- validation (pkg/apis/rbac/validation) -------------------------------------------------------


def _required(field: str) -> dict:
    return {"reason": "FieldValueRequired", "message": "Required value", "field": field}


def _unsupported(field: str, value: Any, supported: Iterable[str]) -> dict:
    choices = ", ".join(f'"{s}"' for s in supported)
    return {"reason": "FieldValueNotSupported", "message": f'Unsupported value: "{value}": supported values: {choices}', "field": field}


def validate_rules(obj: dict, causes: list[dict]) -> None:
    """PolicyRules of a Role or ClusterRole (``ValidatePolicyRule``)."""
    rules = obj.get("rules")
    if rules is None:
        rules = []
    if not isinstance(rules, list):
        causes.append({"reason": "FieldValueInvalid", "message": "Invalid value: must be a list", "field": "rules"})
        return
    for i, rule in enumerate(rules):
        path = f"rules[{i}]"
        if not isinstance(rule, dict):
            causes.append({"reason": "FieldValueInvalid", "message": "Invalid value: must be an object", "field": path})
            continue
        if not rule.get("verbs"):
            causes.append({"reason": "FieldValueRequired", "message": "Required value: verbs must contain at least one value", "field": f"{path}.verbs"})
        if rule.get("nonResourceURLs"):
            if obj.get("kind") == "Role" or obj.get("metadata", {}).get("namespace"):
                causes.append({"reason": "FieldValueInvalid", "message": "Invalid value: namespaced rules cannot apply to non-resource URLs",
                               "field": f"{path}.nonResourceURLs"})
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                causes.append({"reason": "FieldValueInvalid", "message": "Invalid value: rules cannot apply to both regular resources and non-resource URLs",
                               "field": f"{path}.nonResourceURLs"})
            continue
        if not rule.get("apiGroups"):
            causes.append({"reason": "FieldValueRequired", "message": "Required value: resource rules must supply at least one api group",
                           "field": f"{path}.apiGroups"})
        if not rule.get("resources"):
            causes.append({"reason": "FieldValueRequired", "message": "Required value: resource rules must supply at least one resource",
                           "field": f"{path}.resources"})


def validate_binding(obj: dict, causes: list[dict], cluster: bool) -> None:
    """roleRef and subjects of a RoleBinding or ClusterRoleBinding."""
    ref = obj.get("roleRef")
    if not isinstance(ref, dict):
        causes.append(_required("roleRef"))
    else:
        if ref.get("apiGroup") != GROUP:
            causes.append(_unsupported("roleRef.apiGroup", ref.get("apiGroup", ""), (GROUP,)))
        allowed = ("ClusterRole",) if cluster else ("Role", "ClusterRole")
        if ref.get("kind") not in allowed:
            causes.append(_unsupported("roleRef.kind", ref.get("kind", ""), allowed))
        if not ref.get("name"):
            causes.append(_required("roleRef.name"))
    for i, subject in enumerate(obj.get("subjects") or []):
        path = f"subjects[{i}]"
        kind = subject.get("kind") if isinstance(subject, dict) else None
        if kind not in ("ServiceAccount", "User", "Group"):
            causes.append(_unsupported(f"{path}.kind", kind or "", ("ServiceAccount", "User", "Group")))
            continue
        if not subject.get("name"):
            causes.append(_required(f"{path}.name"))
        if kind == "ServiceAccount":
            if subject.get("apiGroup"):
                causes.append(_unsupported(f"{path}.apiGroup", subject["apiGroup"], ("",)))
            if cluster and not subject.get("namespace"):
                causes.append(_required(f"{path}.namespace"))
        elif subject.get("apiGroup") != GROUP:
            causes.append(_unsupported(f"{path}.apiGroup", subject.get("apiGroup", ""), (GROUP,)))


def validation_rules() -> dict:
    """Validators for validation.collect_causes, keyed by resource."""
    return {
        "roles": validate_rules,
        "clusterroles": validate_rules,
        "rolebindings": lambda obj, causes: validate_binding(obj, causes, cluster=False),
        "clusterrolebindings": lambda obj, causes: validate_binding(obj, causes, cluster=True),
    }


def path_segment_name_errors(name: str) -> list[str]:
    """RBAC object names are path segments (``system:discovery`` is valid)."""
    if name in (".", ".."):
        return [f'may not be \'{name}\'']
    for bad in ("/", "%"):
        if bad in name:
            return [f"may not contain '{bad}'"]
    return []


def check_role_ref_unchanged(old: dict, new: dict, resource: str) -> None:
    """A binding's roleRef cannot change (delete and recreate the binding instead)."""
    if old.get("roleRef") != new.get("roleRef"):
        raise errors.invalid(resource, new["metadata"]["name"], [
            {"reason": "FieldValueInvalid", "message": "Invalid value: cannot change roleRef", "field": "roleRef"}])


# -- the default policy every cluster has (bootstrappolicy) ----------------------------------------

_BOOTSTRAP_META = {"labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                   "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}


def _cluster_role(name: str, rules: list[dict]) -> dict:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRole", "metadata": {"name": name, **_BOOTSTRAP_META}, "rules": rules}


def _cluster_binding(name: str, role: str, groups: list[str]) -> dict:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name, **_BOOTSTRAP_META},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": g} for g in groups]}


BOOTSTRAP_POLICY: list[tuple[str, dict]] = [
    ("clusterroles", _cluster_role("cluster-admin", [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},
    ])),
    ("clusterroles", _cluster_role("system:discovery", [
        {"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
                             "/readyz", "/version", "/version/"], "verbs": ["get"]},
    ])),
    ("clusterroles", _cluster_role("system:basic-user", [
        {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
    ])),
    ("clusterroles", _cluster_role("system:public-info-viewer", [
        {"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]},
    ])),
    ("clusterrolebindings", _cluster_binding("cluster-admin", "cluster-admin", [MASTERS])),
    ("clusterrolebindings", _cluster_binding("system:discovery", "system:discovery", [AUTHENTICATED])),
    ("clusterrolebindings", _cluster_binding("system:basic-user", "system:basic-user", [AUTHENTICATED])),
    ("clusterrolebindings", _cluster_binding("system:public-info-viewer", "system:public-info-viewer", [AUTHENTICATED, UNAUTHENTICATED])),
]


def access_review_status(authorizer: Authorizer, user: UserInfo, review: dict) -> dict:
    """The SelfSubjectAccessReview answer for ``review`` asked by ``user``."""
    spec = review.get("spec") or {}
    res = spec.get("resourceAttributes")
    non = spec.get("nonResourceAttributes")
    if res:
        attrs = Attributes(verb=res.get("verb", ""), resource_request=True, api_group=res.get("group", ""),
                           api_version=res.get("version", ""), namespace=res.get("namespace", ""),
                           resource=res.get("resource", ""), subresource=res.get("subresource", ""), name=res.get("name", ""))
    elif non:
        attrs = Attributes(verb=non.get("verb", ""), resource_request=False, path=non.get("path", ""))
    else:
        raise errors.invalid("selfsubjectaccessreviews", "", [
            {"reason": "FieldValueRequired", "message": "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
             "field": "spec.resourceAttributes"}])
    decision = authorizer.authorize(user, attrs)
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return status
