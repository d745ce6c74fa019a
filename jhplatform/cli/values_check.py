"""``jhplatform check VALUES.yaml…`` and ``jhplatform render VALUES.yaml… --user --profile``, offline.

Both lay out the hub pod z2jh 4.4.0 would run from these values (:class:`jhplatform.z2jh.HubPod`)
and load its configuration inside the pod's mount namespace as the hub does
(:mod:`jhplatform.cli.hub_config`). ``check`` prints one line per problem, starting with the
values path to fix (``singleuser.profileList[2].kubespawner_override.privileged``), and exits 1;
it exits 0 when there is none. ``render`` prints, as YAML, the PVC and the pod PlatformSpawner
would create for that user, profile, options and groups.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Callable

import yaml

from ..z2jh import HubPod

#: The image's snippets when jhplatform runs from a checkout (the Dockerfile copies them).
CHECKOUT_SNIPPETS = Path(__file__).resolve().parents[2] / "jupyterhub_config.d"


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("values", nargs="+", type=Path, help="z2jh values files, in `helm upgrade -f` order")
    p.add_argument(
        "--snippets",
        type=Path,
        default=None,
        help="the hub image's jupyterhub_config.d directory (default: the checkout's jupyterhub_config.d)",
    )
    p.add_argument("--release", default="jhub", help="Helm release name (default: jhub)")
    p.add_argument("--namespace", default="jhub", help="the release's namespace (default: jhub)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="check z2jh values files offline: every profile and option rendered through the hub's own config",
        description="Load the hub configuration z2jh 4.4.0 would run from these values (chart defaults, "
        "hub.config, the image's snippets, hub.extraConfig) and check it: every profile and option choice "
        "rendered for a sample user against Pod Security Standards \"restricted\", GPU profiles, storage "
        "settings. Prints one line per problem, starting with its values path; exits 1 if there is any.",
    )
    _add_common(p)
    p = sub.add_parser(
        "render",
        help="print the PVC and pod PlatformSpawner would create for a user and profile",
        description="Print, as YAML, the PersistentVolumeClaim and the Pod PlatformSpawner would create for "
        "USER with profile SLUG (and options and groups), from the hub configuration these values make.",
    )
    _add_common(p)
    p.add_argument("--user", required=True, help="the user's name")
    p.add_argument("--profile", required=True, help="the profile's slug")
    p.add_argument("--option", action="append", default=[], metavar="K=V", help="a profile option choice (repeatable)")
    p.add_argument("--group", action="append", default=[], metavar="G", help="a group the user is in (repeatable)")


def _snippets(args) -> Path | None:
    if args.snippets is not None:
        return args.snippets
    return CHECKOUT_SNIPPETS if CHECKOUT_SNIPPETS.is_dir() else None


def _in_hub_pod(args, command: list[str]) -> tuple[dict, str]:
    """Run ``jhplatform.cli.hub_config`` in the hub pod for ``args.values``: (its JSON, its stderr)."""
    with tempfile.TemporaryDirectory(prefix="jhplatform-hub-pod-") as tmp:
        pod = HubPod.from_files(Path(tmp), args.values, _snippets(args), release=args.release, namespace=args.namespace)
        pod.lay_out()
        result = pod.run([sys.executable, "-m", "jhplatform.cli.hub_config", *command], capture_output=True, text=True, timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        return {"fatal": f"could not load the hub configuration (exit {result.returncode})"}, result.stderr
    return json.loads(lines[-1]), result.stderr


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def hub_config_problems(args) -> list[str]:
    """Problems of the hub configuration these values make, each ``<values path>: <message>``."""
    result, stderr = _in_hub_pod(args, ["check"])
    if "fatal" in result:
        fatal = [line for line in stderr.splitlines() if line.startswith("FATAL")]
        return [f"hub: {result['fatal']}" + (": " + " ".join(fatal) if fatal else "")]
    return [f"{p['path']}: {_one_line(p['message'])}" for p in result["problems"]]


def helm_schema_problems(args) -> list[str]:
    """What `helm upgrade` would refuse: the chart's schema checked by Helm's own SDK."""
    try:
        from ..z2jh.helm import validate_values
    except ImportError as e:
        return [f"helm: Helm's SDK is not installed ({e.name}); install it with `pip install 'jhplatform[check]'` "
                "to check values against the chart's schema as `helm upgrade` does"]

    return validate_values(list(args.values))


#: Where `jhplatform check` gets problems from, in order; each takes the parsed arguments and
#: returns lines "<values path>: <message>".
PROBLEM_SOURCES: list[Callable[[argparse.Namespace], list[str]]] = [helm_schema_problems, hub_config_problems]


def run_check(args, out=sys.stdout) -> int:
    missing = [str(p) for p in args.values if not p.is_file()]
    if missing:
        print(f"jhplatform check: no such values file: {', '.join(missing)}", file=sys.stderr)
        return 2
    problems = [line for source in PROBLEM_SOURCES for line in source(args)]
    for line in problems:
        print(line, file=out)
    if problems:
        print(f"jhplatform check: {len(problems)} problem(s); fix the values named above.", file=sys.stderr)
        return 1
    print(f"jhplatform check: no problems in {', '.join(map(str, args.values))}", file=sys.stderr)
    return 0


def run_render(args, out=sys.stdout) -> int:
    missing = [str(p) for p in args.values if not p.is_file()]
    if missing:
        print(f"jhplatform render: no such values file: {', '.join(missing)}", file=sys.stderr)
        return 2
    command = ["render", "--user", args.user, "--profile", args.profile]
    for option in args.option:
        if "=" not in option:
            print(f"jhplatform render: --option must be KEY=VALUE, not {option!r}", file=sys.stderr)
            return 2
        command += ["--option", option]
    for group in args.group:
        command += ["--group", group]
    result, stderr = _in_hub_pod(args, command)
    if "fatal" in result or "error" in result:
        print(f"jhplatform render: {result.get('fatal') or result.get('error')}", file=sys.stderr)
        for line in stderr.splitlines():
            if line.startswith("FATAL"):
                print(line, file=sys.stderr)
        return 1
    out.write(yaml.safe_dump_all(result["documents"], sort_keys=False))
    return 0


__all__ = ["PROBLEM_SOURCES", "add_parsers", "helm_schema_problems", "hub_config_problems", "run_check", "run_render"]
