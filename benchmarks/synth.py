"""Synth time of this app next to a bare CDK app with as many (empty) stacks, measured in the
same run so both pay the same Python + jsii start-up; prints figures, asserts nothing.

    .venv/bin/python benchmarks/synth.py [--repetitions 3]

Two comparisons: every environment (what `cdk synth` builds) against a bare app with as many
stacks, and one environment (`cdk synth -c env=dev`) against a bare 3-stack app. Each synthesis
runs as its own subprocess, the way `cdk synth` runs `python3 app.py`: context from cdk.json in
CDK_CONTEXT_JSON, output in a temporary CDK_OUTDIR. The apps alternate, so a busy machine slows
all alike; the median of the repetitions is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STACKS_PER_ENVIRONMENT = 3  # foundation, pipeline, serving (one that promotes has no pipeline)
SINGLE_ENVIRONMENT = "dev"

BARE_APP = """
import aws_cdk as cdk
app = cdk.App()
for index in range({stack_count}):
    cdk.Stack(app, f"BareStack{{index}}", env=cdk.Environment(account="111111111111", region="us-east-1"))
app.synth()
"""


def synth_seconds(command: list[str], context: dict) -> float:
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as outdir:
        env = {
            **os.environ,
            "CDK_CONTEXT_JSON": json.dumps(context),
            "CDK_OUTDIR": outdir,
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        }
        started = time.perf_counter()
        result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"synth failed ({' '.join(command[:2])}):\n{result.stderr[-3000:]}")
        return elapsed


def stack_count(context: dict) -> int:
    """As many stacks as the app builds: an environment that promotes from another has no pipeline."""
    sys.path.insert(0, str(PROJECT_ROOT))
    from stacks.config import ENVIRONMENTS_CONTEXT_KEY, parse_all_environments, promotion_source

    configs = parse_all_environments(context[ENVIRONMENTS_CONTEXT_KEY])
    return sum(STACKS_PER_ENVIRONMENT - (promotion_source(config, configs) is not None) for config in configs.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()

    context = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    single_context = {**context, "env": SINGLE_ENVIRONMENT}
    all_stacks = stack_count(context)
    # (comparison, {app name: (command, context)}): this app first, its bare counterpart second.
    comparisons = {
        "every environment": {
            "this app": ([sys.executable, "app.py"], context),
            f"bare app ({all_stacks} empty stacks)": ([sys.executable, "-c", BARE_APP.format(stack_count=all_stacks)], context),
        },
        f"-c env={SINGLE_ENVIRONMENT}": {
            f"this app, {SINGLE_ENVIRONMENT} only": ([sys.executable, "app.py"], single_context),
            f"bare app ({STACKS_PER_ENVIRONMENT} empty stacks)": (
                [sys.executable, "-c", BARE_APP.format(stack_count=STACKS_PER_ENVIRONMENT)], single_context,
            ),
        },
    }
    timings: dict[str, list[float]] = {name: [] for apps in comparisons.values() for name in apps}
    for repetition in range(1, args.repetitions + 1):
        for apps in comparisons.values():
            for name, (command, app_context) in apps.items():
                timings[name].append(synth_seconds(command, app_context))
                print(f"  run {repetition}/{args.repetitions} {name}: {timings[name][-1]:.2f}s", file=sys.stderr, flush=True)

    print(f"synth time, median of {args.repetitions} (each a fresh process):")
    for comparison, apps in comparisons.items():
        medians = {name: statistics.median(timings[name]) for name in apps}
        print(f" {comparison}:")
        for name, median in medians.items():
            runs = ", ".join(f"{value:.2f}" for value in timings[name])
            print(f"  {name:<32} {median:6.2f}s   (runs: {runs})")
        app_name, bare_name = apps
        print(f"  ratio this app / bare app        {medians[app_name] / medians[bare_name]:6.2f}x")


if __name__ == "__main__":
    main()
