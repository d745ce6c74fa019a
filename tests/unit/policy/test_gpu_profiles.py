"""GPU profiles as data (jhplatform.policy.profiles) and the spawn form's GPU markup.

Aspects covered:
- validation at load: each kind of mistake gives one message naming
  ``PlatformSpawner.profile_list`` and the profile;
- normalization as whole dicts: resource limits (fixed and per option choice), the GPU
  toleration appended to (not replacing) the configured ones, node selection by nodeSelector or
  by a required affinity ANDed into each configured term, and the admin's explicit settings
  kept; the input is never modified and normalizing twice changes nothing;
- what the user asked for (profile, option choice, defaults);
- the form's view per profile and choice (availability text, disabled state and reason, which
  profile is checked and which choice selected), and the rendered template's stable hooks.
"""

from __future__ import annotations

import copy
from html.parser import HTMLParser

import pytest
from jinja2 import ChoiceLoader, Environment, PackageLoader

from jhplatform.spawner.form import FORM_TEMPLATE
from jhplatform.policy.profiles import (
    ExtendList,
    GpuRequest,
    RequireNodeLabel,
    annotate_profiles,
    build_form_view,
    gpu_problems,
    gpu_request,
    normalize_profiles,
    validate_profiles,
    GpuProfileError,
)
from jhplatform.policy.gpu_ledger import GpuLedger, Policy, gpu_annotations

GPU = "nvidia.com/gpu"
PRODUCT = "nvidia.com/gpu.product"
A100 = "NVIDIA-A100-SXM4-40GB"
TOL = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
A100_GPU = {"resource": GPU, "count": 1, "type": "A100", "type_label": PRODUCT, "type_value": A100}
CHOICES = {"1": {"display_name": "1 GPU"}, "2": {"display_name": "2 GPUs"}, "4": {"display_name": "4 GPUs"}}


def profile(slug="a100", gpu=None, override=None, options=None, **extra):
    p = {"display_name": slug.upper(), "slug": slug, **extra}
    if gpu is not None:
        p["gpu"] = gpu
    if override is not None:
        p["kubespawner_override"] = override
    if options is not None:
        p["profile_options"] = options
    return p


def where(slug="a100"):
    return f"PlatformSpawner.profile_list profile {slug!r}: "


