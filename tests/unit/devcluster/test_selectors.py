"""Query-parameter parsing of the devcluster emulator (``jhplatform.devcluster.selectors``).

We test these aspects:

- booleans: Kubernetes' false words in any case, ``watch=True`` as kubernetes_asyncio sends it;
- label selectors: every operator (``=``, ``==``, ``!=``, ``in``, ``notin``, exists, ``!``,
  ``gt``/``lt``), comma as AND, commas inside parentheses, whitespace, the empty selector,
  ``!=``/``notin`` matching objects without the key, ``None`` labels;
- malformed label selectors: 400 BadRequest with the apiserver's parser messages, including
  key and value syntax errors;
- field selectors: ``=``/``==``/``!=``, comma AND, missing fields as ``""``, booleans as
  ``"true"``/``"false"``, the per-resource supported fields, escapes, KubeSpawner's queries;
- unsupported field labels and malformed field selectors: 400 with the exact messages.
"""

from __future__ import annotations

import pytest

from jhplatform.devcluster.errors import ApiError
from jhplatform.devcluster.selectors import FieldSelector, LabelSelector, parse_bool

# -- booleans -------------------------------------------------------------------------------

BOOL_CASES = [
    (None, False, "absent"),
    ("", False, "empty"),
    ("0", False, "zero"),
    ("f", False, "f"),
    ("F", False, "F"),
    ("false", False, "false"),
    ("FALSE", False, "FALSE"),
    ("n", False, "n"),
    ("no", False, "no"),
    ("No", False, "No"),
    ("True", True, "kubernetes_asyncio-True"),
    ("true", True, "true"),
    ("1", True, "one"),
    ("yes", True, "yes"),
    ("t", True, "t"),
    ("whatever", True, "any-other-word"),
]


@pytest.mark.parametrize("value, expected", [c[:2] for c in BOOL_CASES], ids=[c[2] for c in BOOL_CASES])
def test_parse_bool(value, expected):
    assert parse_bool(value) is expected


def test_watch_true_query_string_is_a_watch():
    # What aiohttp hands the server for kubernetes_asyncio's watch=True (urlencode of a bool).
    from urllib.parse import parse_qs, urlencode

    query = parse_qs(urlencode([("watch", True), ("timeoutSeconds", 10)]))
    assert query["watch"] == ["True"]
    assert parse_bool(query["watch"][0]) is True


# -- label selectors: matching --------------------------------------------------------------

POD = {"component": "singleuser-server", "app": "jupyterhub", "hub.jupyter.org/servername": "", "tier": "7"}

LABEL_CASES = [
    ("", POD, True, "empty-matches-all"),
    ("   ", POD, True, "blank-matches-all"),
    ("", None, True, "empty-matches-no-labels"),
    ("component=singleuser-server", POD, True, "eq"),
    ("component=proxy", POD, False, "eq-other-value"),
    ("component==singleuser-server", POD, True, "double-eq"),
    ("component!=proxy", POD, True, "neq"),
    ("component!=singleuser-server", POD, False, "neq-same-value"),
    ("missing!=x", POD, True, "neq-missing-key-matches"),
    ("missing=x", POD, False, "eq-missing-key"),
    ("component in (proxy,singleuser-server)", POD, True, "in"),
    ("component in (proxy,hub)", POD, False, "in-not-member"),
    ("component notin (proxy,hub)", POD, True, "notin"),
    ("component notin (hub,singleuser-server)", POD, False, "notin-member"),
    ("missing notin (a,b)", POD, True, "notin-missing-key-matches"),
    ("missing in (a,b)", POD, False, "in-missing-key"),
    ("app", POD, True, "exists"),
    ("missing", POD, False, "exists-missing"),
    ("!missing", POD, True, "not-exists"),
    ("!app", POD, False, "not-exists-present"),
    ("hub.jupyter.org/servername=", POD, True, "eq-empty-value"),
    ("hub.jupyter.org/servername in (a,)", POD, True, "in-trailing-comma-is-empty-value"),
    ("tier>5", POD, True, "gt"),
    ("tier>7", POD, False, "gt-equal"),
    ("tier<8", POD, True, "lt"),
    ("component>1", POD, False, "gt-non-integer-label"),
    ("app=jupyterhub,component=singleuser-server", POD, True, "and-both"),
    ("app=jupyterhub,component=proxy", POD, False, "and-one-fails"),
    ("app in (jupyterhub,x),!missing,component", POD, True, "comma-inside-parens-belongs-to-set"),
    ("  app = jupyterhub ,  component in ( hub , singleuser-server )  ", POD, True, "whitespace-tolerant"),
    ("app=jupyterhub", None, False, "none-labels"),
    ("missing!=x", None, True, "none-labels-neq"),
]


