"""The emulator's node pool (``jhplatform.devcluster.nodes.parse_nodes``).

We test these aspects:

- compact specs: single nodes and ``NAMExCOUNT`` pools, capacity keys and their defaults,
  extended resources, labels, taints with and without a value, cordoned nodes, several pools;
- the default pool (two CPU nodes, two tainted A100 nodes with four GPUs each), whole-dict;
- the API form every node has: hostname label, allocatable = capacity, Ready condition,
  unique InternalIPs and pod CIDRs, nodeInfo;
- files: a YAML list, ``{"nodes": [...]}`` in JSON, a ``kind: List``; missing status filled in;
- every kind of bad spec or file raises ``ValueError`` naming the problem and showing an example.
"""

from __future__ import annotations

import json

import pytest

from jhplatform.devcluster.nodes import DEFAULT_NODES, EXAMPLE, parse_nodes


def summary(node: dict) -> dict:
    """The parts of a node a spec decides."""
    labels = dict(node["metadata"]["labels"])
    for builtin in ("beta.kubernetes.io/arch", "beta.kubernetes.io/os", "kubernetes.io/arch", "kubernetes.io/os"):
        labels.pop(builtin, None)
    return {
        "name": node["metadata"]["name"],
        "labels": labels,
        "capacity": node["status"]["capacity"],
        "taints": node["spec"].get("taints", []),
        "unschedulable": node["spec"].get("unschedulable", False),
    }


DEFAULTS = {"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"}


@pytest.mark.parametrize(
    "spec, expected",
    [
        pytest.param(
            "solo",
            [{"name": "solo", "labels": {"kubernetes.io/hostname": "solo"}, "capacity": DEFAULTS, "taints": [], "unschedulable": False}],
            id="bare-name-gets-default-capacity",
        ),
        pytest.param(
            "worker:cpu=2,memory=8Gi,pods=10,ephemeral-storage=50Gi",
            [
                {
                    "name": "worker",
                    "labels": {"kubernetes.io/hostname": "worker"},
                    "capacity": {"cpu": "2", "memory": "8Gi", "pods": "10", "ephemeral-storage": "50Gi"},
                    "taints": [],
                    "unschedulable": False,
                }
            ],
            id="all-basic-keys",
        ),
        pytest.param(
            "cpux2:cpu=500m",
            [
                {"name": f"cpu-{i}", "labels": {"kubernetes.io/hostname": f"cpu-{i}"}, "capacity": {**DEFAULTS, "cpu": "500m"}, "taints": [], "unschedulable": False}
                for i in range(2)
            ],
            id="count-suffix-makes-numbered-nodes",
        ),
        pytest.param(
            "gpu:nvidia.com/gpu=8,label:accel=h100,taint:dedicated:NoExecute",
            [
                {
                    "name": "gpu",
                    "labels": {"kubernetes.io/hostname": "gpu", "accel": "h100"},
                    "capacity": {**DEFAULTS, "nvidia.com/gpu": "8"},
                    "taints": [{"key": "dedicated", "effect": "NoExecute"}],
                    "unschedulable": False,
                }
            ],
            id="extended-resource-label-and-valueless-taint",
        ),
        pytest.param(
            " a:memory=1.5Gi,unschedulable=true ; bx1:label:empty= ",
            [
                {"name": "a", "labels": {"kubernetes.io/hostname": "a"}, "capacity": {**DEFAULTS, "memory": "1536Mi"}, "taints": [], "unschedulable": True},
                {"name": "b-0", "labels": {"kubernetes.io/hostname": "b-0", "empty": ""}, "capacity": DEFAULTS, "taints": [], "unschedulable": False},
            ],
            id="whitespace-canonical-quantity-cordon-empty-label",
        ),
        pytest.param(
            "node1:cpu=1",
            [{"name": "node1", "labels": {"kubernetes.io/hostname": "node1"}, "capacity": {**DEFAULTS, "cpu": "1"}, "taints": [], "unschedulable": False}],
            id="digits-without-x-are-part-of-the-name",
        ),
    ],
)
def test_compact_spec(spec, expected):
    assert [summary(n) for n in parse_nodes(spec)] == expected


