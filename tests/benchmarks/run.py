"""Every benchmark, ours against the stock component measured in the same run: one table.

Run from the repository root::

    make bench                                  # the full run (about 11 minutes on 2 cores)
    make bench BENCH_ARGS=--quick               # every benchmark at a small size (under 5 minutes)
    .venv/bin/python tests/benchmarks/run.py --only hub_spawn --only culler

Each benchmark runs as a subprocess (each script stays runnable alone) and writes its JSON;
this script reads the JSON and prints one table: measure | ours | stock | ratio (ours/stock) |
goal. Every ratio is computed here from the two figures the benchmark measured in this run.
A benchmark that fails (non-zero exit, no JSON, or JSON without the figures) shows as failed
with its error; the others still run, and the script exits 1.

Writes ``tests/benchmarks/out/report.json`` (every row with its figures and units, each
benchmark's status, command and log, and the machine: CPU, memory, load average before and
after, Python and package versions, the git commit, start time and duration) and
``tests/benchmarks/out/report.md`` (the same table in Markdown, for docs/performance.md).
Each benchmark's output goes to ``tests/benchmarks/out/<name>.log``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OUT = HERE / "out"


# -- the benchmarks ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    title: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ("--quick",)
    timeout_full: float = 600
    timeout_quick: float = 180

    def command(self, quick: bool, out: Path) -> list[str]:
        return [sys.executable, str(HERE / self.script), *(self.quick if quick else self.full), "--out", str(out)]


BENCHES = [
    Bench("hub_spawn", "bench_hub_spawn.py", "Spawns through two live hubs (PlatformSpawner vs KubeSpawner)",
          timeout_full=900, timeout_quick=240),
    Bench("spawn_form", "bench_spawn_form.py", "Spawn form at 5,000 pods", timeout_full=300, timeout_quick=60),
    Bench("gpu_quota", "bench_gpu_quota.py", "GPU quota decision at 5,000 pods",
          full=("--rounds", "0"), quick=("--quick", "--rounds", "0"), timeout_full=400, timeout_quick=120),
    Bench("culler", "bench_culler.py", "One culler cycle at 10,000 users / 2,000 servers",
          quick=("--rounds", "1"), timeout_full=400, timeout_quick=120),
    Bench("devcluster", "bench_devcluster.py", "Kubernetes API emulator vs kmock 0.8", timeout_full=720, timeout_quick=240),
    Bench("quota_accounting", "bench_quota_accounting.py", "Emulator pod creates under a ResourceQuota",
          quick=("--creates", "20"), timeout_full=400, timeout_quick=150),
]
BY_NAME = {b.name: b for b in BENCHES}


# -- rows ----------------------------------------------------------------------------------------

@dataclass
class Row:
    """One line of the table. ``ours``/``stock`` are numbers in ``unit`` (or text for a row of
    counts); ``ratio`` is ours/stock, computed from them; ``met`` is the goal's verdict, if any."""

    bench: str
    measure: str
    ours: float | str | None = None
    stock: float | str | None = None
    unit: str = ""
    goal: str = ""
    met: bool | None = None
    error: str | None = None
    ratio: float | None = field(default=None, init=False)

    def __post_init__(self):
        if isinstance(self.ours, (int, float)) and isinstance(self.stock, (int, float)) and self.stock:
            self.ratio = self.ours / self.stock


def ratio_goal(row: Row, limit: float) -> Row:
    """Goal: ours/stock at most ``limit``."""
    row.goal = f"≤ {limit:g}×"
    row.met = None if row.ratio is None else row.ratio <= limit
    return row


def failed_row(bench: Bench, error: str) -> Row:
    return Row(bench.name, bench.title, ours="failed", error=error, met=False)


