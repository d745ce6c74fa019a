"""PATCH bodies applied to stored objects: JSON merge, JSON patch and strategic merge.

The apiserver accepts three patch media types for built-in types (``patchhandler`` in
``staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go``):

- ``application/merge-patch+json``: RFC 7386; ``null`` deletes a key, lists are replaced.
- ``application/json-patch+json``: RFC 6902, applied with the ``jsonpatch`` library.
- ``application/strategic-merge-patch+json``: a merge patch that knows, from the Go struct
  tags (``patchStrategy``/``patchMergeKey``), which lists are merged element-by-element and by
  which key, plus the ``$patch``, ``$retainKeys``, ``$deleteFromPrimitiveList/`` and
  ``$setElementOrder/`` directives. kubernetes_asyncio sends this type for dict bodies.

Anything else (plain ``application/json``, server-side apply's ``application/apply-patch+yaml``)
is a 415, as on a real apiserver without server-side apply.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

from . import errors

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

# patchMergeKey of the core/v1 lists with patchStrategy "merge", by field name. Lists not
# named here (tolerations, args, command, accessModes, ...) have no strategy and are replaced.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
# Lists of scalars with patchStrategy "merge" are merged as sets (ObjectMeta.finalizers).
PRIMITIVE_SET_LISTS = frozenset({("metadata", "finalizers")})

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE = "$deleteFromPrimitiveList/"
_SET_ELEMENT_ORDER = "$setElementOrder/"


def apply_patch(obj: dict, patch: Any, content_type: str) -> dict:
    """Apply ``patch`` to ``obj`` according to ``content_type`` and return a new dict.

    ``patch`` may be the decoded JSON body or its raw ``str``/``bytes``. Neither input is
    mutated. Raises ``ApiError``: 415 for an unsupported media type, 400 for a body that does
    not decode or has the wrong shape, 422 when a JSON patch operation cannot be applied.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH):
        raise errors.unsupported_media_type(content_type)
    patch = _decode(patch)
    if media == JSON_PATCH:
        return _json_patch(obj, patch)
    if not isinstance(patch, dict):
        # The apiserver unmarshals merge patches into map[string]interface{}.
        raise errors.bad_request(
            f"json: cannot unmarshal {_json_kind(patch)} into Go value of type map[string]interface {{}}"
        )
    if media == MERGE_PATCH:
        return merge_patch(obj, patch)
    return strategic_merge_patch(obj, patch)


def _decode(patch: Any) -> Any:
    if isinstance(patch, (bytes, bytearray)):
        patch = patch.decode("utf-8", errors="replace")
    if isinstance(patch, str):
        try:
            return json.loads(patch)
        except ValueError as exc:
            raise errors.bad_request(f"error decoding patch: {exc}") from None
    return patch


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "null" if value is None else "object"


# -- RFC 6902 -----------------------------------------------------------------------------


def _json_patch(obj: dict, patch: Any) -> dict:
    if not isinstance(patch, list):
        raise errors.bad_request(
            f"json: cannot unmarshal {_json_kind(patch)} into Go value of type jsonpatch.Patch"
        )
    try:
        ops = jsonpatch.JsonPatch(patch)
    except (jsonpatch.InvalidJsonPatch, jsonpatch.JsonPointerException, TypeError) as exc:
        # A patch that does not decode (unknown op, bad pointer) is a 400 in patch.go.
        raise errors.bad_request(str(exc)) from None
    try:
        # apply() deep-copies the document unless in_place=True.
        result = ops.apply(obj)
    except jsonpatch.InvalidJsonPatch as exc:
        raise errors.bad_request(str(exc)) from None
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        # patch.go turns a failed application into a 422 with the library's message.
        raise errors.ApiError(422, "Invalid", str(exc)) from None
    except (KeyError, IndexError, TypeError) as exc:  # malformed op fields
        raise errors.bad_request(f"invalid JSON patch: {exc}") from None
    if not isinstance(result, dict):
        raise errors.bad_request("the patched object must be a JSON object")
    return result


# -- RFC 7386 -----------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 ``MergePatch``: objects merge recursively, ``null`` deletes, all else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- strategic merge ----------------------------------------------------------------------


def strategic_merge_patch(obj: dict, patch: dict) -> dict:
    """Apply a strategic merge patch to a core/v1 object (``StrategicMergeMapPatch``)."""
    result = _merge_map(copy.deepcopy(obj), patch, ())
    return result if result is not None else {}