@pytest.mark.parametrize("text, labels, expected", [c[:3] for c in LABEL_CASES], ids=[c[3] for c in LABEL_CASES])
def test_label_selector_matches(text, labels, expected):
    assert LabelSelector.parse(text).matches(labels) is expected


def test_label_selector_none_text_matches_everything():
    assert LabelSelector.parse(None).matches({"a": "b"}) is True


# -- label selectors: malformed -------------------------------------------------------------

KEY_SYNTAX = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_SYNTAX = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)

MALFORMED_LABELS = [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt", "missing-operator"),
    ("a=b,", "found '', expected: identifier after ','", "trailing-comma"),
    ("a=b,,c", "found ',', expected: identifier after ','", "double-comma"),
    ("=a", "found '=', expected: !, identifier, or 'end of string'", "leading-operator"),
    ("a=(", "unable to parse requirement: found '(', expected: identifier", "paren-as-value"),
    ("a in b", "unable to parse requirement: found 'b' expected: '('", "in-without-parens"),
    ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'", "set-missing-comma"),
    ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'", "set-unclosed"),
    ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier", "set-operator"),
    ("!a=b", "unable to parse requirement: found 'a', expected: ',' or 'end of string'", "not-with-value"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'", "junk-after-requirement"),
    ("a", None, "ok-control"),
    ("-a=b", f'unable to parse requirement: <nil>: Invalid value: "-a": {KEY_SYNTAX}', "bad-key"),
    ("a=-b", f'unable to parse requirement: values[0][a]: Invalid value: "-b": {VALUE_SYNTAX}', "bad-value"),
    (
        "a=" + "v" * 64,
        'unable to parse requirement: values[0][a]: Invalid value: "' + "v" * 64 + '": must be no more than 63 characters',
        "value-too-long",
    ),
    (
        "a>x",
        "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer",
        "gt-not-integer",
    ),
]


@pytest.mark.parametrize("text, message", [c[:2] for c in MALFORMED_LABELS], ids=[c[2] for c in MALFORMED_LABELS])
def test_malformed_label_selector_is_400(text, message):
    if message is None:
        LabelSelector.parse(text)
        return
    with pytest.raises(ApiError) as info:
        LabelSelector.parse(text)
    err = info.value
    assert (err.code, err.reason, err.message) == (400, "BadRequest", message)
    assert err.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "BadRequest",
        "code": 400,
    }


# -- field selectors ------------------------------------------------------------------------

RUNNING_POD = {
    "metadata": {"name": "jupyter-alice", "namespace": "user-alice"},
    "spec": {"nodeName": "node-1", "restartPolicy": "OnFailure", "schedulerName": "default-scheduler",
             "serviceAccountName": "default", "hostNetwork": True},
    "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}]},
}
PENDING_POD = {"metadata": {"name": "jupyter-bob", "namespace": "default"}, "spec": {}, "status": {"phase": "Pending"}}
EVENT = {
    "metadata": {"name": "jupyter-alice.17f3a9c2b5e4d1a0", "namespace": "user-alice"},
    "involvedObject": {"kind": "Pod", "name": "jupyter-alice", "namespace": "user-alice", "uid": "u-1",
                       "apiVersion": "v1", "resourceVersion": "42", "fieldPath": "spec.containers{notebook}"},
    "reason": "Pulled", "type": "Normal", "source": {"component": "kubelet"}, "reportingComponent": "kubelet",
}
SCHEDULER_EVENT = {"metadata": {"name": "e2", "namespace": "ns"}, "involvedObject": {"kind": "Pod"},
                   "source": {}, "reportingComponent": "default-scheduler"}