def rows_hub_spawn(d: dict) -> list[Row]:
    s = d["spawn_to_ready"]
    n = s["spawns"]
    t, c = s["time"], s["hub_cpu"]
    rows = [
        ratio_goal(Row("hub_spawn", f"Spawn → ready through the hub, median of {n} alternating (stock: KubeSpawner)",
                       t["ours"]["median_ms"], t["stock"]["median_ms"], "ms"), 1.05),
        Row("hub_spawn", "Spawn → ready, p95", t["ours"]["p95_ms"], t["stock"]["p95_ms"], "ms"),
        ratio_goal(Row("hub_spawn", f"Hub CPU time per spawn, median of {n}", c["ours"]["median_ms"], c["stock"]["median_ms"], "ms"), 1.05),
        Row("hub_spawn", "Hub CPU time per spawn, p95", c["ours"]["p95_ms"], c["stock"]["p95_ms"], "ms"),
    ]
    so, ss = d["storm"]["ours"], d["storm"]["stock"]
    m = so["users"]
    rows += [
        Row("hub_spawn", f"Storm of {m} REST spawns: hub API p50 (GET a user every 50 ms)",
            so["probe"]["median_ms"], ss["probe"]["median_ms"], "ms"),
        Row("hub_spawn", f"Storm of {m}: hub API p95 (GET a user every 50 ms)", so["probe"]["p95_ms"], ss["probe"]["p95_ms"], "ms"),
        Row("hub_spawn", f"Storm of {m}: spawn POST response p50", so["post"]["median_ms"], ss["post"]["median_ms"], "ms"),
        Row("hub_spawn", f"Storm of {m}: spawn POST response p95", so["post"]["p95_ms"], ss["post"]["p95_ms"], "ms"),
        Row("hub_spawn", f"Storm of {m}: hub CPU time per spawn", so["hub_cpu_per_spawn_ms"], ss["hub_cpu_per_spawn_ms"], "ms"),
    ]

    def outcome(s: dict) -> str:
        o = s["outcomes"]
        text = f"{o.get('running', 0)} running ({o.get('running_gpu', 0)} GPU), {o.get('refused', 0)} refused"
        return text + (f", {o['other']} other" if o.get("other") else "")

    rows.append(Row("hub_spawn", f"Storm of {m} ({so['gpu_spawns']} GPU spawns, {so['gpu_quota']} GPUs): how the spawns ended",
                    outcome(so), outcome(ss), goal="all running or refused with a reason",
                    met=not so["outcomes"].get("other") and not d.get("problems")))
    return rows


def rows_spawn_form(d: dict) -> list[Row]:
    ours, stock = d["ours_render"]["median_ms"], d["stock_render"]["median_ms"]
    row = Row("spawn_form", f"Spawn form render at {d['pods']:,} pods, median of {d['renders']:,} (stock: KubeSpawner)",
              ours, stock, "ms")
    limit, cap = d["goal"]["ratio_max"], d["goal"]["ours_median_max_ms"]
    row.goal = f"≤ {limit:g}× and < {cap:g} ms"
    row.met = row.ratio is not None and row.ratio <= limit and ours < cap
    return [row, Row("spawn_form", "Spawn form render, p99", d["ours_render"]["p99_ms"], d["stock_render"]["p99_ms"], "ms")]


def rows_gpu_quota(d: dict) -> list[Row]:
    dec = d["decisions"]
    ours = dec["decide_and_reserve"]["median_us"]
    pods = dec["setup"]["pods"]

    def row(stock_way: str, stock: float) -> Row:
        r = Row("gpu_quota", f"GPU quota decision at {pods:,} pods, median (stock: {stock_way})", ours, stock, "µs", goal="< 1 ms")
        r.met = ours < 1000
        return r

    rows = [row("sum over the pod list", dec["stock_sum_over_pods"]["median_us"])]
    api = d.get("api")
    if api:
        rows.append(row(f"list the {pods:,} pods from the API", api["list_pods_raw_json_and_sum"]["median_us"]))
        rows.append(row("GET the ResourceQuota, which has no per-user counts", api["get_resourcequotas_models"]["median_us"]))
    return rows