def _go_map(value: Any) -> str:
    """Go's ``%v`` of a decoded JSON value, for error messages (``map[k:v]``)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_map(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_map(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _merge_key(path: tuple[str, ...], field: str) -> str | None:
    # Service spec.ports are keyed by "port"; container ports by "containerPort".
    if field == "ports" and path == ("spec",):
        return "port"
    return MERGE_KEYS.get(field)


def _merge_map(original: dict | None, patch: dict, path: tuple[str, ...]) -> dict | None:
    """Merge ``patch`` into ``original`` (already a private copy). ``None`` means delete."""
    directive = patch.get(_DIRECTIVE)
    if directive is not None:
        if directive == "delete":
            return None
        if directive == "replace":
            # Replace the whole map with the patch, minus directives (still applying nulls).
            return _merge_map({}, {k: v for k, v in patch.items() if k != _DIRECTIVE}, path)
        if directive != "merge":
            raise errors.bad_request(f"unknown patch type: {directive} in map: {_go_map(patch)}")
    result = original if isinstance(original, dict) else {}

    retain = patch.get(_RETAIN_KEYS)
    if retain is not None:
        if not isinstance(retain, list):
            raise errors.bad_request(f"invalid patch: $retainKeys must be a list: {_go_map(patch)}")
        for key in list(result):
            if key not in retain:
                del result[key]

    for key, value in patch.items():
        if key in (_DIRECTIVE, _RETAIN_KEYS) or key.startswith(_SET_ELEMENT_ORDER):
            # $setElementOrder only reorders; the emulator keeps the merged order instead.
            continue
        if key.startswith(_DELETE_FROM_PRIMITIVE):
            field = key[len(_DELETE_FROM_PRIMITIVE) :]
            if not isinstance(value, list):
                raise errors.bad_request(f"invalid patch: {key} must be a list: {_go_map(patch)}")
            current = result.get(field)
            if isinstance(current, list):
                result[field] = [item for item in current if item not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        merged = _merge_value(result.get(key), value, path, key)
        if merged is None:
            result.pop(key, None)
        else:
            result[key] = merged
    return result


def _merge_value(original: Any, value: Any, path: tuple[str, ...], key: str) -> Any:
    if isinstance(value, dict):
        return _merge_map(original if isinstance(original, dict) else None, value, path + (key,))
    if isinstance(value, list):
        merge_key = _merge_key(path, key)
        if merge_key is not None:
            return _merge_keyed_list(original if isinstance(original, list) else [], value, merge_key, path + (key,))
        if (path + (key,))[-2:] in PRIMITIVE_SET_LISTS:
            return _merge_primitive_set(original if isinstance(original, list) else [], value)
        # No patch strategy: the list is replaced, but directives inside it are dropped.
        return [v for v in value if not (isinstance(v, dict) and set(v) == {_DIRECTIVE})]
    return value


def _merge_primitive_set(original: list, patch: list) -> list:
    # patchStrategy=merge on scalars: union, original order first, duplicates dropped.
    out: list = []
    for item in original + patch:
        if item not in out:
            out.append(item)
    return out


def _merge_keyed_list(original: list, patch: list, merge_key: str, path: tuple[str, ...]) -> list:
    """Merge list elements by ``merge_key``; honours ``$patch: delete|replace`` elements."""
    if any(isinstance(item, dict) and item.get(_DIRECTIVE) == "replace" and set(item) == {_DIRECTIVE} for item in patch):
        # {"$patch": "replace"} in a list: the remaining patch elements become the list.
        return [
            _strip_directives(item)
            for item in patch
            if not (isinstance(item, dict) and set(item) == {_DIRECTIVE})
        ]
    result = [copy.deepcopy(item) for item in original]
    for item in patch:
        if not isinstance(item, dict):
            # Scalars in a keyed list cannot be matched; behave like "no strategy".
            raise errors.bad_request(f"invalid patch: list {path[-1]} expects objects with {merge_key}: {_go_map(item)}")
        if merge_key not in item:
            raise errors.bad_request(f"map: {_go_map(item)} does not contain declared merge key: {merge_key}")
        want = item[merge_key]
        index = next(
            (i for i, cur in enumerate(result) if isinstance(cur, dict) and cur.get(merge_key) == want),
            None,
        )
        if item.get(_DIRECTIVE) == "delete":
            result = [cur for cur in result if not (isinstance(cur, dict) and cur.get(merge_key) == want)]
            continue
        if index is None:
            merged = _merge_map({}, item, path)
            if merged is not None:
                result.append(merged)
        else:
            merged = _merge_map(result[index], item, path)
            if merged is None:
                del result[index]
            else:
                result[index] = merged
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if k not in (_DIRECTIVE, _RETAIN_KEYS) and not k.startswith((_SET_ELEMENT_ORDER, _DELETE_FROM_PRIMITIVE))
        }
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value
