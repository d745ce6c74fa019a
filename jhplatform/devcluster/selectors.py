"""Query-parameter parsing for list and watch: booleans, label selectors, field selectors.

Ported from apimachinery so that the emulator accepts (and rejects) exactly what a real
apiserver does, with the same error texts:

- ``parse_bool`` follows the apiserver's query-parameter boolean conversion
  (kubernetes_asyncio sends ``watch=True``, capitalised).
- ``LabelSelector`` is ``pkg/labels/selector.go``: the same lexer (special symbols
  ``=!(),<>``), the same recursive-descent parser and the same ``NewRequirement`` checks.
- ``FieldSelector`` is ``pkg/fields/selector.go`` plus the per-kind field-label conversion
  functions (``pkg/apis/core/v1/conversion.go``) and ``ToSelectableFields``.

Every malformed selector raises ``errors.bad_request`` (400), which is what the apiserver's
list handler turns a parameter-decoding error into.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from . import errors

# -- booleans ----------------------------------------------------------------------------

_FALSE_WORDS = frozenset({"", "0", "f", "false", "n", "no"})


def parse_bool(value: str | None) -> bool:
    """Parse a boolean query parameter the way the apiserver does.

    A missing parameter (``None``) is false; so are ``""``, ``0``, ``f``, ``false``, ``n`` and
    ``no`` in any case. Anything else, including kubernetes_asyncio's ``True``, is true.
    """
    if value is None:
        return False
    return value.lower() not in _FALSE_WORDS


# -- label key/value syntax (apimachinery/pkg/util/validation) ----------------------------
# Shared with validation.py, which reports the same messages for metadata.labels.

_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_RE = re.compile(f"^{_QNAME_FMT}$")
_LABEL_VALUE_FMT = f"({_QNAME_FMT})?"
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + r"(\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")

_QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """apimachinery ``RegexError``: note the doubled space after each ``',``."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    out = msg + " (e.g. "
    for i, ex in enumerate(examples):
        if i > 0:
            out += " or "
        out += f"'{ex}', "
    return out + f"regex used for validation is '{fmt}')"


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def dns1123_subdomain_errors(value: str) -> list[str]:
    """``IsDNS1123Subdomain``: length first, then the regex."""
    errs = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(regex_error(_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def qualified_name_errors(value: str) -> list[str]:
    """``IsQualifiedName``: ``[prefix/]name`` with a DNS-subdomain prefix and a name of at most 63."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in dns1123_subdomain_errors(prefix))
    else:
        return [
            "a qualified name "
            + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _QNAME_RE.match(name):
        errs.append("name part " + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def label_value_errors(value: str) -> list[str]:
    """``IsValidLabelValue``: at most 63 characters; empty is allowed."""
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _LABEL_VALUE_RE.match(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def go_quote(value: str) -> str:
    """Approximate Go's ``%q`` for the strings that appear in messages."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


# -- label selectors ----------------------------------------------------------------------

_SPECIAL = "=!(),<>"
_WHITESPACE = " \t\r\n"
_KEYWORDS = {
    ")": "CLOSE", ",": "COMMA", "!": "NOT", "==": "EQEQ", "=": "EQ", ">": "GT",
    "in": "IN", "<": "LT", "!=": "NEQ", "notin": "NOTIN", "(": "OPEN",
}
_BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt"


def _lex(text: str) -> list[tuple[str, str]]:
    """Tokenise like apimachinery's ``Lexer``: identifiers run until whitespace or a special symbol."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            tokens.append(("EOS", ""))
            return tokens
        if text[i] in _SPECIAL:
            # Longest special-symbol run that is still a token ("!=" but "=" then "!").
            buf, last, j = "", None, i
            while j < n and text[j] in _SPECIAL:
                buf += text[j]
                if buf in _KEYWORDS:
                    last = (buf, j + 1)
                    j += 1
                elif last is not None:
                    break
                else:
                    j += 1
            if last is None:  # unreachable: every single special symbol is a token
                tokens.append(("ERROR", f"error expected: keyword found '{buf}'"))
                i = j
            else:
                tokens.append((_KEYWORDS[last[0]], last[0]))
                i = last[1]
            continue
        j = i
        while j < n and text[j] not in _SPECIAL and text[j] not in _WHITESPACE:
            j += 1
        word = text[i:j]
        tokens.append((_KEYWORDS.get(word, "ID"), word))
        i = j


@dataclass(frozen=True)
class Requirement:
    """One ``key op values`` term of a label selector."""

    key: str
    operator: str  # in, notin, =, ==, !=, exists, !, gt, lt
    values: tuple[str, ...]

    def matches(self, labels: dict[str, str]) -> bool:
        op = self.operator
        has = self.key in labels
        if op == "exists":
            return has
        if op == "!":
            return not has
        if op in ("in", "=", "=="):
            return has and labels[self.key] in self.values
        if op in ("notin", "!="):
            # Kubernetes: a missing key satisfies != and notin.
            return not has or labels[self.key] not in self.values
        # gt / lt compare integers; a label value that is not an integer never matches.
        if not has:
            return False
        try:
            have, want = int(labels[self.key]), int(self.values[0])
        except ValueError:
            return False
        return have > want if op == "gt" else have < want


class _LabelParser:
    """Recursive-descent parser mirroring apimachinery's ``Parser``."""

    def __init__(self, text: str):
        self.items = _lex(text)
        self.pos = 0

    # In the "values" context the keywords in/notin are plain identifiers.
    def lookahead(self, values: bool) -> tuple[str, str]:
        tok, lit = self.items[self.pos]
        if values and tok in ("IN", "NOTIN"):
            tok = "ID"
        return tok, lit

    def consume(self, values: bool) -> tuple[str, str]:
        tok, lit = self.lookahead(values)
        self.pos += 1
        return tok, lit

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.lookahead(True)
            if tok in ("ID", "NOT"):
                try:
                    reqs.append(self.requirement())
                except ValueError as exc:
                    raise ValueError(f"unable to parse requirement: {exc}") from None
                tok, lit = self.consume(True)
                if tok == "EOS":
                    return reqs
                if tok == "COMMA":
                    tok2, lit2 = self.lookahead(True)
                    if tok2 not in ("ID", "NOT"):
                        raise ValueError(f"found '{lit2}', expected: identifier after ','")
                    continue
                raise ValueError(f"found '{lit}', expected: ',' or 'end of string'")
            if tok == "EOS":
                return reqs
            raise ValueError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        negate = False
        tok, lit = self.consume(True)
        if tok == "NOT":
            negate = True
            tok, lit = self.consume(True)
        if tok != "ID":
            raise ValueError(f"found '{lit}', expected: identifier")
        key = lit
        key_errs = qualified_name_errors(key)
        if key_errs:
            # The parser validates with a nil field path, which Go prints as "<nil>".
            raise ValueError(f"<nil>: Invalid value: {go_quote(key)}: {'; '.join(key_errs)}")
        nxt, _ = self.lookahead(True)
        if nxt in ("EOS", "COMMA"):
            return Requirement(key, "!" if negate else "exists", ())
        if negate:
            raise ValueError(f"found '{lit}', expected: ',' or 'end of string'")

        tok, lit = self.consume(False)
        ops = {"IN": "in", "NOTIN": "notin", "EQ": "=", "EQEQ": "==", "NEQ": "!=", "GT": "gt", "LT": "lt"}
        if tok not in ops:
            raise ValueError(f"found '{lit or 'EOS'}', expected: {_BINARY_OPERATORS}")
        op = ops[tok]
        values = self.value_set() if op in ("in", "notin") else self.exact_value()
        return _new_requirement(key, op, sorted(values))

    def value_set(self) -> set[str]:
        tok, lit = self.consume(True)
        if tok != "OPEN":
            raise ValueError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead(True)
        if tok == "CLOSE":  # "()" is the set {""}
            self.consume(True)
            return {""}
        if tok not in ("ID", "COMMA"):
            raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")
        out: set[str] = set()
        while True:
            tok, lit = self.consume(True)
            if tok == "ID":
                out.add(lit)
                tok2, lit2 = self.lookahead(True)
                if tok2 == "COMMA":
                    continue  # the comma itself is consumed by the next iteration
                if tok2 == "CLOSE":
                    break
                raise ValueError(f"found '{lit2}', expected: ',' or ')'")
            if tok == "COMMA":
                # "(,a)", "(a,)" and "(a,,b)" contribute the empty value, as upstream.
                if not out:
                    out.add("")
                tok2, _ = self.lookahead(True)
                if tok2 == "CLOSE":
                    out.add("")
                    break
                if tok2 == "COMMA":
                    self.consume(True)
                    out.add("")
                continue
            raise ValueError(f"found '{lit}', expected: ',', or identifier")
        tok, _ = self.consume(True)
        if tok != "CLOSE":  # pragma: no cover - the loop only breaks in front of ")"
            raise ValueError(f"found '{lit}', expected: ')'")
        return out

    def exact_value(self) -> set[str]:
        tok, _ = self.lookahead(True)
        if tok in ("EOS", "COMMA"):  # "k=" selects the empty value
            return {""}
        tok, lit = self.consume(True)
        if tok == "ID":
            return {lit}
        raise ValueError(f"found '{lit}', expected: identifier")


def _new_requirement(key: str, op: str, values: list[str]) -> Requirement:
    """``NewRequirement``: operator arity and value syntax, aggregated like ``ToAggregate``."""
    errs: list[str] = []
    if op in ("gt", "lt"):
        for i, v in enumerate(values):
            try:
                int(v, 10)
            except ValueError:
                errs.append(
                    f"values[{i}]: Invalid value: {go_quote(v)}: for 'Gt', 'Lt' operators, the value must be an integer"
                )
    for i, v in enumerate(values):
        v_errs = label_value_errors(v)
        if v_errs:
            errs.append(f"values[{i}][{key}]: Invalid value: {go_quote(v)}: {'; '.join(v_errs)}")
    if errs:
        raise ValueError(errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]")
    return Requirement(key, op, tuple(values))


class LabelSelector:
    """A parsed ``labelSelector``: every requirement must hold (comma is AND)."""

    def __init__(self, requirements: list[Requirement]):
        self.requirements = sorted(requirements, key=lambda r: r.key)

    @classmethod
    def parse(cls, text: str | None) -> "LabelSelector":
        """Parse ``text``; raise a 400 ``ApiError`` with the apiserver's message if malformed.

        An empty (or whitespace-only) selector matches everything.
        """
        try:
            return cls(_LabelParser(text or "").parse())
        except ValueError as exc:
            raise errors.bad_request(str(exc)) from None

    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: dict[str, str] | None) -> bool:
        """True if an object with ``labels`` (``None`` means no labels) is selected."""
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __repr__(self) -> str:
        return f"LabelSelector({self.requirements!r})"


# -- field selectors ----------------------------------------------------------------------

_META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
# Field labels accepted per resource (the v1 AddFieldLabelConversionFunc tables).
SUPPORTED_FIELDS: dict[str, frozenset[str]] = {
    "pods": _META_FIELDS
    | {
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName",
    },
    "events": _META_FIELDS
    | {
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
        "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
        "reason", "reportingComponent", "source", "type",
    },
    "nodes": _META_FIELDS | {"spec.unschedulable"},
    "secrets": _META_FIELDS | {"type"},
    "namespaces": _META_FIELDS | {"status.phase"},
}


def _dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _as_field_string(value: Any) -> str:
    # Selectable fields are strings; Go formats booleans with strconv.FormatBool.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_value(obj: dict, resource: str, field: str) -> str:
    """The string a field selector compares against (``ToSelectableFields``)."""
    if resource == "pods":
        if field == "spec.hostNetwork":
            return _as_field_string(bool(_dig(obj, field)))
        if field in ("status.podIP", "status.podIPs"):
            # Upstream derives podIP from podIPs[0]; fall back to the podIP field.
            ips = _dig(obj, "status.podIPs") or []
            if ips and isinstance(ips[0], dict):
                return _as_field_string(ips[0].get("ip"))
            return _as_field_string(_dig(obj, "status.podIP"))
    if resource == "nodes" and field == "spec.unschedulable":
        return _as_field_string(bool(_dig(obj, field)))
    if resource == "events" and field == "source":
        # Events written via events.k8s.io have no source.component; upstream falls back.
        return _as_field_string(_dig(obj, "source.component") or obj.get("reportingComponent"))
    return _as_field_string(_dig(obj, field))


def _split_terms(text: str) -> list[str]:
    """Split on commas not escaped with a backslash (``splitTerms``)."""
    terms, cur, escaped = [], "", False
    for ch in text:
        if escaped:
            cur += ch
            escaped = False
        elif ch == "\\":
            cur += ch
            escaped = True
        elif ch == ",":
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    return terms


def _unescape(value: str) -> str:
    """``UnescapeValue``: only ``\\\\``, ``\\,`` and ``\\=`` are escapes; bare ``,``/``=`` are errors."""
    out, i = "", 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            if i + 1 >= len(value) or value[i + 1] not in "\\,=":
                seq = value[i : i + 2]
                raise ValueError(f"invalid field selector: invalid escape sequence: {seq}")
            out += value[i + 1]
            i += 2
            continue
        if ch in ",=":
            raise ValueError(f"invalid field selector: unescaped character in value: {ch}")
        out += ch
        i += 1
    return out


@dataclass(frozen=True)
class FieldTerm:
    field: str
    negate: bool
    value: str


class FieldSelector:
    """A parsed ``fieldSelector`` for one resource: comma-ANDed ``=``, ``==`` and ``!=`` terms."""

    def __init__(self, resource: str, terms: list[FieldTerm]):
        self.resource = resource
        self.terms = terms

    @classmethod
    def parse(cls, text: str | None, resource: str) -> "FieldSelector":
        """Parse ``text`` for ``resource``; 400 for bad syntax or an unsupported field label.

        No whitespace is trimmed, as upstream: ``a = b`` names the field ``"a "``.
        """
        text = text or ""
        supported = SUPPORTED_FIELDS.get(resource, _META_FIELDS)
        terms: list[FieldTerm] = []
        for part in sorted(_split_terms(text)):
            if part == "":
                continue
            split = _split_term(part)
            if split is None:
                raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
            lhs, op, rhs = split
            try:
                value = _unescape(rhs)
            except ValueError as exc:
                raise errors.bad_request(str(exc)) from None
            if lhs == "spec.host" and resource == "pods":
                lhs = "spec.nodeName"  # backwards-compatible alias kept by the pod conversion
            if lhs not in supported:
                raise errors.bad_request(f"field label not supported: {lhs}")
            terms.append(FieldTerm(lhs, op == "!=", value))
        return cls(resource, terms)

    def empty(self) -> bool:
        return not self.terms

    def matches(self, obj: dict) -> bool:
        """True if every term holds for ``obj``; a missing field compares as ``""``."""
        for term in self.terms:
            equal = field_value(obj, self.resource, term.field) == term.value
            if equal == term.negate:
                return False
        return True

    def __repr__(self) -> str:
        return f"FieldSelector({self.resource!r}, {self.terms!r})"


def _split_term(term: str) -> tuple[str, str, str] | None:
    # The first position where any operator starts wins; "!=" and "==" before "=".
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None