def test_default_pool():
    nodes = parse_nodes(DEFAULT_NODES)
    assert [summary(n) for n in nodes] == [
        {
            "name": f"cpu-{i}",
            "labels": {"kubernetes.io/hostname": f"cpu-{i}"},
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "taints": [],
            "unschedulable": False,
        }
        for i in range(2)
    ] + [
        {
            "name": f"gpu-a100-{i}",
            "labels": {
                "kubernetes.io/hostname": f"gpu-a100-{i}",
                "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB",
                "hub.jupyter.org/node-purpose": "user",
            },
            "capacity": {"cpu": "16", "memory": "128Gi", "pods": "110", "ephemeral-storage": "100Gi", "nvidia.com/gpu": "4"},
            "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
            "unschedulable": False,
        }
        for i in range(2)
    ]


def test_api_form_of_every_node():
    nodes = parse_nodes(DEFAULT_NODES)
    ips = set()
    cidrs = set()
    for node in nodes:
        assert node["kind"] == "Node" and node["apiVersion"] == "v1"
        status = node["status"]
        assert status["allocatable"] == status["capacity"]
        ready = [c for c in status["conditions"] if c["type"] == "Ready"]
        assert [(c["status"], c["reason"]) for c in ready] == [("True", "KubeletReady")]
        internal = [a["address"] for a in status["addresses"] if a["type"] == "InternalIP"]
        assert len(internal) == 1
        ips.add(internal[0])
        cidrs.add(node["spec"]["podCIDR"])
        assert status["nodeInfo"]["operatingSystem"] == "linux"
        assert status["nodeInfo"]["kubeletVersion"].startswith("v1.")
    assert len(ips) == len(cidrs) == len(nodes)


def test_parse_does_not_share_state_between_nodes():
    a, b = parse_nodes("px2:label:team=x,taint:k=v:NoSchedule")
    a["metadata"]["labels"]["team"] = "changed"
    a["spec"]["taints"][0]["value"] = "changed"
    assert b["metadata"]["labels"]["team"] == "x"
    assert b["spec"]["taints"][0]["value"] == "v"


def test_yaml_list_file(tmp_path):
    path = tmp_path / "nodes.yaml"
    path.write_text(
        "- metadata: {name: big, labels: {zone: a}}\n"
        "  spec: {taints: [{key: k, value: v, effect: NoSchedule}]}\n"
        "  status: {capacity: {cpu: '64', memory: 256Gi, pods: '50', nvidia.com/gpu: '8'}}\n"
        "- kind: Node\n"
        "  metadata: {name: small}\n"
    )
    big, small = parse_nodes(str(path))
    assert summary(big) == {
        "name": "big",
        "labels": {"zone": "a", "kubernetes.io/hostname": "big"},
        "capacity": {"cpu": "64", "memory": "256Gi", "pods": "50", "nvidia.com/gpu": "8"},
        "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}],
        "unschedulable": False,
    }
    assert big["status"]["allocatable"] == big["status"]["capacity"]
    assert small["status"]["capacity"] == DEFAULTS
    assert small["kind"] == "Node"
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in small["status"]["conditions"])


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"nodes": [{"metadata": {"name": "n1"}}, {"metadata": {"name": "n2"}}]}, id="nodes-key"),
        pytest.param({"kind": "List", "items": [{"metadata": {"name": "n1"}}, {"metadata": {"name": "n2"}}]}, id="kind-list"),
    ],
)
def test_json_file_forms(tmp_path, document):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(document))
    assert [n["metadata"]["name"] for n in parse_nodes(str(path))] == ["n1", "n2"]


