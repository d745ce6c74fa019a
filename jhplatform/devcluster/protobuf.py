"""Just enough of Kubernetes' protobuf encoding to read a SelfSubjectAccessReview.

``kubectl auth can-i`` sends its review as ``application/vnd.kubernetes.protobuf`` (built-in types
prefer protobuf); the emulator answers in JSON, which the client also accepts. The envelope is the
magic ``k8s\\x00`` followed by a ``runtime.Unknown`` message whose field 2 holds the object's bytes
(``k8s.io/apimachinery/pkg/runtime/generated.proto``); the review's fields are numbered as in
``k8s.io/api/authorization/v1/generated.proto``.
"""

from __future__ import annotations

from . import errors

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def fields(data: bytes) -> dict[int, list]:
    """Field number -> values (ints for varints, bytes for length-delimited)."""
    out: dict[int, list] = {}
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            size, i = _varint(data, i)
            if i + size > len(data):
                raise ValueError("truncated field")
            value, i = data[i:i + size], i + size
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def _text(f: dict[int, list], number: int) -> str:
    values = f.get(number)
    return values[-1].decode() if values else ""


def access_review(body: bytes) -> dict:
    """A protobuf SelfSubjectAccessReview as its JSON form (spec only)."""
    try:
        if not body.startswith(MAGIC):
            raise ValueError("missing the k8s protobuf magic prefix")
        unknown = fields(body[len(MAGIC):])
        raw = unknown.get(2, [b""])[-1]
        spec = fields(fields(raw).get(2, [b""])[-1])
        out: dict = {}
        if 1 in spec:
            ra = fields(spec[1][-1])
            keys = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
            out["resourceAttributes"] = {k: _text(ra, n) for n, k in enumerate(keys, 1) if _text(ra, n)}
        if 2 in spec:
            na = fields(spec[2][-1])
            out["nonResourceAttributes"] = {k: _text(na, n) for n, k in ((1, "path"), (2, "verb")) if _text(na, n)}
        return {"spec": out}
    except (ValueError, UnicodeDecodeError, IndexError) as e:
        raise errors.bad_request(f"the protobuf body could not be decoded: {e}")
