"""One notion of a GPU profile (jhplatform.policy.profiles.resolved_gpus and its users).

We test these aspects:
- what a profile or option choice resolves to, as whole requests: a ``gpu:`` entry (fixed and
  per option), plain ``extra_resource_limits`` / ``extra_resource_guarantees`` with NVIDIA, MIG,
  AMD and Intel resource names, choices overriding the profile, the spawner's configured limits,
  a count of 0, a non-GPU extended resource, unknown choices;
- which option changes the GPUs and what each choice asks for;
- the alternative a refusal suggests, for every order of the profiles and every refused
  profile: never a profile that can ask for a GPU, never the refused one, ``None`` when none is
  left; and the ledger's messages then name no profile;
- the default GPU tolerations (ExtendedResourceToleration): one per GPU resource, the vendor
  taint for MIG, nothing for CPU pods, nothing new for taints already tolerated;
- the spawn form's view of a plain KubeSpawner GPU profile: a GPU profile with availability
  and a disabled state, like a ``gpu:`` profile.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jhplatform.policy.gpu_ledger import GpuLedger, render_message
from jhplatform.policy.profiles import (
    GpuRequest,
    asks_for_gpu,
    build_form_view,
    gpu_choices,
    gpu_request,
    gpu_tolerations,
    normalize_profiles,
    resolved_gpus,
    suggest_alternative,
)

GPU = "nvidia.com/gpu"
PRODUCT = "nvidia.com/gpu.product"
A100 = "NVIDIA-A100-SXM4-40GB"


def limits(**extra):
    return {"kubespawner_override": {"extra_resource_limits": dict(extra)}}


PLAIN = {"display_name": "GPU", "slug": "gpu", "kubespawner_override": {"extra_resource_limits": {GPU: "1"}}}
CPU = {"display_name": "CPU", "slug": "cpu", "kubespawner_override": {"cpu_limit": 2}}
SMALL = {"display_name": "Small", "slug": "small"}
ENTRY = {"display_name": "A100", "slug": "a100", "gpu": {"resource": GPU, "count": 1, "type": "A100", "type_label": PRODUCT, "type_value": A100}}
CHOOSER = {
    "display_name": "Machine", "slug": "machine",
    "profile_options": {"size": {"display_name": "Size", "choices": {
        "cpu": {"display_name": "CPU only", "default": True},
        "t4": {"display_name": "1 GPU", "kubespawner_override": {"extra_resource_limits": {GPU: "1"}, "node_selector": {PRODUCT: "Tesla-T4"}}},
        "two": {"display_name": "2 GPUs", "kubespawner_override": {"extra_resource_limits": {GPU: 2}}},
    }}},
}
COUNTED = {
    "display_name": "A100 (several)", "slug": "multi",
    "gpu": {"resource": GPU, "option": "gpus", "type": "A100"},
    "profile_options": {"gpus": {"display_name": "GPUs", "choices": {"1": {"display_name": "1", "default": True}, "4": {"display_name": "4"}}}},
}

RESOLVED = [
    ("plain-nvidia", PLAIN, None, None, GpuRequest(GPU, 1)),
    ("plain-int-count", {"slug": "p", **limits(**{GPU: 2})}, None, None, GpuRequest(GPU, 2)),
    ("plain-mig", {"slug": "p", **limits(**{"nvidia.com/mig-1g.10gb": "1"})}, None, None, GpuRequest("nvidia.com/mig-1g.10gb", 1)),
    ("plain-amd", {"slug": "p", **limits(**{"amd.com/gpu": "1"})}, None, None, GpuRequest("amd.com/gpu", 1)),
    ("plain-intel", {"slug": "p", **limits(**{"gpu.intel.com/i915": "1"})}, None, None, GpuRequest("gpu.intel.com/i915", 1)),
    ("guarantee-only", {"slug": "p", "kubespawner_override": {"extra_resource_guarantees": {GPU: "1"}}}, None, None, GpuRequest(GPU, 1)),
    ("zero-count", {"slug": "p", **limits(**{GPU: "0"})}, None, None, None),
    ("not-a-gpu", {"slug": "p", **limits(**{"example.com/fpga": "1"})}, None, None, None),
    ("cpu", CPU, None, None, None),
    ("no-override", SMALL, None, None, None),
    ("configured-limits", SMALL, None, {"extra_resource_limits": {GPU: "1"}}, GpuRequest(GPU, 1)),
    ("profile-overrides-configured", {"slug": "p", **limits(**{GPU: "0"})}, None, {"extra_resource_limits": {GPU: "1"}}, None),
    ("gpu-entry", ENTRY, None, None, GpuRequest(GPU, 1, "A100", ((PRODUCT, (A100,)),))),
    ("gpu-entry-normalized", normalize_profiles([ENTRY])[0], None, None, GpuRequest(GPU, 1, "A100", ((PRODUCT, (A100,)),))),
    ("gpu-option-default", COUNTED, None, None, GpuRequest(GPU, 1, "A100")),
    ("gpu-option-chosen", COUNTED, {"gpus": "4"}, None, GpuRequest(GPU, 4, "A100")),
    ("gpu-option-unknown-choice", COUNTED, {"gpus": "3"}, None, None),
    ("choice-default-cpu", CHOOSER, None, None, None),
    ("choice-gpu-with-selector", CHOOSER, {"size": "t4"}, None, GpuRequest(GPU, 1, "", ((PRODUCT, ("Tesla-T4",)),))),
    ("choice-two", CHOOSER, {"size": "two"}, None, GpuRequest(GPU, 2)),
    ("choice-unknown-falls-to-profile", CHOOSER, {"size": "huge"}, None, None),
    ("not-a-profile", None, None, None, None),
]


@pytest.mark.parametrize("profile, choices, base, expected", [r[1:] for r in RESOLVED], ids=[r[0] for r in RESOLVED])
def test_resolved_gpus(profile, choices, base, expected):
    assert resolved_gpus(profile, choices, base=base) == expected


def test_gpu_request_reads_the_choices_of_user_options():
    profiles = [CPU, CHOOSER]
    assert gpu_request(profiles, {"profile": "machine", "size": "two"}) == GpuRequest(GPU, 2)
    assert gpu_request(profiles, {}) is None, "the default (first) profile is CPU"
    assert gpu_request(profiles, {"profile": "nope"}) is None


def test_gpu_choices():
    assert gpu_choices(CHOOSER) == ("size", {"cpu": None, "t4": GpuRequest(GPU, 1, "", ((PRODUCT, ("Tesla-T4",)),)), "two": GpuRequest(GPU, 2)})
    assert gpu_choices(COUNTED) == ("gpus", {"1": GpuRequest(GPU, 1, "A100"), "4": GpuRequest(GPU, 4, "A100")})
    assert gpu_choices(PLAIN) == (None, {})
    assert gpu_choices(SMALL) == (None, {})


@pytest.mark.parametrize("profile, expected", [(PLAIN, True), (CHOOSER, True), (ENTRY, True), (COUNTED, True), (CPU, False), (SMALL, False)],
                         ids=["plain", "chooser", "entry", "counted", "cpu", "small"])
def test_asks_for_gpu(profile, expected):
    assert asks_for_gpu(profile) is expected


ALL = [PLAIN, CPU, SMALL, ENTRY, CHOOSER, COUNTED]
NO_GPU = {"CPU", "Small"}


@pytest.mark.parametrize("order", list(itertools.permutations([PLAIN, CPU, ENTRY, CHOOSER])),
                         ids=lambda o: "-".join(p["slug"] for p in o))
def test_alternative_for_every_order(order):
    for refused in [p["slug"] for p in order] + [None]:
        suggestion = suggest_alternative(list(order), refused)
        # CPU is the only profile without a GPU: refused itself, there is nothing to suggest.
        assert suggestion == (None if refused == "cpu" else "CPU"), (refused, suggestion)


@settings(max_examples=300, deadline=None)
@given(st.permutations(ALL).flatmap(lambda o: st.tuples(st.just(o), st.integers(0, len(o)), st.sets(st.sampled_from(["CPU", "Small"])))))
def test_alternative_is_never_a_gpu_profile_nor_the_refused_one(case):
    order, cut, dropped = case
    profiles = [p for p in order[:cut] if p["display_name"] not in dropped] or list(order[:1])
    for refused in [p["slug"] for p in profiles]:
        suggestion = suggest_alternative(profiles, refused)
        names = {p["display_name"]: p for p in profiles}
        if suggestion is None:
            assert not any(n in NO_GPU and names[n]["slug"] != refused for n in names), profiles
        else:
            assert suggestion in NO_GPU and names[suggestion]["slug"] != refused
            assert suggestion == next(p["display_name"] for p in profiles if p["display_name"] in NO_GPU and p["slug"] != refused)


def test_refused_cpu_like_profile_is_never_suggested():
    # Refused for another reason (the configured limits make every profile a GPU one).
    assert suggest_alternative([SMALL, CPU], "small") == "CPU"
    assert suggest_alternative([SMALL], "small") is None
    assert suggest_alternative([SMALL, CPU], None, {"extra_resource_limits": {GPU: "1"}}) is None


def test_messages_without_an_alternative_name_no_profile():
    ledger = GpuLedger()
    ledger.set_quotas("gpu", [{"metadata": {"name": "q"}, "status": {"hard": {f"requests.{GPU}": "0"}, "used": {}}}])
    profiles = [PLAIN, ENTRY]
    d = ledger.decide("ada", (), GPU, "", 1, namespace="gpu", alternative=suggest_alternative(profiles, "gpu"))
    assert d.message == ("No GPUs are available on this hub right now. Ask your hub admin. "
                         "There is no profile without a GPU to pick instead.")
    assert "profile" not in render_message(d, suggest_alternative(profiles, "gpu")).replace("no profile without", "")


TOLERATIONS = [
    ("nvidia", [GPU], [], [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]),
    ("amd", ["amd.com/gpu"], [], [{"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]),
    ("mig-and-vendor-taint", ["nvidia.com/mig-1g.10gb"], [],
     [{"key": "nvidia.com/mig-1g.10gb", "operator": "Exists", "effect": "NoSchedule"}, {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]),
    ("cpu-pod", [], [{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}], []),
    ("already-tolerated", [GPU], [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}], []),
    ("tolerate-everything", [GPU], [{"operator": "Exists"}], []),
    ("equal-toleration-is-not-enough", [GPU], [{"key": GPU, "operator": "Equal", "value": "yes", "effect": "NoSchedule"}],
     [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]),
    ("other-effect", [GPU], [{"key": GPU, "operator": "Exists", "effect": "NoExecute"}], [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]),
]


@pytest.mark.parametrize("resources, current, expected", [t[1:] for t in TOLERATIONS], ids=[t[0] for t in TOLERATIONS])
def test_gpu_tolerations(resources, current, expected):
    assert gpu_tolerations(resources, current) == expected


def test_form_view_of_plain_profiles():
    ledger = GpuLedger()
    ledger.set_quotas("gpu", [{"metadata": {"name": "q"}, "status": {"hard": {f"requests.{GPU}": "1"}, "used": {f"requests.{GPU}": "0"}}}])
    profiles = [{**CPU, "default": True}, PLAIN, CHOOSER]
    view = ledger.view("ada", (), "gpu", alternative=suggest_alternative(profiles, None))
    cpu, plain, chooser = build_form_view(profiles, view)
    assert (cpu.gpu, cpu.checked) == (False, True)
    assert (plain.gpu, plain.available, plain.resource, plain.count, plain.text) == (True, True, GPU, 1, "1 of 1 GPUs free · you use 0")
    assert (chooser.gpu, chooser.option, chooser.available) == (True, "size", True)
    assert {k: (c.count, c.available, c.reason_code) for k, c in chooser.choices.items()} == {
        "cpu": (0, True, ""), "t4": (1, True, ""), "two": (2, False, "quota")}
    assert chooser.choices["cpu"].selected
    assert chooser.choices["two"].reason == "Only 1 of 1 GPU is free and this choice needs 2. Pick fewer GPUs or the CPU profile, or try again later."

    ledger.reserve("gpu/jupyter-bob", __import__("jhplatform.policy.gpu_ledger", fromlist=["Usage"]).Usage.of("bob", "gpu", GPU, 1))
    cpu, plain, chooser = build_form_view(profiles, ledger.view("ada", (), "gpu", alternative="CPU"))
    assert (plain.available, plain.reason_code, plain.reason) == (False, "quota", "The only GPU is in use (yours: 0). Pick the CPU profile or try again later.")
    assert chooser.available, "its CPU choice is still available"
