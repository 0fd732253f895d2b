"""Synth time of this app next to a bare CDK app with as many (empty) stacks, measured in the
same run so both pay the same Python + jsii start-up; prints figures, asserts nothing.

    .venv/bin/python benchmarks/synth.py [--repetitions 3]

Each synthesis runs as its own subprocess, the way `cdk synth` runs `python3 app.py`: context
from cdk.json in CDK_CONTEXT_JSON, output in a temporary CDK_OUTDIR. The two apps alternate,
so a busy machine slows both alike; the median of the repetitions is reported.
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
STACKS_PER_ENVIRONMENT = 3  # foundation, pipeline, serving

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()

    context = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    stack_count = STACKS_PER_ENVIRONMENT * len(context["environments"])
    commands = {
        "this app": [sys.executable, "app.py"],
        f"bare app ({stack_count} empty stacks)": [sys.executable, "-c", BARE_APP.format(stack_count=stack_count)],
    }
    timings: dict[str, list[float]] = {name: [] for name in commands}
    for repetition in range(1, args.repetitions + 1):
        for name, command in commands.items():
            timings[name].append(synth_seconds(command, context))
            print(f"  run {repetition}/{args.repetitions} {name}: {timings[name][-1]:.2f}s", file=sys.stderr, flush=True)

    medians = {name: statistics.median(values) for name, values in timings.items()}
    app_name, bare_name = commands
    print(f"synth time, median of {args.repetitions} (each a fresh process):")
    for name, median in medians.items():
        runs = ", ".join(f"{value:.2f}" for value in timings[name])
        print(f"  {name:<32} {median:6.2f}s   (runs: {runs})")
    print(f"  ratio this app / bare app        {medians[app_name] / medians[bare_name]:6.2f}x")


if __name__ == "__main__":
    main()