PROBLEMS = [
    ("valid-fixed", [profile(gpu=A100_GPU)], []),
    ("valid-option", [profile(gpu={"resource": GPU, "option": "gpus"}, options={"gpus": {"display_name": "GPUs", "choices": CHOICES}})], []),
    ("valid-mig", [profile(gpu={"resource": "nvidia.com/mig-1g.10gb", "count": 1, "type": "MIG 1g.10gb"})], []),
    ("no-gpu-key-ignored", [profile(override={"cpu_limit": 2})], []),
    ("gpu-not-dict", [profile(gpu="nvidia.com/gpu")],
     [where() + "gpu must be a dict such as {'resource': 'nvidia.com/gpu', 'count': 1}, not 'nvidia.com/gpu'"]),
    ("unknown-key", [profile(gpu={**A100_GPU, "cout": 2})],
     [where() + "gpu has unknown key(s) 'cout' (known: resource, count, type, type_label, type_value, option, toleration, scheduling)"]),
    ("bad-resource", [profile(gpu={"resource": "gpu", "count": 1})],
     [where() + "gpu.resource must be an extended resource name such as 'nvidia.com/gpu', 'amd.com/gpu' or 'nvidia.com/mig-1g.10gb', not 'gpu'"]),
    ("zero-count", [profile(gpu={"resource": GPU, "count": 0})], [where() + "gpu.count must be a whole number of GPUs, 1 or more, not 0"]),
    ("string-count", [profile(gpu={"resource": GPU, "count": "1"})], [where() + "gpu.count must be a whole number of GPUs, 1 or more, not '1'"]),
    ("count-and-option", [profile(gpu={"resource": GPU, "count": 1, "option": "gpus"}, options={"gpus": {"choices": CHOICES}})],
     [where() + "give either gpu.count (a fixed number) or gpu.option (a profile option whose choices give it), not both"]),
    ("option-missing", [profile(gpu={"resource": GPU, "option": "gpus"})],
     [where() + "gpu.option 'gpus' must name one of the profile's profile_options with choices"]),
    ("option-choice-without-count", [profile(gpu={"resource": GPU, "option": "gpus"}, options={"gpus": {"choices": {"small": {"display_name": "S"}}}})],
     [where() + "choice 'small' of option 'gpus' needs a GPU count: a whole-number key such as '2' or 'gpu_count': 2 (1 or more)"]),
    ("option-unlisted-choice", [profile(gpu={"resource": GPU, "option": "gpus"}, options={"gpus": {"choices": CHOICES, "unlisted_choice": {"enabled": True}}})],
     [where() + "profile option 'gpus' gives the GPU count, so it cannot allow an unlisted (free-text) choice"]),
    ("label-without-value", [profile(gpu={"resource": GPU, "count": 1, "type_label": PRODUCT})],
     [where() + "give gpu.type_label and gpu.type_value together (the node label that tells the GPU type, and its value)"]),
    ("bad-toleration", [profile(gpu={**A100_GPU, "toleration": "yes"})],
     [where() + "gpu.toleration must be true, false, a toleration dict or a list of them, not 'yes'"]),
    ("bad-scheduling", [profile(gpu={**A100_GPU, "scheduling": "nodeSelector"})],
     [where() + "gpu.scheduling must be one of node_selector, affinity, not 'nodeSelector'"]),
    ("override-count-disagrees", [profile(gpu=A100_GPU, override={"extra_resource_limits": {GPU: "2"}})],
     [where() + "kubespawner_override sets extra_resource_limits['nvidia.com/gpu'] = '2' but gpu.count is 1; remove the override "
      "(it is added for you) or make them agree"]),
    ("override-selector-disagrees", [profile(gpu=A100_GPU, override={"node_selector": {PRODUCT: "Tesla-V100"}})],
     [where() + "kubespawner_override sets node_selector['nvidia.com/gpu.product'] = 'Tesla-V100' but gpu.type_value is "
      "'NVIDIA-A100-SXM4-40GB'; the GPU type and the nodes the pod may use must agree"]),
    ("choice-override-disagrees",
     [profile(gpu={"resource": GPU, "option": "gpus"}, options={"gpus": {"choices": {"2": {"kubespawner_override": {"extra_resource_limits": {GPU: 1}}}}}})],
     [where() + "choice '2' of option 'gpus' sets extra_resource_limits['nvidia.com/gpu'] = 1 but its GPU count is 2; "
      "remove the override (it is added for you) or make them agree"]),
    ("named-by-display-name", [{"display_name": "Big GPU", "gpu": {"resource": GPU, "count": -1}}],
     ["PlatformSpawner.profile_list profile 'Big GPU': gpu.count must be a whole number of GPUs, 1 or more, not -1"]),
]


@pytest.mark.parametrize("profile_list, expected", [p[1:] for p in PROBLEMS], ids=[p[0] for p in PROBLEMS])
def test_gpu_problems(profile_list, expected):
    assert gpu_problems(profile_list) == expected


def test_validate_profiles_raises_with_every_problem():
    with pytest.raises(GpuProfileError) as info:
        validate_profiles([profile("a", gpu={"resource": GPU, "count": 0}), profile("b", gpu={"resource": "x", "count": 1})])
    assert len(info.value.problems) == 2
    assert str(info.value).splitlines() == info.value.problems


