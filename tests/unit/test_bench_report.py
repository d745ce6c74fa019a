"""`make bench`'s report (tests/benchmarks/run.py), fed JSON dicts: no benchmark runs.

We test these aspects:
- each benchmark's JSON becomes its rows, with the ratio ours/stock computed from the two
  figures of the run and the goal's verdict (met and not met);
- a row whose stock figure is missing (kmock could not measure) shows "n/a" and no ratio;
- a failed benchmark shows as one failed row with its error, and the others' rows still follow;
  a benchmark whose JSON lacks a figure the report needs is a failed row too;
- the text table and the Markdown table: the header, one line per row, pipes and newlines of an
  error escaped, the machine line;
- running a benchmark: its JSON is read; a non-zero exit, a run past its time limit, no JSON and
  invalid JSON are each an error naming the cause (tiny scripts stand in for benchmarks);
- ``main``: one benchmark failing still writes report.json and report.md with the others' rows,
  and exits 1; all passing exits 0.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from helpers import REPO

spec = importlib.util.spec_from_file_location("bench_run", REPO / "tests" / "benchmarks" / "run.py")
run = importlib.util.module_from_spec(spec)
sys.modules["bench_run"] = run
spec.loader.exec_module(run)


def stats(median, p95=None, **extra):
    return {"median_ms": median, "p95_ms": p95 if p95 is not None else median * 2, **extra}


HUB_SPAWN = {
    "spawn_to_ready": {"spawns": 50, "time": {"ours": stats(120.0, 200.0), "stock": stats(100.0, 160.0)},
                       "hub_cpu": {"ours": stats(63.0, 70.0), "stock": stats(60.0, 80.0)}},
    "storm": {
        "ours": {"users": 200, "gpu_spawns": 20, "gpu_quota": 8, "probe": stats(30.0, 300.0), "post": stats(4000.0, 5000.0),
                 "hub_cpu_per_spawn_ms": 60.0, "outcomes": {"running": 188, "running_gpu": 8, "refused": 12}},
        "stock": {"users": 200, "gpu_spawns": 20, "gpu_quota": 8, "probe": stats(20.0, 150.0), "post": stats(3000.0, 4000.0),
                  "hub_cpu_per_spawn_ms": 50.0, "outcomes": {"running": 188, "running_gpu": 8, "refused": 11, "other": 1}},
    },
    "problems": [],
}
SPAWN_FORM = {"pods": 5000, "renders": 2000, "ours_render": {"median_ms": 1.0, "p99_ms": 4.0},
              "stock_render": {"median_ms": 10.0, "p99_ms": 20.0}, "goal": {"ratio_max": 1.5, "ours_median_max_ms": 3.0}}
GPU_QUOTA = {"decisions": {"setup": {"pods": 5000}, "decide_and_reserve": {"median_us": 20.0},
                           "stock_sum_over_pods": {"median_us": 16000.0}},
             "api": {"list_pods_raw_json_and_sum": {"median_us": 500000.0}, "get_resourcequotas_models": {"median_us": 1000.0}}}
CULLER = {"users": 10000, "running": 2000, "rounds": 5, "median_ms": {"ours": 2100.0, "upstream": 2000.0},
          "hub_requests_total": {"ours": 511, "upstream": 511}, "same_hub_requests": True}
DEVCLUSTER = {"results": {
    "devcluster": {"list_1000": {"raw": {"median_ms": 12.0}}, "fanout_100": {"last_watcher": {"median_ms": 25.0}},
                   "churn_raw": {"pairs_per_s": 500.0}, "churn_client": {"pairs_per_s": 200.0}},
    "kmock": {"list_1000": {"raw": {"median_ms": 60.0}}, "fanout_100": {"error": "only 0/100 watch streams opened"},
              "churn_raw": {"pairs_per_s": 5.0}, "churn_client": {"pairs_per_s": 2.0}},
}}
QUOTA = {"results": {
    "incremental": {"50": {"median_ms": 1.0}, "500": {"median_ms": 1.5}, "5000": {"median_ms": 2.5}},
    "full": {"50": {"median_ms": 10.0}, "500": {"median_ms": 100.0}, "5000": {"median_ms": 1000.0}},
}}
ALL = {"hub_spawn": HUB_SPAWN, "spawn_form": SPAWN_FORM, "gpu_quota": GPU_QUOTA, "culler": CULLER,
       "devcluster": DEVCLUSTER, "quota_accounting": QUOTA}


def rows_of(name, data):
    return run.build_rows({name: {"data": data}})


def by_measure(rows, start):
    [row] = [r for r in rows if r.measure.startswith(start)]
    return row


def test_hub_spawn_rows_and_ratios():
    rows = rows_of("hub_spawn", HUB_SPAWN)
    spawn = by_measure(rows, "Spawn → ready through the hub, median of 50")
    assert (spawn.ours, spawn.stock, spawn.unit, spawn.ratio) == (120.0, 100.0, "ms", pytest.approx(1.2))
    assert (spawn.goal, spawn.met) == ("≤ 1.05×", False)
    cpu = by_measure(rows, "Hub CPU time per spawn, median")
    assert cpu.ratio == pytest.approx(1.05) and cpu.met is True
    p95 = by_measure(rows, "Hub CPU time per spawn, p95")
    assert p95.ratio == pytest.approx(70 / 80) and (p95.goal, p95.met) == ("", None)
    assert by_measure(rows, "Storm of 200: hub API p95").ratio == pytest.approx(2.0)
    assert by_measure(rows, "Storm of 200: spawn POST response p50").ratio == pytest.approx(4 / 3)
    ended = by_measure(rows, "Storm of 200 (20 GPU spawns, 8 GPUs)")
    assert ended.ours == "188 running (8 GPU), 12 refused"
    assert ended.stock == "188 running (8 GPU), 11 refused, 1 other"
    assert ended.ratio is None and ended.met is True


def test_storm_with_a_problem_does_not_meet_its_goal():
    data = json.loads(json.dumps(HUB_SPAWN))
    data["storm"]["ours"]["outcomes"]["other"] = 2
    ended = by_measure(rows_of("hub_spawn", data), "Storm of 200 (")
    assert ended.met is False and ended.ours.endswith(", 2 other")


@pytest.mark.parametrize("ours, met", [(1.0, True), (2.0, False), (16.0, False)], ids=["fast", "over-3ms-cap-not-ratio", "over-ratio"])
def test_spawn_form_goal_is_ratio_and_cap(ours, met):
    data = {**SPAWN_FORM, "ours_render": {"median_ms": ours, "p99_ms": 4.0},
            "stock_render": {"median_ms": 1.5 if ours == 2.0 else 10.0, "p99_ms": 20.0}}
    if ours == 2.0:
        data["goal"] = {"ratio_max": 1.5, "ours_median_max_ms": 1.8}
    row = rows_of("spawn_form", data)[0]
    assert row.met is met and row.ratio == pytest.approx(ours / data["stock_render"]["median_ms"])


def test_gpu_quota_rows_each_stock_way():
    rows = rows_of("gpu_quota", GPU_QUOTA)
    assert [r.ratio for r in rows] == [pytest.approx(0.00125), pytest.approx(0.00004), pytest.approx(0.02)]
    assert all(r.unit == "µs" and r.met is True and r.goal == "< 1 ms" for r in rows)
    no_api = rows_of("gpu_quota", {"decisions": GPU_QUOTA["decisions"]})
    assert len(no_api) == 1


def test_culler_rows():
    cycle, requests = rows_of("culler", CULLER)
    assert cycle.ratio == pytest.approx(1.05) and cycle.met is True
    assert (requests.ours, requests.stock, requests.ratio, requests.met) == (511, 511, 1.0, True)
    slow = rows_of("culler", {**CULLER, "median_ms": {"ours": 2200.0, "upstream": 2000.0}, "same_hub_requests": False})
    assert [r.met for r in slow] == [False, False]


def test_devcluster_rows_with_a_stock_figure_missing():
    rows = rows_of("devcluster", DEVCLUSTER)
    listing, fanout, raw, client = rows
    assert listing.ratio == pytest.approx(0.2) and listing.met is True
    assert fanout.stock is None and fanout.ratio is None and fanout.met is False  # 25 ms: over the 20 ms goal
    assert run.cells(fanout)[2:4] == ("n/a", "–")
    assert raw.ratio == pytest.approx(100.0) and client.unit == "pairs/s"
    assert run.goal_cell(raw) == "higher is better"


def test_devcluster_without_our_figures_is_a_failed_row():
    data = {"results": {"devcluster": {"list_1000": {"error": "boom"}, "fanout_100": {}}}}
    [row] = rows_of("devcluster", data)
    assert row.ours == "failed" and "the emulator's own figures are missing" in row.error


def test_quota_accounting_rows_against_the_50_pod_figure():
    rows = rows_of("quota_accounting", QUOTA)
    inc500, inc5000, full500, full5000 = rows
    assert (inc500.ratio, inc500.goal) == (pytest.approx(1.5), "")
    assert (inc5000.ratio, inc5000.goal, inc5000.met) == (pytest.approx(2.5), "≤ 2×", False)
    assert full5000.ratio == pytest.approx(100.0) and "full re-sum" in full5000.measure
    assert full500.ratio == pytest.approx(10.0)


def test_a_failed_benchmark_is_one_row_and_the_others_follow():
    outcomes = {name: {"data": data} for name, data in ALL.items()}
    outcomes["culler"] = {"error": "exit status 1: AssertionError: boom"}
    outcomes["spawn_form"] = {"data": {"pods": 5000}}  # lacks the figures
    rows = run.build_rows(outcomes)
    culler = [r for r in rows if r.bench == "culler"]
    assert len(culler) == 1 and culler[0].ours == "failed" and culler[0].error == "exit status 1: AssertionError: boom"
    assert culler[0].measure == run.BY_NAME["culler"].title and culler[0].met is False
    [form] = [r for r in rows if r.bench == "spawn_form"]
    assert form.error.startswith("its JSON lacks figures the report needs (KeyError")
    # Every other benchmark's rows are there, in the order of the benchmarks.
    assert [r.bench for r in rows if r.bench not in ("culler", "spawn_form")] == (
        ["hub_spawn"] * 10 + ["gpu_quota"] * 3 + ["devcluster"] * 4 + ["quota_accounting"] * 4)
    assert run.goal_cell(culler[0]) == "FAILED: exit status 1: AssertionError: boom"


MACHINE = {"start": "2026-12-03 17:00 UTC", "commit": "abc123", "duration_s": 900, "cpu_count": 2, "cpu_model": "AMD EPYC",
           "memory_gib": 23.4, "loadavg_before": [1.0, 1.0, 1.0], "loadavg_after": [2.5, 1.5, 1.0], "python": "3.11.7",
           "versions": {"jupyterhub": "5.5.0", "jupyterhub-kubespawner": "7.1.0", "kubernetes_asyncio": "36.1.0"}}


def test_markdown_and_text_tables():
    rows = run.build_rows({"culler": {"data": CULLER}, "devcluster": {"error": "exit status 1: a | b\nc"}})
    md = run.markdown(rows, MACHINE, "full")
    lines = md.splitlines()
    assert lines[0] == ("`make bench`, 2026-12-03 17:00 UTC, commit abc123, 15.0 min. Machine: 2 × AMD EPYC, 23 GiB; "
                        "1-minute load average 1.00 → 2.50. Python 3.11.7, JupyterHub 5.5.0, KubeSpawner 7.1.0, "
                        "kubernetes_asyncio 36.1.0.")
    assert lines[2] == "| Measure | Ours | Stock | Ratio (ours/stock) | Goal |"
    assert lines[3] == "|---|---|---|---|---|"
    assert lines[4] == ("| Culler cycle, 10,000 users / 2,000 servers, median of 5 (stock: idle-culler 2.0) "
                        "| 2,100 ms | 2,000 ms | 1.050× | ≤ 1.05×: met |")
    assert lines[5] == "| Culler cycle: hub requests | 511 requests | 511 requests | 1.000× | the same: met |"
    assert lines[6] == "| Kubernetes API emulator vs kmock 0.8 | failed | – | – | FAILED: exit status 1: a \\| b c |"
    assert len(lines) == 7
    assert "BENCH_ARGS=--quick" in run.markdown(rows, MACHINE, "quick").splitlines()[0]
    text = run.text_table(rows).splitlines()
    assert text[0].split() [:1] == ["Measure"] and set(text[1]) <= {"-", " "} and len(text) == 2 + len(rows)


@pytest.mark.parametrize("ratio, text", [(1.054, "1.054×"), (0.0023, "0.0023×"), (51.41, "51.4×"), (183.2, "183×"), (None, "–")],
                         ids=["near-one", "tiny", "tens", "hundreds", "none"])
def test_ratio_format(ratio, text):
    row = run.Row("x", "x")
    row.ratio = ratio
    assert run.ratio_cell(row) == text


@pytest.mark.parametrize("value, text", [(1234.5, "1,234 ms"), (123.4, "123 ms"), (12.34, "12.3 ms"), (1.234, "1.23 ms"),
                                         (0.1234, "0.123 ms")], ids=["thousands", "hundreds", "tens", "units", "fraction"])
def test_number_format(value, text):
    assert run.cell(value, "ms") == text


# -- running benchmarks (tiny scripts stand in) ---------------------------------------------------

def script(tmp_path, name, body, timeout=60):
    path = tmp_path / f"{name}.py"
    path.write_text("import json, sys, time\nout = sys.argv[sys.argv.index('--out') + 1]\n" + body)
    return run.Bench(name, str(path), f"The {name} benchmark", quick=(), timeout_quick=timeout)


@pytest.mark.parametrize("body, error", [
    ("json.dump({'x': 1}, open(out, 'w'))", None),
    ("json.dump({'x': 1}, open(out, 'w'))\nraise SystemExit('FAILED: 3 spawns ended otherwise')",
     "exit status 1: FAILED: 3 spawns ended otherwise"),
    ("raise RuntimeError('the emulator did not start')", "exit status 1: RuntimeError: the emulator did not start"),
    ("time.sleep(30)", "did not finish within 1 s (stopped)"),
    ("print('done')", "it wrote no "),
    ("open(out, 'w').write('{not json')", "its JSON "),
], ids=["ok", "failed-with-json", "crashed", "timed-out", "no-json", "bad-json"])
def test_run_bench(tmp_path, body, error):
    bench = script(tmp_path, "fake", body, timeout=1 if "sleep" in body else 60)
    result = run.run_bench(bench, quick=True, out_dir=tmp_path)
    if error is None:
        assert "error" not in result and result["data"] == {"x": 1}
    else:
        assert result["error"].startswith(error), result["error"]
    assert (tmp_path / "fake.log").exists()


def test_main_writes_the_report_and_exits_1_when_one_fails(tmp_path, monkeypatch):
    good = script(tmp_path, "good", "json.dump({'median_ms': {'ours': 3.0, 'upstream': 2.0}}, open(out, 'w'))")
    bad = script(tmp_path, "bad", "raise SystemExit('FAILED: the hub exited')")
    monkeypatch.setattr(run, "BENCHES", [good, bad])
    monkeypatch.setattr(run, "BY_NAME", {"good": good, "bad": bad})
    monkeypatch.setattr(run, "ROWS", {"good": lambda d: [run.Row("good", "Good", d["median_ms"]["ours"], d["median_ms"]["upstream"], "ms")],
                                      "bad": lambda d: []})
    assert run.main(["--quick", "--out-dir", str(tmp_path)]) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["mode"] == "quick" and report["ok"] is False
    assert [(r["measure"], r["ratio"], r["ours_text"]) for r in report["rows"]] == [("Good", 1.5, "3.00 ms"), ("The bad benchmark", None, "failed")]
    assert report["benchmarks"]["bad"]["status"] == "failed" and report["benchmarks"]["good"]["status"] == "ok"
    assert report["figures"]["good"] == {"median_ms": {"ours": 3.0, "upstream": 2.0}}
    for key in ("cpu_model", "cpu_count", "memory_gib", "loadavg_before", "loadavg_after", "python", "commit", "start", "duration_s"):
        assert key in report["machine"], key
    assert set(report["machine"]["versions"]) >= {"jupyterhub", "jupyterhub-kubespawner", "kubernetes_asyncio"}
    md = (tmp_path / "report.md").read_text()
    assert "| Good | 3.00 ms | 2.00 ms | 1.500× |  |" in md and "FAILED: exit status 1: FAILED: the hub exited" in md
    assert md.startswith(f'`make bench BENCH_ARGS="--quick --out-dir {tmp_path}"`, ')

    assert run.main(["--quick", "--only", "good", "--out-dir", str(tmp_path)]) == 0
    assert [r["measure"] for r in json.loads((tmp_path / "report.json").read_text())["rows"]] == ["Good"]