def test_file_keeps_given_allocatable(tmp_path):
    path = tmp_path / "pool.json"
    path.write_text(json.dumps([{"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "4"}, "allocatable": {"cpu": "3500m"}}}]))
    (node,) = parse_nodes(str(path))
    assert node["status"]["allocatable"] == {"cpu": "3500m"}


@pytest.mark.parametrize(
    "spec, problem",
    [
        pytest.param("", "the spec is empty", id="empty"),
        pytest.param(" ; ", "no pools given", id="only-separators"),
        pytest.param("Big:cpu=1", "pool name 'Big' must be a lower-case DNS name", id="upper-case-name"),
        pytest.param("px0:cpu=1", "pool 'px0' has a count of 0", id="zero-count"),
        pytest.param("p:gpus=1", "unknown key 'gpus'", id="unknown-key"),
        pytest.param("p:cpu", "'cpu' in pool 'p' needs KEY=VALUE", id="missing-value"),
        pytest.param("p:cpu=", "'cpu=' in pool 'p' needs KEY=VALUE", id="empty-value"),
        pytest.param("p:memory=lots", "memory='lots' in pool 'p' is not a quantity", id="bad-quantity"),
        pytest.param("p:cpu=-1", "cpu='-1' in pool 'p' is negative", id="negative"),
        pytest.param("p:pods=1.5", "pods='1.5' in pool 'p' must be a whole number", id="fractional-pods"),
        pytest.param("p:nvidia.com/gpu=500m", "nvidia.com/gpu='500m' in pool 'p' must be a whole number", id="fractional-gpu"),
        pytest.param("p:-bad-/gpu=1", "extended resource name '-bad-/gpu'", id="bad-extended-name"),
        pytest.param("p:label:zone", "label 'label:zone' in pool 'p' needs KEY=VALUE", id="label-without-value"),
        pytest.param("p:label:bad key=x", "label bad key='x' in pool 'p': ", id="bad-label-key"),
        pytest.param("a:cpu=1;b x1", "pool name 'b x1'", id="space-in-pool-name"),
        pytest.param("p:taint:k=v", "taint 'k=v' in pool 'p' needs KEY=VALUE:EFFECT", id="taint-without-effect"),
        pytest.param("p:taint:k=v:Sometimes", "taint effect 'Sometimes'", id="bad-taint-effect"),
        pytest.param("p:unschedulable=maybe", "unschedulable in pool 'p' must be true or false", id="bad-bool"),
        pytest.param("a;a", "node 'a' is defined twice", id="duplicate-single"),
        pytest.param("ax2;a-1", "node 'a-1' is defined twice", id="duplicate-across-pools"),
        pytest.param("/no/such/nodes.yaml", "node file '/no/such/nodes.yaml' does not exist", id="missing-file"),
    ],
)
def test_bad_spec(spec, problem):
    with pytest.raises(ValueError) as info:
        parse_nodes(spec)
    message = str(info.value)
    assert message.startswith("invalid node spec: ")
    assert problem in message
    assert message.endswith(f"Example: {EXAMPLE!r}")


@pytest.mark.parametrize(
    "content, problem",
    [
        pytest.param("nodes: 3", "must hold a list of Node manifests", id="not-a-list"),
        pytest.param("[]", "lists no nodes", id="empty-list"),
        pytest.param("- {spec: {}}", "item 0", id="no-metadata"),
        pytest.param("- {kind: Pod, metadata: {name: p}}", "is a Pod, not a Node", id="wrong-kind"),
        pytest.param("- {metadata: {name: Bad_Name}}", "node name 'Bad_Name'", id="bad-name"),
        pytest.param("- {metadata: {name: n}, status: {capacity: {cpu: many}}}", "cpu='many'", id="bad-capacity"),
        pytest.param("- {metadata: {name: n}}\n- {metadata: {name: n}}", "node 'n' is defined twice", id="duplicate"),
        pytest.param("- [unclosed", "cannot parse", id="not-yaml"),
    ],
)
def test_bad_file(tmp_path, content, problem):
    path = tmp_path / "nodes.yaml"
    path.write_text(content)
    with pytest.raises(ValueError, match="invalid node spec") as info:
        parse_nodes(str(path))
    assert problem in str(info.value)