NORMALIZED = [
    ("fixed-count",
     profile(gpu=A100_GPU),
     {"extra_resource_limits": {GPU: "1"}, "tolerations": ExtendList("tolerations", [TOL]), "node_selector": {PRODUCT: A100}},
     None),
    ("no-type-no-selector",
     profile(gpu={"resource": GPU, "count": 2}),
     {"extra_resource_limits": {GPU: "2"}, "tolerations": ExtendList("tolerations", [TOL])},
     None),
    ("mig-tolerates-nvidia-gpu-taint",
     profile(gpu={"resource": "nvidia.com/mig-1g.10gb", "count": 1}),
     {"extra_resource_limits": {"nvidia.com/mig-1g.10gb": "1"}, "tolerations": ExtendList("tolerations", [TOL])},
     None),
    ("amd",
     profile(gpu={"resource": "amd.com/gpu", "count": 1}),
     {"extra_resource_limits": {"amd.com/gpu": "1"},
      "tolerations": ExtendList("tolerations", [{"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])},
     None),
    ("no-toleration",
     profile(gpu={**A100_GPU, "toleration": False}),
     {"extra_resource_limits": {GPU: "1"}, "node_selector": {PRODUCT: A100}, "gpu_default_toleration": False},
     None),
    ("own-toleration",
     profile(gpu={"resource": GPU, "count": 1, "toleration": {"key": "gpu", "operator": "Equal", "value": "yes"}}),
     {"extra_resource_limits": {GPU: "1"}, "tolerations": ExtendList("tolerations", [{"key": "gpu", "operator": "Equal", "value": "yes"}])},
     None),
    ("admin-explicit-kept",
     profile(gpu=A100_GPU, override={"extra_resource_limits": {GPU: "1", "example.com/fpga": "1"}, "node_selector": {"zone": "a"},
                                     "tolerations": [{"key": "dedicated", "operator": "Exists"}], "cpu_limit": 8}),
     {"extra_resource_limits": {GPU: "1", "example.com/fpga": "1"}, "node_selector": {"zone": "a", PRODUCT: A100},
      "tolerations": [{"key": "dedicated", "operator": "Exists"}, TOL], "cpu_limit": 8},
     None),
    ("affinity",
     profile(gpu={**A100_GPU, "scheduling": "affinity"}),
     {"extra_resource_limits": {GPU: "1"}, "tolerations": ExtendList("tolerations", [TOL]),
      "node_affinity_required": RequireNodeLabel(PRODUCT, [A100])},
     None),
    ("several-products-use-affinity",
     profile(gpu={**A100_GPU, "type_value": [A100, "NVIDIA-A100-SXM4-80GB"]}),
     {"extra_resource_limits": {GPU: "1"}, "tolerations": ExtendList("tolerations", [TOL]),
      "node_affinity_required": RequireNodeLabel(PRODUCT, [A100, "NVIDIA-A100-SXM4-80GB"])},
     None),
    ("option-counts-per-choice",
     profile(gpu={"resource": GPU, "option": "gpus", "type": "A100"},
             options={"gpus": {"display_name": "GPUs", "choices": {"1": {"display_name": "1"}, "big": {"display_name": "8", "gpu_count": 8}}}}),
     {"tolerations": ExtendList("tolerations", [TOL])},
     {"1": {"display_name": "1", "kubespawner_override": {"extra_resource_limits": {GPU: "1"}}},
      "big": {"display_name": "8", "gpu_count": 8, "kubespawner_override": {"extra_resource_limits": {GPU: "8"}}}}),
]


@pytest.mark.parametrize("given, override, choices", [n[1:] for n in NORMALIZED], ids=[n[0] for n in NORMALIZED])
def test_normalize(given, override, choices):
    before = copy.deepcopy(given)
    (out,) = normalize_profiles([given])
    assert given == before, "the input is not modified"
    assert out["kubespawner_override"] == override
    if choices is not None:
        assert out["profile_options"]["gpus"]["choices"] == choices
    assert normalize_profiles([out]) == [out], "normalizing twice changes nothing"


def test_normalize_leaves_profiles_without_gpu_and_accepts_a_dict():
    cpu = profile("cpu", override={"cpu_limit": 2})
    assert normalize_profiles({"b": profile("gpu", gpu={"resource": GPU, "count": 1}), "a": cpu})[0] == cpu


class FakeSpawner:
    def __init__(self, **traits):
        self.__dict__.update(traits)


EXTEND = [
    ("appends", [{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user"}],
     [{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user"}, TOL]),
    ("no-duplicate", [TOL], [TOL]),
    ("from-nothing", None, [TOL]),
]


@pytest.mark.parametrize("configured, expected", [e[1:] for e in EXTEND], ids=[e[0] for e in EXTEND])
def test_extend_list_keeps_configured_tolerations(configured, expected):
    assert ExtendList("tolerations", [TOL])(FakeSpawner(tolerations=configured)) == expected


PURPOSE = {"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}
GPU_EXPR = {"key": PRODUCT, "operator": "In", "values": [A100]}
AFFINITY = [
    ("no-terms", [], [{"matchExpressions": [GPU_EXPR]}]),
    ("anded-into-each-term", [{"matchExpressions": [PURPOSE]}, {"matchExpressions": []}],
     [{"matchExpressions": [PURPOSE, GPU_EXPR]}, {"matchExpressions": [GPU_EXPR]}]),
]


@pytest.mark.parametrize("configured, expected", [a[1:] for a in AFFINITY], ids=[a[0] for a in AFFINITY])
def test_require_node_label_ands_into_terms(configured, expected):
    spawner = FakeSpawner(node_affinity_required=copy.deepcopy(configured))
    assert RequireNodeLabel(PRODUCT, [A100])(spawner) == expected
    assert spawner.node_affinity_required == configured, "the configured terms are not modified"


PROFILE_LIST = [
    profile("cpu", default=True),
    profile("a100", gpu=A100_GPU),
    profile("multi", gpu={"resource": GPU, "option": "gpus", "type": "A100", "type_label": PRODUCT, "type_value": A100},
            options={"gpus": {"display_name": "GPUs", "choices": {"1": {"display_name": "1 GPU"}, "2": {"display_name": "2 GPUs", "default": True},
                                                                   "4": {"display_name": "4 GPUs"}}}}),
]
SEL = ((PRODUCT, (A100,)),)

REQUESTS = [
    ("default-profile-cpu", {}, None),
    ("fixed", {"profile": "a100"}, GpuRequest(GPU, 1, "A100", SEL)),
    ("option-choice", {"profile": "multi", "gpus": "4"}, GpuRequest(GPU, 4, "A100", SEL)),
    ("option-default-choice", {"profile": "multi"}, GpuRequest(GPU, 2, "A100", SEL)),
    ("option-unknown-choice", {"profile": "multi", "gpus": "3"}, None),
    ("unknown-profile", {"profile": "nope"}, None),
]


@pytest.mark.parametrize("options, expected", [r[1:] for r in REQUESTS], ids=[r[0] for r in REQUESTS])
def test_gpu_request(options, expected):
    assert gpu_request(PROFILE_LIST, options) == expected


def gpu_pod(name, user, n=1):
    return {"metadata": {"name": name, "namespace": "jhub", "annotations": {"hub.jupyter.org/username": user, **gpu_annotations(GPU, n, "A100", [])}},
            "spec": {"containers": [{"name": "notebook", "resources": {"limits": {GPU: str(n)}}}]}, "status": {"phase": "Running"}}


def quota(hard, used):
    return {"metadata": {"name": "gpu", "namespace": "jhub"}, "status": {"hard": {f"requests.{GPU}": str(hard)}, "used": {f"requests.{GPU}": str(used)}}}


def view_of(hard, used_by_others, mine=0, user_limit=0, user_options=None):
    ledger = GpuLedger(Policy(user_limit=user_limit), namespace="jhub")
    pods = [gpu_pod(f"o{i}", f"other{i}") for i in range(used_by_others)] + [gpu_pod(f"m{i}", "ada") for i in range(mine)]
    ledger.rebuild(pods)
    ledger.set_quotas("jhub", [quota(hard, len(pods))])
    views = build_form_view(PROFILE_LIST, ledger.view("ada", (), alternative="CPU"), user_options)
    return {v.slug: v for v in views}


def summary(views) -> dict:
    out = {}
    for slug, v in views.items():
        out[slug] = {"available": v.available, "checked": v.checked, "text": v.text, "reason_code": v.reason_code}
        if v.choices:
            out[slug]["choices"] = {k: (c.available, c.selected, c.reason_code) for k, c in v.choices.items()}
    return out


FORM_VIEWS = [
    ("all-free", dict(hard=8, used_by_others=0, user_limit=4),
     {"cpu": {"available": True, "checked": True, "text": "", "reason_code": ""},
      "a100": {"available": True, "checked": False, "text": "8 of 8 A100 free · you use 0 of 4", "reason_code": ""},
      "multi": {"available": True, "checked": False, "text": "8 of 8 A100 free · you use 0 of 4", "reason_code": "",
                "choices": {"1": (True, False, ""), "2": (True, True, ""), "4": (True, False, "")}}}),
    ("three-free-cap-one-saved-choice-too-big", dict(hard=8, used_by_others=5, user_limit=1, user_options={"profile": "multi", "gpus": "4"}),
     {"cpu": {"available": True, "checked": False, "text": "", "reason_code": ""},
      "a100": {"available": True, "checked": False, "text": "3 of 8 A100 free · you use 0 of 1", "reason_code": ""},
      "multi": {"available": True, "checked": True, "text": "3 of 8 A100 free · you use 0 of 1", "reason_code": "",
                "choices": {"1": (True, True, ""), "2": (False, False, "user_cap"), "4": (False, False, "user_cap")}}}),
    ("none-free-saved-gpu-profile-falls-back", dict(hard=8, used_by_others=8, user_options={"profile": "a100"}),
     {"cpu": {"available": True, "checked": True, "text": "", "reason_code": ""},
      "a100": {"available": False, "checked": False, "text": "0 of 8 A100 free · you use 0", "reason_code": "quota"},
      "multi": {"available": False, "checked": False, "text": "0 of 8 A100 free · you use 0", "reason_code": "quota",
                "choices": {"1": (False, False, "quota"), "2": (False, False, "quota"), "4": (False, False, "quota")}}}),
    ("user-at-cap", dict(hard=8, used_by_others=2, mine=1, user_limit=1),
     {"cpu": {"available": True, "checked": True, "text": "", "reason_code": ""},
      "a100": {"available": False, "checked": False, "text": "5 of 8 A100 free · you use 1 of 1", "reason_code": "user_cap"},
      "multi": {"available": False, "checked": False, "text": "5 of 8 A100 free · you use 1 of 1", "reason_code": "user_cap",
                "choices": {"1": (False, False, "user_cap"), "2": (False, False, "user_cap"), "4": (False, False, "user_cap")}}}),
]


@pytest.mark.parametrize("setup, expected", [f[1:] for f in FORM_VIEWS], ids=[f[0] for f in FORM_VIEWS])
def test_form_view(setup, expected):
    assert summary(view_of(**setup)) == expected


def test_form_view_reasons_are_the_spawn_messages():
    views = view_of(hard=8, used_by_others=8)
    assert views["a100"].reason == "All 8 A100 GPUs are in use (yours: 0). Pick the CPU profile or try again later."
    assert views["multi"].choices["4"].reason == views["a100"].reason
    assert (views["a100"].free, views["a100"].total, views["a100"].user_used) == (0, 8, 0)


class Hooks(HTMLParser):
    """Elements by id, with their attributes and text."""

    def __init__(self):
        super().__init__()
        self.by_id: dict[str, dict] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        a["_tag"], a["_text"] = tag, ""
        if "id" in a:
            self.by_id[a["id"]] = a
        self._open.append(a.get("id"))
        if tag in ("input", "br"):
            self._open.pop()

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for i in self._open:
            if i is not None:
                self.by_id[i]["_text"] += data


def render(views_setup) -> Hooks:
    views = view_of(**views_setup)
    env = Environment(loader=ChoiceLoader([PackageLoader("kubespawner", "templates")]))
    listing = annotate_profiles(PROFILE_LIST, list(views.values()))
    for p in listing:  # what KubeSpawner's _get_initialized_profile_list adds
        for o in (p.get("profile_options") or {}).values():
            o.setdefault("unlisted_choice", {"enabled": False})
    html = env.from_string(FORM_TEMPLATE).render(profile_list=listing, user_options=views_setup.get("user_options") or {})
    parser = Hooks()
    parser.feed(html)
    parser.html = html
    return parser


def test_rendered_form_hooks_for_a_full_pool():
    hooks = render(dict(hard=8, used_by_others=8, user_limit=1)).by_id
    label = hooks["profile-a100"]
    assert {k: label.get(k) for k in ("data-gpu-resource", "data-gpu-type", "data-gpu-available", "data-gpu-free", "data-gpu-total",
                                      "data-gpu-user-used", "data-gpu-user-cap", "data-gpu-reason")} == {
        "data-gpu-resource": GPU, "data-gpu-type": "A100", "data-gpu-available": "false", "data-gpu-free": "0", "data-gpu-total": "8",
        "data-gpu-user-used": "0", "data-gpu-user-cap": "1", "data-gpu-reason": "quota"}
    assert "disabled" in hooks["profile-item-a100"]
    assert "checked" in hooks["profile-item-cpu"] and "disabled" not in hooks["profile-item-cpu"]
    assert hooks["gpu-availability-a100"]["_text"] == "0 of 8 A100 free · you use 0 of 1"
    assert hooks["gpu-reason-a100"]["_text"] == "All 8 A100 GPUs are in use (yours: 0 of 1). Pick the CPU profile or try again later."
    assert "data-gpu-free" not in hooks["profile-cpu"]


def test_rendered_form_hooks_for_disabled_choices():
    parsed = render(dict(hard=8, used_by_others=5, user_limit=1, user_options={"profile": "multi", "gpus": "2"}))
    hooks = parsed.by_id
    assert hooks["profile-multi"]["data-gpu-available"] == "true" and hooks["profile-multi"]["data-gpu-free"] == "3"
    assert "checked" in hooks["profile-item-multi"] and "disabled" not in hooks["profile-item-multi"]
    assert "gpu-reason-multi" not in hooks
    assert hooks["gpu-reason-multi--gpus--2"]["data-gpu-reason"] == "user_cap"
    assert hooks["gpu-reason-multi--gpus--2"]["_text"].startswith("2 GPUs: This choice needs 2 GPUs, but you may use only 1 more")
    assert "gpu-reason-multi--gpus--1" not in hooks
    html = parsed.html
    assert '<option value="1" data-gpu-count="1" data-gpu-available="true" selected>1 GPU</option>' in html
    assert '<option value="4" data-gpu-count="4" data-gpu-available="false" disabled data-gpu-reason="user_cap">4 GPUs (not available)</option>' in html


def test_rendered_form_escapes_text():
    ledger = GpuLedger(Policy(group_limits={"<b>lab</b>": 0}), namespace="jhub")
    views = build_form_view(PROFILE_LIST[:2], ledger.view("ada", ("<b>lab</b>",)), {})
    env = Environment(loader=PackageLoader("kubespawner", "templates"))
    html = env.from_string(FORM_TEMPLATE).render(profile_list=annotate_profiles(PROFILE_LIST[:2], views), user_options={})
    assert "&lt;b&gt;lab&lt;/b&gt;" in html and "<b>lab</b>" not in html
