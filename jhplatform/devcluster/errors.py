"""Kubernetes ``Status`` errors, built like apimachinery's ``errors.go`` constructors.

Every error the emulator returns is one of these, so the bodies (compact JSON, keys in Go
struct order) and messages match what a real apiserver sends to kubernetes_asyncio.
"""

from __future__ import annotations

import json
from typing import Any

# Resource (plural, lower case) -> Kind, for the 422 "Invalid" message which names the Kind.
KINDS = {
    "namespaces": "Namespace",
    "pods": "Pod",
    "services": "Service",
    "secrets": "Secret",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "events": "Event",
    "resourcequotas": "ResourceQuota",
    "limitranges": "LimitRange",
    "nodes": "Node",
    "serviceaccounts": "ServiceAccount",
    "configmaps": "ConfigMap",
    "storageclasses": "StorageClass",
    "roles": "Role",
    "rolebindings": "RoleBinding",
    "clusterroles": "ClusterRole",
    "clusterrolebindings": "ClusterRoleBinding",
    "networkpolicies": "NetworkPolicy",
    "selfsubjectaccessreviews": "SelfSubjectAccessReview",
}


class ApiError(Exception):
    """An API error carrying a Kubernetes ``Status`` object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body

    def body(self) -> str:
        return json.dumps(self.status(), separators=(",", ":"))

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"


def not_found(resource: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource}
    )


def already_exists(resource: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{resource} "{name}" already exists',
        {"name": name, "kind": resource},
    )


def forbidden(resource: str, name: str, err: str, causes: list[dict] | None = None) -> ApiError:
    details: dict[str, Any] = {"name": name, "kind": resource}
    if causes:
        details["causes"] = causes
    return ApiError(403, "Forbidden", f'{resource} "{name}" is forbidden: {err}', details)


def invalid(resource: str, name: str, causes: list[dict]) -> ApiError:
    """422 Invalid. ``causes`` are ``{"reason", "message", "field"}`` dicts.

    The message is ``<Kind> "<name>" is invalid: <field>: <message>``; several causes are
    joined as ``[c1, c2]`` like ``utilerrors.NewAggregate``.
    """
    kind = KINDS.get(resource, resource)
    parts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {joined}',
        {"name": name, "kind": kind, "causes": causes},
    )


def conflict(resource: str, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        {"name": name, "kind": resource},
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(rv: int, oldest: int) -> ApiError:
    return ApiError(410, "Expired", f"too old resource version: {rv} ({oldest})")


def too_large_rv(rv: int, current: int) -> ApiError:
    return ApiError(
        504,
        "Timeout",
        f"Timeout: Too large resource version: {rv}, current: {current}",
        {
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ],
            "retryAfterSeconds": 1,
        },
    )


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message, {})


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type})")