FIELD_CASES = [
    ("pods", "", PENDING_POD, True, "empty"),
    ("pods", "metadata.name=jupyter-alice", RUNNING_POD, True, "name-eq"),
    ("pods", "metadata.name==jupyter-alice", RUNNING_POD, True, "name-double-eq"),
    ("pods", "metadata.name!=jupyter-alice", RUNNING_POD, False, "name-neq"),
    ("pods", "metadata.namespace=user-alice", RUNNING_POD, True, "namespace"),
    ("pods", "spec.nodeName=node-1", RUNNING_POD, True, "nodeName"),
    ("pods", "spec.nodeName=", PENDING_POD, True, "missing-field-is-empty"),
    ("pods", "spec.nodeName!=", PENDING_POD, False, "missing-field-neq-empty"),
    ("pods", "spec.host=node-1", RUNNING_POD, True, "spec.host-alias"),
    ("pods", "spec.restartPolicy=OnFailure", RUNNING_POD, True, "restartPolicy"),
    ("pods", "spec.schedulerName=default-scheduler", RUNNING_POD, True, "schedulerName"),
    ("pods", "spec.serviceAccountName=default", RUNNING_POD, True, "serviceAccountName"),
    ("pods", "spec.hostNetwork=true", RUNNING_POD, True, "hostNetwork-true"),
    ("pods", "spec.hostNetwork=false", PENDING_POD, True, "hostNetwork-missing-is-false"),
    ("pods", "status.phase=Running", RUNNING_POD, True, "phase"),
    ("pods", "status.phase!=Running", PENDING_POD, True, "phase-neq"),
    ("pods", "status.podIP=10.0.0.5", RUNNING_POD, True, "podIP"),
    ("pods", "status.podIPs=10.0.0.5", RUNNING_POD, True, "podIPs"),
    ("pods", "status.nominatedNodeName=", RUNNING_POD, True, "nominatedNodeName"),
    ("pods", "status.phase=Running,spec.nodeName=node-1", RUNNING_POD, True, "and-both"),
    ("pods", "status.phase=Running,spec.nodeName=node-2", RUNNING_POD, False, "and-one-fails"),
    ("events", "involvedObject.kind=Pod", EVENT, True, "kubespawner-event-selector"),
    ("events", "involvedObject.kind=Node", EVENT, False, "event-kind-other"),
    ("events", "involvedObject.name=jupyter-alice,involvedObject.namespace=user-alice", EVENT, True, "event-name-ns"),
    ("events", "involvedObject.uid=u-1,involvedObject.apiVersion=v1", EVENT, True, "event-uid-apiversion"),
    ("events", "involvedObject.resourceVersion=42", EVENT, True, "event-rv"),
    ("events", "involvedObject.fieldPath=spec.containers{notebook}", EVENT, True, "event-fieldpath"),
    ("events", "reason=Pulled,type=Normal", EVENT, True, "event-reason-type"),
    ("events", "source=kubelet", EVENT, True, "event-source"),
    ("events", "source=default-scheduler", SCHEDULER_EVENT, True, "event-source-falls-back"),
    ("events", "reportingComponent=kubelet", EVENT, True, "event-reportingComponent"),
    ("events", "metadata.namespace=user-alice", EVENT, True, "event-metadata"),
    ("nodes", "spec.unschedulable=false", {"metadata": {"name": "n"}, "spec": {}}, True, "node-schedulable"),
    ("nodes", "spec.unschedulable=true", {"metadata": {"name": "n"}, "spec": {"unschedulable": True}}, True, "node-cordoned"),
    ("secrets", "type=kubernetes.io/tls", {"metadata": {"name": "s"}, "type": "kubernetes.io/tls"}, True, "secret-type"),
    ("secrets", "type!=Opaque", {"metadata": {"name": "s"}, "type": "Opaque"}, False, "secret-type-neq"),
    ("namespaces", "status.phase=Active", {"metadata": {"name": "x"}, "status": {"phase": "Active"}}, True, "ns-phase"),
    ("services", "metadata.name=jupyter-alice", {"metadata": {"name": "jupyter-alice"}}, True, "service-name"),
    ("persistentvolumeclaims", "metadata.name=claim-x", {"metadata": {"name": "claim-y"}}, False, "pvc-name"),
    ("pods", r"metadata.name=a\,b", {"metadata": {"name": "a,b"}}, True, "escaped-comma"),
    ("pods", r"metadata.name=a\=b", {"metadata": {"name": "a=b"}}, True, "escaped-equals"),
    ("pods", r"metadata.name=a\\b", {"metadata": {"name": "a\\b"}}, True, "escaped-backslash"),
]


