"""What makes tests/benchmarks/bench_hub_spawn.py's storm pass or fail (no hub runs).

We test these aspects:
- the storm's mix: a tenth of the users, and at least 4 more than the 8 GPUs, ask for a GPU,
  spread through the list, at every size (so some GPU spawns must be refused);
- how one spawn ended: running; a GPU spawn refused with a message naming the GPUs or the quota
  (ours, and stock's raw 403); anything else is "other": a CPU spawn that failed, a GPU refusal
  without a reason, an empty failure, a stream that ended neither ready nor failed;
- what fails the benchmark: any "other", more GPU servers than the quota, a pod left Pending or
  a pod count that differs from the servers running, a probe error; a clean storm has none.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from helpers import REPO

spec = importlib.util.spec_from_file_location("bench_hub_spawn", REPO / "tests" / "benchmarks" / "bench_hub_spawn.py")
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_hub_spawn"] = bench
spec.loader.exec_module(bench)


@pytest.mark.parametrize("users, gpu", [(200, 20), (50, 12), (20, 12), (5, 5)], ids=["200", "50", "20", "fewer-than-12"])
def test_storm_mix(users, gpu):
    names = [f"storm-{i:03d}" for i in range(users)]
    profiles = bench.storm_profiles(names)
    assert bench.gpu_spawns(users) == gpu
    assert list(profiles) == names and sum(p == "gpu" for p in profiles.values()) == gpu
    assert set(profiles.values()) <= {"gpu", "cpu"}
    if users > gpu:
        # Spread: no half of the list holds all the GPU spawns.
        first_half = [n for n in names[: users // 2] if profiles[n] == "gpu"]
        assert 0 < len(first_half) < gpu


OURS_REFUSAL = {"failed": True, "message": "Spawn failed: All 8 GPUs are in use (yours: 0). Pick the CPU profile or try again later."}
STOCK_REFUSAL = {"failed": True, "message": 'Spawn failed: (403)\nReason: error\nHTTP response body: {"message":"pods \\"jupyter-x\\" is '
                 'forbidden: exceeded quota: gpu-quota, requested: requests.nvidia.com/gpu=1"}'}


@pytest.mark.parametrize("profile, end, kind", [
    ("cpu", None, "running"),
    ("gpu", None, "running"),
    ("gpu", OURS_REFUSAL, "refused"),
    ("gpu", STOCK_REFUSAL, "refused"),
    ("cpu", OURS_REFUSAL, "other"),
    ("gpu", {"failed": True, "message": "Spawn failed: Timeout"}, "other"),
    ("gpu", {"failed": True, "message": ""}, "other"),
    ("gpu", {"progress": 50, "message": "Pod scheduled"}, "other"),
], ids=["cpu-running", "gpu-running", "ours-refusal", "stock-raw-403", "cpu-refused", "gpu-no-reason", "empty-failure",
        "stream-ended-pending"])
def test_classify(profile, end, kind):
    got, message = bench.classify(profile, end)
    assert got == kind
    if kind == "refused":
        assert not message.startswith("Spawn failed") and ("GPU" in message or "quota" in message)
    if kind == "other":
        assert message


def storm(**changes):
    s = {"gpu_quota": 8, "outcomes": {"running": 188, "running_gpu": 8, "running_cpu": 180, "refused": 12},
         "others": [], "pods_at_end": {"total": 188, "phases": {"Running": 188}}, "probe_errors": []}
    for key, value in changes.items():
        s[key] = value
    return s


@pytest.mark.parametrize("s, says", [
    (storm(), None),
    (storm(outcomes={"running": 187, "running_gpu": 8, "refused": 12, "other": 1},
           others=[{"user": "storm-001", "profile": "cpu", "end": "Spawn failed: Timeout"}],
           pods_at_end={"total": 187, "phases": {"Running": 187}}), "1 spawns ended neither running nor refused"),
    (storm(outcomes={"running": 189, "running_gpu": 9, "refused": 11}, pods_at_end={"total": 189, "phases": {"Running": 189}}),
     "9 GPU servers running for a quota of 8"),
    (storm(pods_at_end={"total": 189, "phases": {"Running": 188, "Pending": 1}}), "pods at the end"),
    (storm(pods_at_end={"total": 187, "phases": {"Running": 187}}), "servers running 188"),
    (storm(probe_errors=["probe answered 500"]), "the probe failed during the storm"),
], ids=["clean", "other", "over-quota", "pending-pod", "pod-count-differs", "probe-error"])
def test_storm_problems(s, says):
    problems = bench.storm_problems("ours", s)
    if says is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].startswith("ours: ") and says in problems[0], problems
