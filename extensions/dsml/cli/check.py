"""`dsml check PATH...`: does a curated environment have what these notebooks import and install?

Reads notebooks (or folders of them), Python files and requirements files without running
them, and prints one line per import or install the environment does not satisfy, then a
summary and the environment that fits best. Exit code 0 when everything is supported, 1 when
something is not, 2 when an input is not what it claims to be.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from dsml.cli.options import add_location_options, resolve


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `dsml check`."""
    parser = sub.add_parser(
        "check",
        help="check notebooks and requirements against a curated environment",
        description=(
            "Report every import and pip install that the curated environment does not "
            "satisfy. Exit code 0: all supported; 1: something is not; 2: bad input."
        ),
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="notebook, folder of notebooks, .py or requirements",
    )
    parser.add_argument(
        "--env",
        default=None,
        metavar="NAME",
        help="environment to check against (default: the notebook's kernel, else the "
        "settings' spawner.default_environment)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_location_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Carry out `dsml check`."""
    from dsml.environments import checker
    from dsml.environments.checker import describe, label
    from dsml.environments.spec import find_environment

    settings, datadir = resolve(args)
    sources = checker.collect_sources(args.paths)
    read = [(source, *checker.read_requests(source)) for source in sources]

    names = list(settings["environments"])
    default = args.env or settings["spawner"]["default_environment"]
    targets: dict[str, tuple[str, str]] = {}  # file -> (environment, why)
    for source, _, kernel_env in read:
        if args.env:
            targets[source.display] = (args.env, "--env")
        elif kernel_env and kernel_env in names:
            targets[source.display] = (kernel_env, "kernelspec")
        else:
            targets[source.display] = (default, "settings")
    wanted = names + [n for n, _ in targets.values() if n not in names]
    environments = [find_environment(name) for name in wanted]
    views = {v.name: v for v in checker.environment_views(environments, datadir)}
    display_names = {e.name: e.display_name for e in environments}

    findings = []
    requests = []
    for source, source_requests, _ in read:
        target = views[targets[source.display][0]]
        findings.extend(checker.check(source_requests, target, list(views.values())))
        requests.extend(source_requests)
    used = sorted({name for name, _ in targets.values()})
    ranking = checker.rank(requests, list(views.values()), prefer=used[0] if used else "")
    problems = [f for f in findings if f.problem]
    optional_missing = [f for f in findings if f.optional and f.status not in checker.SATISFIED]
    by_status = Counter(f.status for f in findings)
    ok = not problems

    if args.json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "files": [
                        {
                            "file": source.display,
                            "kind": source.kind,
                            "environment": targets[source.display][0],
                            "environment_from": targets[source.display][1],
                            "kernel_environment": kernel_env,
                        }
                        for source, _, kernel_env in read
                    ],
                    "environments": [
                        {
                            "name": v.name,
                            "display_name": v.env.display_name,
                            "version": v.env.version,
                            "built": v.built,
                        }
                        for v in views.values()
                    ],
                    "findings": [f.to_json() for f in findings],
                    "summary": {
                        "checked": len(findings),
                        "supported": len(findings) - len(problems) - len(optional_missing),
                        "problems": len(problems),
                        "optional_missing": len(optional_missing),
                        "by_status": dict(sorted(by_status.items())),
                    },
                    "best_fit": ranking[0].to_json() if ranking else None,
                    "ranking": [fit.to_json() for fit in ranking],
                },
                indent=2,
            )
        )
        return 0 if ok else 1

    for f in findings:
        if f.problem:
            print(describe(f, display_names))
        elif f.optional and f.status not in checker.SATISFIED:
            print("note: " + describe(f, display_names))
    against = ", ".join(label(n, views[n].env.version) for n in used)
    unbuilt = [n for n in used if not views[n].built]
    if unbuilt:
        against += f" (not built here, judged from the lock: {', '.join(unbuilt)})"
    files = f"{len(read)} file{'s' if len(read) != 1 else ''}"
    if not findings:
        print(f"checked {files} against {against}: no imports or installs found")
        return 0
    problem_status = Counter(f.status for f in problems)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(problem_status.items()))
    summary = (
        f"checked {files} against {against}: {len(findings)} imports and installs, "
        f"{len(findings) - len(problems) - len(optional_missing)} supported"
    )
    if problems:
        summary += f", {len(problems)} not supported ({counts})"
    if optional_missing:
        summary += f", {len(optional_missing)} optional missing"
    print(summary)
    if ranking:
        best = ranking[0]
        rest = "; ".join(f"{fit.environment} {fit.satisfied} of {fit.total}" for fit in ranking[1:])
        print(
            f"best fit: {label(best.environment, best.version)} satisfies {best.satisfied} of "
            f"{best.total}" + (f" ({rest})" if rest else "")
        )
    return 0 if ok else 1