@pytest.mark.parametrize(
    "resource, text, obj, expected", [c[:4] for c in FIELD_CASES], ids=[c[4] for c in FIELD_CASES]
)
def test_field_selector_matches(resource, text, obj, expected):
    assert FieldSelector.parse(text, resource).matches(obj) is expected


MALFORMED_FIELDS = [
    ("pods", "spec.containers=x", "field label not supported: spec.containers", "pod-unsupported"),
    ("pods", "type=Opaque", "field label not supported: type", "secret-field-on-pod"),
    ("services", "spec.nodeName=n", "field label not supported: spec.nodeName", "pod-field-on-service"),
    ("secrets", "status.phase=x", "field label not supported: status.phase", "ns-field-on-secret"),
    ("persistentvolumeclaims", "spec.storageClassName=x", "field label not supported: spec.storageClassName", "pvc"),
    ("events", "involvedObject.foo=x", "field label not supported: involvedObject.foo", "event-unknown"),
    ("pods", "status.phase = Running", "field label not supported: status.phase ", "no-whitespace-trimming"),
    ("pods", "status.phase", "invalid selector: 'status.phase'; can't understand 'status.phase'", "no-operator"),
    (
        "pods",
        "status.phase=Running,junk",
        "invalid selector: 'status.phase=Running,junk'; can't understand 'junk'",
        "no-operator-second-term",
    ),
    ("pods", "metadata.name=a=b", "invalid field selector: unescaped character in value: =", "unescaped-equals"),
    ("pods", r"metadata.name=a\b", r"invalid field selector: invalid escape sequence: \b", "bad-escape"),
]


@pytest.mark.parametrize(
    "resource, text, message", [c[:3] for c in MALFORMED_FIELDS], ids=[c[3] for c in MALFORMED_FIELDS]
)
def test_malformed_field_selector_is_400(resource, text, message):
    with pytest.raises(ApiError) as info:
        FieldSelector.parse(text, resource)
    assert (info.value.code, info.value.reason, info.value.message) == (400, "BadRequest", message)


def test_kubespawner_reflector_queries():
    """R1/R4: ``fieldSelector=&labelSelector=component=singleuser-server`` and the event query."""
    labels = LabelSelector.parse("component=singleuser-server")
    fields = FieldSelector.parse("", "pods")
    notebook = {"metadata": {"name": "jupyter-a", "namespace": "default", "labels": {"component": "singleuser-server"}}}
    hub = {"metadata": {"name": "hub-0", "namespace": "default", "labels": {"component": "hub"}}}
    selected = [p["metadata"]["name"] for p in (notebook, hub) if labels.matches(p["metadata"].get("labels")) and fields.matches(p)]
    assert selected == ["jupyter-a"]
    assert LabelSelector.parse("").matches(None)
    event_fields = FieldSelector.parse("involvedObject.kind=Pod", "events")
    assert [event_fields.matches(e) for e in (EVENT, {"involvedObject": {"kind": "Node"}})] == [True, False]