def rows_culler(d: dict) -> list[Row]:
    med = d["median_ms"]
    rounds = d["rounds"]
    cycle = ratio_goal(Row("culler", f"Culler cycle, {d['users']:,} users / {d['running']:,} servers, median of {rounds} "
                                     "(stock: idle-culler 2.0)", med["ours"], med["upstream"], "ms"), 1.05)
    totals = d["hub_requests_total"]
    requests = Row("culler", "Culler cycle: hub requests", totals["ours"], totals["upstream"], "requests",
                   goal="the same", met=d["same_hub_requests"])
    return [cycle, requests]


def rows_devcluster(d: dict) -> list[Row]:
    ours = d["results"].get("devcluster", {})
    km = d["results"].get("kmock", {})

    def get(res: dict, *path: str):
        for p in path:
            if not isinstance(res, dict) or "error" in res:
                return None
            res = res.get(p)
        return res

    def figure(res: dict, *path: str):
        value = get(res, *path)
        return value if isinstance(value, (int, float)) else None

    list_ms = figure(ours, "list_1000", "raw", "median_ms")
    fan_ms = figure(ours, "fanout_100", "last_watcher", "median_ms")
    if list_ms is None or fan_ms is None:
        raise ValueError(f"the emulator's own figures are missing: list {get(ours, 'list_1000')!r}, "
                         f"fan-out {get(ours, 'fanout_100')!r}")
    rows = [
        Row("devcluster", "Emulator: list 1,000 pods, raw, median (stock: kmock 0.8)", list_ms,
            figure(km, "list_1000", "raw", "median_ms"), "ms", goal="< 50 ms", met=list_ms < 50),
        Row("devcluster", "Emulator: watch fan-out to 100 watchers, median", fan_ms,
            figure(km, "fanout_100", "last_watcher", "median_ms"), "ms", goal="< 20 ms", met=fan_ms < 20),
    ]
    for via in ("raw", "client"):
        rows.append(Row("devcluster", f"Emulator: create+delete throughput ({via}), 8 workers",
                        figure(ours, f"churn_{via}", "pairs_per_s"), figure(km, f"churn_{via}", "pairs_per_s"), "pairs/s",
                        goal="higher is better"))
    return rows


def rows_quota_accounting(d: dict) -> list[Row]:
    inc, full = d["results"]["incremental"], d["results"]["full"]
    sizes = sorted(int(s) for s in inc)
    small, rest = sizes[0], sizes[1:]
    rows = []
    for size in rest:
        row = Row("quota_accounting", f"Emulator: pod create under a quota at {size:,} pods, median (stock: at {small} pods)",
                  inc[str(size)]["median_ms"], inc[str(small)]["median_ms"], "ms")
        if size == 5000:
            ratio_goal(row, 2)
        rows.append(row)
    for size in rest:
        rows.append(Row("quota_accounting", f"… the same with a full re-sum on each write (the old way), at {size:,} pods "
                                            f"(stock: at {small})", full[str(size)]["median_ms"], full[str(small)]["median_ms"], "ms"))
    return rows


ROWS: dict[str, Callable[[dict], list[Row]]] = {
    "hub_spawn": rows_hub_spawn, "spawn_form": rows_spawn_form, "gpu_quota": rows_gpu_quota,
    "culler": rows_culler, "devcluster": rows_devcluster, "quota_accounting": rows_quota_accounting,
}


def build_rows(outcomes: dict[str, dict]) -> list[Row]:
    """The table's rows from each benchmark's outcome: ``{"data": <its JSON>}`` or
    ``{"error": <why it failed>}``, in the order of BENCHES."""
    rows: list[Row] = []
    for bench in BENCHES:
        if bench.name not in outcomes:
            continue
        outcome = outcomes[bench.name]
        if outcome.get("error"):
            rows.append(failed_row(bench, outcome["error"]))
            continue
        try:
            rows += ROWS[bench.name](outcome["data"])
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as e:
            rows.append(failed_row(bench, f"its JSON lacks figures the report needs ({type(e).__name__}: {e})"))
    return rows


