"""Object validation with the apiserver's 422 causes (``pkg/apis/core/validation``).

``validate(resource, obj)`` collects ``field.Error``-shaped causes in upstream order (metadata,
then spec) and raises ``errors.invalid`` with all of them. Messages are built exactly like
``field.Error.ErrorBody()``: ``Required value``, ``Invalid value: "<v>": <detail>``,
``Duplicate value: "<v>"``, ``Unsupported value: "<v>": supported values: ...``,
``Too long: may not be more than N bytes``, ``Not found: "<v>"``.

Covered (spec §4.6): object names, label keys and values, annotation size, owner references,
pod containers (names, images, ports, env names, volume mounts, resources incl. the extended
resource rules for GPUs), volumes, restart policy; PVC access modes and storage request; service
type, ports and selector; secret data keys and base64; quantities in quotas and limit ranges.

Map iteration in Go is random; here keys are visited in sorted order so messages are stable.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from jhplatform.policy.quantity import Quantity

from . import errors, rbac
from .selectors import (
    dns1123_subdomain_errors,
    go_quote,
    label_value_errors,
    max_len_error,
    qualified_name_errors,
    regex_error,
)

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(f"^{_DNS1123_LABEL_FMT}$")
_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_RE = re.compile(f"^{_DNS1035_LABEL_FMT}$")
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character"
)
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_RE = re.compile(f"^{_CONFIG_KEY_FMT}$")
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024  # TotalAnnotationSizeLimitB
MAX_SECRET_SIZE = 1024 * 1024  # core.MaxSecretSize
QUANTITY_FORMAT_MSG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"
_PROTOCOLS = ("SCTP", "TCP", "UDP")
_STANDARD_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})


# -- cause constructors (field.Required, field.Invalid, ...) -------------------------------


def _fmt_value(value: Any) -> str:
    # ErrorBody prints strings with %q and numbers/bools with %v.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        return "null"
    return go_quote(str(value))


def required(field: str, detail: str = "") -> dict:
    return {"reason": "FieldValueRequired", "message": "Required value" + (f": {detail}" if detail else ""), "field": field}


def invalid_value(field: str, value: Any, detail: str) -> dict:
    return {"reason": "FieldValueInvalid", "message": f"Invalid value: {_fmt_value(value)}: {detail}", "field": field}


def duplicate(field: str, value: Any) -> dict:
    return {"reason": "FieldValueDuplicate", "message": f"Duplicate value: {_fmt_value(value)}", "field": field}


def not_supported(field: str, value: Any, supported: tuple[str, ...]) -> dict:
    choices = ", ".join(go_quote(s) for s in supported)
    return {
        "reason": "FieldValueNotSupported",
        "message": f"Unsupported value: {_fmt_value(value)}: supported values: {choices}",
        "field": field,
    }


def too_long(field: str, max_bytes: int) -> dict:
    return {"reason": "FieldValueTooLong", "message": f"Too long: may not be more than {max_bytes} bytes", "field": field}


def not_found(field: str, value: Any) -> dict:
    return {"reason": "FieldValueNotFound", "message": f"Not found: {_fmt_value(value)}", "field": field}


# -- name syntax --------------------------------------------------------------------------


def dns1123_label_errors(value: str) -> list[str]:
    """``IsDNS1123Label``: at most 63 characters, ``[a-z0-9]([-a-z0-9]*[a-z0-9])?``."""
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1123_LABEL_RE.match(value):
        if not dns1123_subdomain_errors(value):
            errs.append("must not contain dots")  # a valid subdomain, so only the dots are wrong
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def dns1035_label_errors(value: str) -> list[str]:
    """``IsDNS1035Label`` (Service names): like a DNS-1123 label but starting with a letter."""
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1035_LABEL_RE.match(value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def port_name_errors(value: str) -> list[str]:
    """``IsValidPortName`` (IANA_SVC_NAME)."""
    errs = []
    if len(value) > 15:
        errs.append(max_len_error(15))
    if not re.fullmatch("[-a-z0-9]+", value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def _port_num_ok(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


# Object names: pods and most kinds are DNS-1123 subdomains, namespaces DNS-1123 labels,
# services DNS-1035 labels (ValidateServiceName = NameIsDNS1035Label).
_NAME_RULES = {"namespaces": dns1123_label_errors, "services": dns1035_label_errors,
               **{kind: rbac.path_segment_name_errors for kind in rbac.KINDS}}


# -- metadata -----------------------------------------------------------------------------


def _validate_meta(resource: str, meta: dict, causes: list[dict]) -> None:
    name = meta.get("name") or ""
    if not name and not meta.get("generateName"):
        causes.append(required("metadata.name", "name or generateName is required"))
    elif name:
        rule = _NAME_RULES.get(resource, dns1123_subdomain_errors)
        causes.extend(invalid_value("metadata.name", name, msg) for msg in rule(name))
    namespace = meta.get("namespace")
    if namespace and resource not in ("namespaces", "nodes"):
        causes.extend(invalid_value("metadata.namespace", namespace, m) for m in dns1123_label_errors(namespace))
    _validate_labels(meta.get("labels"), "metadata.labels", causes)
    _validate_annotations(meta.get("annotations"), causes)
    for ref in meta.get("ownerReferences") or []:
        _validate_owner_reference(ref, causes)


def _validate_labels(labels: Any, field: str, causes: list[dict]) -> None:
    if not isinstance(labels, dict):
        return
    for key in sorted(labels):
        causes.extend(invalid_value(field, key, msg) for msg in qualified_name_errors(key))
        value = labels[key]
        if not isinstance(value, str):
            causes.append(invalid_value(field, value, "label values must be strings"))
            continue
        causes.extend(invalid_value(field, value, msg) for msg in label_value_errors(value))


def _validate_annotations(annotations: Any, causes: list[dict]) -> None:
    if not isinstance(annotations, dict):
        return
    for key in sorted(annotations):
        # Annotation keys are qualified names compared case-insensitively.
        causes.extend(invalid_value("metadata.annotations", key, m) for m in qualified_name_errors(key.lower()))
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(too_long("metadata.annotations", TOTAL_ANNOTATION_SIZE_LIMIT))


def _validate_owner_reference(ref: dict, causes: list[dict]) -> None:
    # Upstream reports these on the list path, not per index.
    field = "metadata.ownerReferences"
    api_version = ref.get("apiVersion") or ""
    if not api_version.rsplit("/", 1)[-1]:
        causes.append(invalid_value(f"{field}.apiVersion", api_version, "version must not be empty"))
    if not ref.get("kind"):
        causes.append(invalid_value(f"{field}.kind", ref.get("kind") or "", "kind must not be empty"))
    if not ref.get("name"):
        causes.append(invalid_value(f"{field}.name", ref.get("name") or "", "name must not be empty"))
    if not ref.get("uid"):
        causes.append(invalid_value(f"{field}.uid", ref.get("uid") or "", "uid must not be empty"))


# -- quantities and container resources --------------------------------------------------


def _quantity(value: Any, field: str, causes: list[dict]) -> Quantity | None:
    """Parse a quantity, or record the apimachinery parse error and return None."""
    try:
        q = Quantity.parse(value)
    except (ValueError, TypeError, ArithmeticError) as exc:
        msg = "unable to parse quantity's suffix" if "suffix" in str(exc) else QUANTITY_FORMAT_MSG
        causes.append(invalid_value(field, str(value), msg))
        return None
    if q.value < 0:
        causes.append(invalid_value(field, str(q), "must be greater than or equal to 0"))
    return q


def _is_extended(name: str) -> bool:
    # IsExtendedResourceName: has a domain prefix outside *kubernetes.io/, e.g. nvidia.com/gpu.
    return "/" in name and "kubernetes.io/" not in name and not name.startswith("requests.")


def _overcommit_allowed(name: str) -> bool:
    # Native resources (no prefix, or *kubernetes.io/) except hugepages may be overcommitted.
    native = "/" not in name or "kubernetes.io/" in name
    return native and not name.startswith("hugepages-")


def _validate_resource_name(name: str, field: str, causes: list[dict]) -> None:
    if "/" not in name:
        if name not in _STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            causes.append(invalid_value(field, name, "must be a standard resource for containers"))
        return
    causes.extend(invalid_value(field, name, m) for m in qualified_name_errors(name))


def _validate_resources(resources: Any, path: str, causes: list[dict]) -> None:
    if not isinstance(resources, dict):
        return
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    parsed_limits: dict[str, Quantity] = {}
    for name in sorted(limits):
        field = f"{path}.limits[{name}]"
        _validate_resource_name(name, field, causes)
        q = _quantity(limits[name], field, causes)
        if q is not None:
            parsed_limits[name] = q
            if _is_extended(name) and q.milli_value() % 1000:
                causes.append(invalid_value(field, str(q), "must be an integer"))
    for name in sorted(requests):
        field = f"{path}.requests[{name}]"
        _validate_resource_name(name, field, causes)
        q = _quantity(requests[name], field, causes)
        if q is None:
            continue
        if _is_extended(name) and q.milli_value() % 1000:
            causes.append(invalid_value(field, str(q), "must be an integer"))
        if name in parsed_limits:
            limit = parsed_limits[name]
            # Non-overcommitable resources (GPUs, hugepages) need request == limit.
            if q.value != limit.value and not _overcommit_allowed(name):
                causes.append(invalid_value(field, str(q), f"must be equal to {name} limit of {limit}"))
            elif q.value > limit.value:
                causes.append(invalid_value(field, str(q), f"must be less than or equal to {name} limit of {limit}"))
        elif name not in limits and not _overcommit_allowed(name):
            causes.append(required(f"{path}.limits[{name}]", "Limit must be set for non overcommitable resources"))


# -- pods ---------------------------------------------------------------------------------


def _validate_container(
    container: Any, path: str, names: set[str], volumes: set[str], causes: list[dict]
) -> None:
    if not isinstance(container, dict):
        causes.append(invalid_value(path, str(container), "must be an object"))
        return
    name = container.get("name") or ""
    if not name:
        causes.append(required(f"{path}.name"))
    else:
        causes.extend(invalid_value(f"{path}.name", name, m) for m in dns1123_label_errors(name))
    if name and name in names:
        causes.append(duplicate(f"{path}.name", name))
    names.add(name)
    if not container.get("image"):
        causes.append(required(f"{path}.image"))

    port_names: set[str] = set()
    for i, port in enumerate(container.get("ports") or []):
        ppath = f"{path}.ports[{i}]"
        pname = port.get("name") or ""
        if pname:
            msgs = port_name_errors(pname)
            if msgs:
                causes.extend(invalid_value(f"{ppath}.name", pname, m) for m in msgs)
            elif pname in port_names:
                causes.append(duplicate(f"{ppath}.name", pname))
            port_names.add(pname)
        cport = port.get("containerPort")
        if not cport:
            causes.append(required(f"{ppath}.containerPort"))
        elif not _port_num_ok(cport):
            causes.append(invalid_value(f"{ppath}.containerPort", cport, PORT_RANGE_MSG))
        if port.get("hostPort") and not _port_num_ok(port["hostPort"]):
            causes.append(invalid_value(f"{ppath}.hostPort", port["hostPort"], PORT_RANGE_MSG))
        protocol = port.get("protocol")
        if protocol is not None and protocol not in _PROTOCOLS:
            causes.append(not_supported(f"{ppath}.protocol", protocol, _PROTOCOLS))

    for i, env in enumerate(container.get("env") or []):
        ename = env.get("name") or ""
        if not ename:
            causes.append(required(f"{path}.env[{i}].name"))
        elif any(not (32 <= ord(ch) <= 126) or ch == "=" for ch in ename):
            # RelaxedEnvironmentVariableValidation (GA in 1.34): printable ASCII except "=".
            causes.append(
                invalid_value(
                    f"{path}.env[{i}].name",
                    ename,
                    "a valid environment variable name must consist only of printable ASCII characters other than '='",
                )
            )

    mount_paths: set[str] = set()
    for i, mount in enumerate(container.get("volumeMounts") or []):
        mpath = f"{path}.volumeMounts[{i}]"
        mname = mount.get("name") or ""
        if not mname:
            causes.append(required(f"{mpath}.name"))
        elif mname not in volumes:
            causes.append(not_found(f"{mpath}.name", mname))
        mount_path = mount.get("mountPath") or ""
        if not mount_path:
            causes.append(required(f"{mpath}.mountPath"))
        elif mount_path in mount_paths:
            causes.append(invalid_value(f"{mpath}.mountPath", mount_path, "must be unique"))
        mount_paths.add(mount_path)

    _validate_resources(container.get("resources"), f"{path}.resources", causes)


def _validate_pod(pod: dict, causes: list[dict]) -> None:
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        causes.append(required("spec.containers"))
        return
    volumes: set[str] = set()
    for i, volume in enumerate(spec.get("volumes") or []):
        vname = volume.get("name") or ""
        if not vname:
            causes.append(required(f"spec.volumes[{i}].name"))
        else:
            causes.extend(invalid_value(f"spec.volumes[{i}].name", vname, m) for m in dns1123_label_errors(vname))
            if vname in volumes:
                causes.append(duplicate(f"spec.volumes[{i}].name", vname))
        volumes.add(vname)
    # Upstream validates regular containers first; init containers must not reuse their names.
    names: set[str] = set()
    containers = spec.get("containers") or []
    if not containers:
        causes.append(required("spec.containers"))
    for i, container in enumerate(containers):
        _validate_container(container, f"spec.containers[{i}]", names, volumes, causes)
    for i, container in enumerate(spec.get("initContainers") or []):
        _validate_container(container, f"spec.initContainers[{i}]", names, volumes, causes)
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in ("Always", "OnFailure", "Never"):
        causes.append(not_supported("spec.restartPolicy", policy, ("Always", "OnFailure", "Never")))


# -- other kinds --------------------------------------------------------------------------

_ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")


def _validate_pvc(pvc: dict, causes: list[dict]) -> None:
    spec = pvc.get("spec") or {}
    modes = spec.get("accessModes") or []
    if not modes:
        causes.append(required("spec.accessModes", "at least 1 access mode is required"))
    for mode in modes:
        if mode not in _ACCESS_MODES:
            causes.append(not_supported("spec.accessModes", mode, _ACCESS_MODES))
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    field = "spec.resources[storage]"
    if storage is None:
        causes.append(required(field))
    else:
        q = _quantity(storage, field, causes)
        if q is not None and q.value <= 0:
            causes.append(invalid_value(field, str(q), "must be greater than zero"))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in ("Block", "Filesystem"):
        causes.append(not_supported("spec.volumeMode", mode, ("Block", "Filesystem")))


_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def _validate_service(svc: dict, causes: list[dict]) -> None:
    spec = svc.get("spec") or {}
    svc_type = spec.get("type", "ClusterIP")
    if svc_type not in _SERVICE_TYPES:
        causes.append(not_supported("spec.type", svc_type, _SERVICE_TYPES))
    ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None"
    if not ports and not headless and svc_type != "ExternalName":
        causes.append(required("spec.ports"))
    seen: set[str] = set()
    for i, port in enumerate(ports):
        path = f"spec.ports[{i}]"
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            causes.append(required(f"{path}.name"))  # several ports must all be named
        elif name:
            causes.extend(invalid_value(f"{path}.name", name, m) for m in dns1123_label_errors(name))
            if name in seen:
                causes.append(duplicate(f"{path}.name", name))
            seen.add(name)
        if not _port_num_ok(port.get("port")):
            causes.append(invalid_value(f"{path}.port", port.get("port") or 0, PORT_RANGE_MSG))
        protocol = port.get("protocol")
        if protocol is not None and protocol not in _PROTOCOLS:
            causes.append(not_supported(f"{path}.protocol", protocol, _PROTOCOLS))
        target = port.get("targetPort")
        if isinstance(target, str):
            causes.extend(invalid_value(f"{path}.targetPort", target, m) for m in port_name_errors(target))
        elif target is not None and not _port_num_ok(target):
            causes.append(invalid_value(f"{path}.targetPort", target, PORT_RANGE_MSG))
    _validate_labels(spec.get("selector"), "spec.selector", causes)


def _base64_error_offset(value: str) -> int | None:
    """Offset Go's ``base64.StdEncoding`` reports for ``value``, or None if it decodes.

    Go ignores CR/LF; an illegal character is reported at its index, a short final quantum at
    the quantum's start.
    """
    try:
        base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
        return None
    except (binascii.Error, ValueError):
        pass
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    for i, ch in enumerate(value):
        if ch not in alphabet and ch not in "=\r\n":
            return i
    stripped = value.rstrip("=")
    return len(stripped) - len(stripped) % 4


def _validate_secret(secret: dict, causes: list[dict]) -> None:
    data = secret.get("data") or {}
    total = 0
    for key in sorted(data):
        field = f"data[{key}]"
        if not _CONFIG_KEY_RE.match(key):
            causes.append(
                invalid_value(field, key, regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
            )
        value = data[key]
        if not isinstance(value, str):
            causes.append(invalid_value(field, str(value), "must be a base64-encoded string"))
            continue
        offset = _base64_error_offset(value)
        if offset is not None:
            # Never echo secret material: the value is omitted, as in field.Invalid(omitValue).
            causes.append(
                {"reason": "FieldValueInvalid", "message": f"Invalid value: illegal base64 data at input byte {offset}", "field": field}
            )
        else:
            total += len(base64.b64decode(value.replace("\r", "").replace("\n", "")))
    if total > MAX_SECRET_SIZE:
        causes.append(too_long("data", MAX_SECRET_SIZE))


def _validate_quantity_map(values: Any, path: str, causes: list[dict]) -> None:
    for name in sorted(values or {}):
        _quantity(values[name], f"{path}[{name}]", causes)


def _validate_resourcequota(rq: dict, causes: list[dict]) -> None:
    _validate_quantity_map((rq.get("spec") or {}).get("hard"), "spec.hard", causes)


def _validate_limitrange(lr: dict, causes: list[dict]) -> None:
    for i, item in enumerate((lr.get("spec") or {}).get("limits") or []):
        for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
            _validate_quantity_map(item.get(key), f"spec.limits[{i}].{key}", causes)


_KIND_RULES = {
    "pods": _validate_pod,
    "persistentvolumeclaims": _validate_pvc,
    "services": _validate_service,
    "secrets": _validate_secret,
    "resourcequotas": _validate_resourcequota,
    "limitranges": _validate_limitrange,
    **rbac.validation_rules(),
}


def collect_causes(resource: str, obj: dict) -> list[dict]:
    """Every validation cause for ``obj``, in upstream order; empty if it is valid."""
    causes: list[dict] = []
    meta = obj.get("metadata")
    _validate_meta(resource, meta if isinstance(meta, dict) else {}, causes)
    rule = _KIND_RULES.get(resource)
    if rule is not None:
        rule(obj, causes)
    return causes


def validate(resource: str, obj: dict) -> None:
    """Raise ``errors.invalid`` (422) listing every cause if ``obj`` is not a valid ``resource``.

    Call it on the defaulted object, as the apiserver does (validation runs after defaulting
    and mutating admission), so defaulted fields such as port protocols are present.
    """
    causes = collect_causes(resource, obj)
    if causes:
        name = ((obj.get("metadata") or {}).get("name")) or ""
        raise errors.invalid(resource, name, causes)
