"""OpenAPI v3 discovery: enough for ``kubectl apply`` with its default (strict) validation.

kubectl 1.37 first asks ``/openapi/v3`` for the index of group versions, then the group version's
document, and looks for the kind's PATCH operation (``x-kubernetes-group-version-kind``) with a
``fieldValidation`` parameter. When the server advertises it, kubectl leaves validation to the
server and sends ``fieldValidation=Strict``; otherwise it needs full schemas, and without any
OpenAPI it fails with "failed to download openapi". The documents here describe every resource
the emulator serves by its paths, operations and parameters; object schemas are open
(``type: object``), so ``kubectl explain`` has nothing to show.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

from .errors import KINDS
from .store import RESOURCES, api_version

WRITE_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation")


def _path_prefix(group_version: str) -> str:
    return "api/v1" if group_version == "v1" else f"apis/{group_version}"


def group_versions() -> list[str]:
    return sorted({api_version(r) for r in RESOURCES})


def _gvk(resource: str) -> dict:
    gv = api_version(resource)
    group, _, version = gv.rpartition("/")
    return {"group": group, "version": version, "kind": KINDS[resource]}


def _query(name: str, description: str) -> dict:
    return {"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": True}}


_PARAM_HELP = {
    "dryRun": "When present, indicates that modifications should not be persisted.",
    "fieldManager": "fieldManager is a name associated with the actor or entity that is making these changes.",
    "fieldValidation": "fieldValidation instructs the server on how to handle objects in the request containing unknown or "
                       "duplicate fields. Valid values are: Ignore, Warn (default), Strict.",
    "force": "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people.",
}


def _operation(resource: str, action: str, op_id: str, params: tuple[str, ...] = (), body_types: tuple[str, ...] = ()) -> dict:
    ref = {"$ref": f"#/components/schemas/{_schema_name(resource)}"}
    op: dict = {
        "operationId": op_id,
        "parameters": [_query(p, _PARAM_HELP.get(p, p)) for p in params],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(resource),
    }
    if body_types:
        op["requestBody"] = {"content": {t: {"schema": ref} for t in body_types}, "required": True}
    return op


def _schema_name(resource: str) -> str:
    gvk = _gvk(resource)
    group = gvk["group"] or "core"
    return f"io.k8s.api.{group.split('.')[0]}.{gvk['version']}.{gvk['kind']}"


@lru_cache(maxsize=None)
def document(group_version: str) -> bytes:
    """The OpenAPI v3 document of one group version, as served at /openapi/v3/<api|apis/...>."""
    prefix = "/" + _path_prefix(group_version)
    paths: dict[str, dict] = {}
    schemas: dict[str, dict] = {}
    for resource, namespaced in RESOURCES.items():
        if api_version(resource) != group_version:
            continue
        kind = KINDS[resource]
        base = f"{prefix}/namespaces/{{namespace}}/{resource}" if namespaced else f"{prefix}/{resource}"
        suffix = "Namespaced" if namespaced else ""
        params = [{"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}] if namespaced else []
        paths[base] = {
            "parameters": params,
            "get": _operation(resource, "list", f"list{suffix}{kind}"),
            "post": _operation(resource, "post", f"create{suffix}{kind}", WRITE_PARAMETERS, ("*/*",)),
        }
        paths[base + "/{name}"] = {
            "parameters": params + [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": _operation(resource, "get", f"read{suffix}{kind}"),
            "put": _operation(resource, "put", f"replace{suffix}{kind}", WRITE_PARAMETERS, ("*/*",)),
            "patch": _operation(resource, "patch", f"patch{suffix}{kind}", WRITE_PARAMETERS + ("force",),
                                # No strategic-merge-patch+json here: the schemas carry no patch strategies,
                                # so kubectl's client-side apply must use its built-in types for them.
                                ("application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json")),
            "delete": _operation(resource, "delete", f"delete{suffix}{kind}", ("dryRun",)),
        }
        schemas[_schema_name(resource)] = {
            "type": "object",
            "description": f"{kind} (fields are validated by the server).",
            "x-kubernetes-group-version-kind": [_gvk(resource)],
        }
    doc = {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.37.0"}, "paths": paths, "components": {"schemas": schemas}}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def index() -> dict:
    """The /openapi/v3 root: each group version's document, with a content hash for caching."""
    paths = {}
    for gv in group_versions():
        digest = hashlib.sha512(document(gv)).hexdigest()[:128].upper()
        paths[_path_prefix(gv)] = {"serverRelativeURL": f"/openapi/v3/{_path_prefix(gv)}?hash={digest}"}
    return {"paths": paths}


def document_for_path(tail: str) -> bytes | None:
    """The document for ``api/v1`` or ``apis/<group>/<version>``; None if there is none."""
    for gv in group_versions():
        if _path_prefix(gv) == tail.strip("/"):
            return document(gv)
    return None
