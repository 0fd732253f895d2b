"""Run mutmut over each target of mutation/targets.py and print its score and its survivors.

    python -m mutation.run [NAME ...]      # every target when no name is given

mutmut works inside a `mutants/` copy of the sources, under the folder it starts in. Each
target gets its own folder, build/mutation/<name>/, holding a setup.cfg that names only that
module and only its test files, and a `mutants/` laid out like the repository (tests, config,
sample-data links), so the tests find what they find in a checkout.

Score = killed / (mutants - equivalent mutants). mutmut reports a mutant whose tests ran past
its time limit as "timeout", not "killed": such a mutant is printed and counts against the
score. Equivalent mutants (a change no behaviour can see) are listed, each with its reason, in
docs/testing.md; their names are read from there.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from mutation.targets import BY_NAME, TARGETS, MutationTarget

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORK_ROOT = PROJECT_ROOT / "build" / "mutation"
TESTING_DOC = PROJECT_ROOT / "docs" / "testing.md"
THRESHOLD = 0.90

COPIED = ("tests", "stacks", "pipeline_definition", "local_pipeline", "container_code", "serving_client", "tools")
COPIED_FILES = ("pytest.ini", "cdk.json", "app.py", "package.json")
LINKED = (".data", ".parity", "node_modules", ".models")

# mutmut's exit-code classes (mutmut/stats.py), grouped as this report counts them.
KILLED_CODES = {1, 3}
SURVIVED_CODES = {0}
NO_TEST_CODES = {5, 33}
TIMEOUT_CODES = {36, 24, -24, 152, 255}


def equivalent_mutants() -> set[str]:
    """Mutant names listed in docs/testing.md's table of equivalent mutants (`| `name` | why |`)."""
    if not TESTING_DOC.exists():
        return set()
    return set(re.findall(r"^\|\s*`([\w.ǁ]+__mutmut_\d+)`\s*\|", TESTING_DOC.read_text(), flags=re.M))


def _mutmut_source_path(target: MutationTarget) -> str:
    # A flat script is mutated as a top-level module, so mutmut's names ("reviews.x_f") match
    # the module name the tests import it under.
    return Path(target.module).name if target.flat else target.module


def prepare_workdir(target: MutationTarget) -> Path:
    # A fresh folder each run: run one `make mutation` of a target at a time.
    workdir = WORK_ROOT / target.name
    shutil.rmtree(workdir, ignore_errors=True)
    mutants = workdir / "mutants"
    mutants.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
    for folder in COPIED:
        shutil.copytree(PROJECT_ROOT / folder, mutants / folder, ignore=ignore)
    for name in COPIED_FILES:
        if (PROJECT_ROOT / name).exists():
            shutil.copy2(PROJECT_ROOT / name, mutants / name)
    for name in LINKED:
        if (PROJECT_ROOT / name).exists():
            (mutants / name).symlink_to((PROJECT_ROOT / name).resolve())

    source = _mutmut_source_path(target)
    if target.flat:
        # mutmut writes the mutated copy to mutants/<name>.py; the scripts' folder links to it,
        # and the other scripts are linked beside it, because a script started as
        # `python prepare.py` imports its siblings from its real (link-resolved) folder.
        (workdir / source).symlink_to(PROJECT_ROOT / target.module)
        scripts = mutants / "container_code"
        for script in sorted(scripts.glob("*.py")):
            if script.name == source:
                script.unlink()
                script.symlink_to(Path("..") / source)
            else:
                (mutants / script.name).symlink_to(Path("container_code") / script.name)
    else:
        top = Path(target.module).parts[0]
        (workdir / top).symlink_to(PROJECT_ROOT / top)

    tests = list(target.tests)
    marker = [] if target.include_slow else ["-m", "not slow"]
    (workdir / "setup.cfg").write_text(
        "[mutmut]\n"
        f"source_paths = {source}\n"
        f"only_mutate = {source}\n"
        "pytest_add_cli_args =\n    -p\n    no:cacheprovider\n    -p\n    no:randomly\n"
        + "".join(f"    {arg}\n" for arg in marker)
        + "pytest_add_cli_args_test_selection =\n"
        + "".join(f"    {test}\n" for test in tests)
        + "use_git_change_detection = false\n"
        + ("" if target.fork_safe else "process_isolation = forkserver\n")
        # mutmut limits each mutant's CPU time from the stats run's test durations; a test that
        # reused a session cache there (the generated definitions) pays the full cost in a
        # mutant's fresh session, so the limit gets a floor well above that cost.
        + "timeout_constant = 60\n"
        # Log calls are not mutated: their wording is for people. What a log line must carry
        # (an outcome, a deletion) is computed outside the call, where it is mutated and tested.
        + "do_not_mutate_patterns =\n    ^\\s*(LOGGER|LOG)\\.(debug|info|warning|error|exception|critical)\\(\n"
    )
    return workdir


def read_results(workdir: Path, target: MutationTarget) -> dict[str, int | None]:
    meta = workdir / "mutants" / (_mutmut_source_path(target) + ".meta")
    return json.loads(meta.read_text())["exit_code_by_key"]


def mutant_diff(workdir: Path, name: str) -> str:
    shown = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", name], cwd=workdir, capture_output=True, text=True
    )
    lines = [line for line in shown.stdout.splitlines() if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]
    return "\n".join(f"        {line}" for line in lines)


def run_target(target: MutationTarget, jobs: int) -> tuple[float, bool]:
    workdir = prepare_workdir(target)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    files = sorted({test.split("::")[0] for test in target.tests})
    print(f"== {target.name}: {target.module} against {', '.join(files)}", flush=True)
    completed = subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)],
        cwd=workdir, env=env, capture_output=True, text=True,
    )
    log = workdir / "mutmut.log"
    log.write_text(completed.stdout + completed.stderr)
    if completed.returncode != 0:
        print(f"   mutmut failed (exit {completed.returncode}); see {log}")
        print("\n".join(log.read_text().splitlines()[-20:]))
        return 0.0, False

    results = read_results(workdir, target)
    equivalent = equivalent_mutants() & set(results)
    counted = {name: code for name, code in results.items() if name not in equivalent}
    classes = Counter(
        "killed" if code in KILLED_CODES
        else "survived" if code in SURVIVED_CODES
        else "no tests" if code in NO_TEST_CODES
        else "timeout" if code in TIMEOUT_CODES
        else "not checked" if code is None
        else f"other ({code})"
        for code in counted.values()
    )
    score = classes["killed"] / len(counted) if counted else 1.0
    summary = ", ".join(f"{count} {label}" for label, count in sorted(classes.items()))
    print(f"   score {score:.1%} ({summary}; {len(equivalent)} equivalent, not counted)")
    for name, code in sorted(counted.items()):
        if code not in KILLED_CODES:
            print(f"   not killed: {name}")
            print(mutant_diff(workdir, name))
    return score, score >= THRESHOLD


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"targets to run (default: all): {', '.join(BY_NAME)}")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MUTATION_JOBS", "2")),
                        help="mutants tested at once (default 2, or MUTATION_JOBS)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    targets = [BY_NAME[name] for name in args.names] if args.names else list(TARGETS)

    scores = {target.name: run_target(target, args.jobs) for target in targets}
    print("\n== scores (killed / non-equivalent mutants; target >= 90%)")
    for name, (score, passed) in scores.items():
        print(f"   {name:20} {score:6.1%}  {'ok' if passed else 'BELOW'}")
    return 0 if all(passed for _, passed in scores.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