# -- formatting ----------------------------------------------------------------------------------

def number(value: float) -> str:
    a = abs(value)
    if a >= 1000:
        return f"{value:,.0f}"
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def cell(value: float | str | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    return f"{number(value)} {unit}".strip()


def ratio_cell(row: Row) -> str:
    r = row.ratio
    if r is None:
        return "–"
    # Three decimals near 1, so a ratio just over a goal (1.054 against 1.05) does not print as 1.05.
    return f"{r:,.0f}×" if r >= 100 else f"{r:.1f}×" if r >= 10 else f"{r:.3f}×" if r >= 0.1 else f"{r:.2g}×"


def goal_cell(row: Row) -> str:
    if row.error:
        return f"FAILED: {row.error}"
    verdict = {True: "met", False: "NOT met", None: ""}[row.met] if row.goal and row.goal != "higher is better" else ""
    return f"{row.goal}: {verdict}" if verdict else row.goal


HEADER = ("Measure", "Ours", "Stock", "Ratio (ours/stock)", "Goal")


def cells(row: Row) -> tuple[str, ...]:
    """The row's five cells, each on one line (an error's newlines become spaces)."""
    raw = (row.measure, cell(row.ours, row.unit), "–" if row.error else cell(row.stock, row.unit), ratio_cell(row), goal_cell(row))
    return tuple(" ".join(c.split()) for c in raw)


def text_table(rows: list[Row]) -> str:
    table = [HEADER] + [cells(r) for r in rows]
    widths = [min(max(len(line[i]) for line in table), 90) for i in range(len(HEADER))]
    out = []
    for n, line in enumerate(table):
        out.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(line)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(rows: list[Row], machine: dict, mode: str) -> str:
    lines = [machine_line(machine, mode), "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        lines.append("| " + " | ".join(md_escape(c) for c in cells(row)) + " |")
    return "\n".join(lines) + "\n"


def machine_line(m: dict, mode: str) -> str:
    v = m.get("versions", {})
    load = f"{m['loadavg_before'][0]:.2f} → {m['loadavg_after'][0]:.2f}" if m.get("loadavg_after") else f"{m['loadavg_before'][0]:.2f}"
    command = m.get("command") or ("make bench" + (" BENCH_ARGS=--quick" if mode == "quick" else ""))
    return (f"`{command}`, {m['start']}, commit {m['commit']}, "
            f"{m['duration_s'] / 60:.1f} min. Machine: {m['cpu_count']} × {m['cpu_model']}, {m['memory_gib']:.0f} GiB; "
            f"1-minute load average {load}. Python {m['python']}, JupyterHub {v.get('jupyterhub')}, "
            f"KubeSpawner {v.get('jupyterhub-kubespawner')}, kubernetes_asyncio {v.get('kubernetes_asyncio')}.")


# -- the machine ---------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for p in ("jupyterhub", "jupyterhub-kubespawner", "kubernetes_asyncio", "jupyterhub-idle-culler", "aiohttp", "kmock"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def machine_before() -> dict:
    return {"start": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(), "memory_gib": memory_gib(), "loadavg_before": list(os.getloadavg()),
            "python": platform.python_version(), "platform": platform.platform(), "commit": git_commit()}


# -- running -------------------------------------------------------------------------------------

def last_words(log: Path) -> str:
    """The last meaningful line of a benchmark's output: its exception or its FAILED line."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    for line in reversed(lines):
        if line.startswith(("FAILED", "PROBLEM", "FAIL:")) or "Error" in line.split(":", 1)[0]:
            return line[:400]
    return lines[-1][:400] if lines else ""


def shown(arg: str) -> str:
    """A path inside the repository relative to it; anything else as it is."""
    path = Path(arg)
    return str(path.relative_to(REPO)) if path.is_absolute() and path.is_relative_to(REPO) else arg


def run_bench(bench: Bench, quick: bool, out_dir: Path) -> dict:
    """Run one benchmark; ``{"data": …}`` or ``{"error": …}``, plus its command, log and time."""
    out = out_dir / f"{bench.name}.json"
    log = out_dir / f"{bench.name}.log"
    out.unlink(missing_ok=True)  # only this run's figures are read
    cmd = bench.command(quick, out)
    timeout = bench.timeout_quick if quick else bench.timeout_full
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "PATH": os.pathsep.join([str(venv_bin), str(REPO / ".venv" / "node_modules" / ".bin"), os.environ.get("PATH", "")]),
           "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    result: dict[str, Any] = {"command": " ".join([Path(cmd[0]).name, *map(shown, cmd[1:])]), "log": shown(str(log))}
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            rc = None
    result["seconds"] = round(time.monotonic() - t0, 1)
    if rc is None:
        result["error"] = f"did not finish within {timeout:.0f} s (stopped); see {result['log']}"
    elif rc != 0:
        result["error"] = f"exit status {rc}: {last_words(log)} (see {result['log']})"
    if out.exists():
        try:
            result["data"] = json.loads(out.read_text())
        except ValueError as e:
            result.setdefault("error", f"its JSON {out.name} is not valid: {e}")
    elif "error" not in result:
        result["error"] = f"it wrote no {out.name}; see {result['log']}"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every benchmark at a small size (all in under 5 minutes)")
    parser.add_argument("--only", action="append", metavar="NAME", choices=list(BY_NAME),
                        help=f"run only this benchmark (repeatable): {', '.join(BY_NAME)}")
    parser.add_argument("--out-dir", type=Path, default=OUT, help="where the JSON, logs and report go")
    args = parser.parse_args(argv)
    given = " ".join(sys.argv[1:] if argv is None else argv)
    chosen = [b for b in BENCHES if not args.only or b.name in args.only]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    mode = "quick" if args.quick else "full"
    machine = machine_before()
    machine["versions"] = versions()
    machine["command"] = "make bench" + (f' BENCH_ARGS="{given}"' if " " in given else f" BENCH_ARGS={given}" if given else "")
    t0 = time.monotonic()
    print(f"make bench ({mode}): {', '.join(b.name for b in chosen)}; load average {machine['loadavg_before'][0]:.2f}", flush=True)
    outcomes: dict[str, dict] = {}
    for bench in chosen:
        print(f"  {bench.name:<18} {bench.title} ...", end=" ", flush=True)
        outcomes[bench.name] = run_bench(bench, args.quick, args.out_dir)
        o = outcomes[bench.name]
        print(f"{'FAILED' if o.get('error') else 'ok'} in {o['seconds']:.0f} s", flush=True)
    machine["loadavg_after"] = list(os.getloadavg())
    machine["duration_s"] = round(time.monotonic() - t0, 1)
    machine["versions"] = versions()  # kmock may have been installed by its benchmark
    rows = build_rows(outcomes)
    print()
    print(text_table(rows))
    print()
    print(machine_line(machine, mode))
    ok = not any(o.get("error") for o in outcomes.values())
    report = {
        "mode": mode, "ok": ok, "machine": machine,
        "rows": [{**asdict(r), "ours_text": cell(r.ours, r.unit), "stock_text": cell(r.stock, r.unit)} for r in rows],
        "benchmarks": {name: {k: v for k, v in o.items() if k != "data"} | {"status": "failed" if o.get("error") else "ok"}
                       for name, o in outcomes.items()},
        "figures": {name: o.get("data") for name, o in outcomes.items()},
    }
    (args.out_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (args.out_dir / "report.md").write_text(markdown(rows, machine, mode))
    print(f"\nwritten: {args.out_dir / 'report.json'} and {args.out_dir / 'report.md'}")
    for name, o in outcomes.items():
        if o.get("error"):
            print(f"FAILED {name}: {o['error']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
