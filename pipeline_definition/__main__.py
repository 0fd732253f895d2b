"""`python -m pipeline_definition --env dev`: print an environment's pipeline definition JSON,
so it can be read and diffed without deploying. Needs no AWS credentials or network."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline_definition",
        description="Print an environment's SageMaker Pipeline definition JSON to stdout.",
    )
    parser.add_argument("--env", required=True, help="environment name in cdk.json (dev, staging, prod)")
    parser.add_argument(
        "--resolve",
        action="store_true",
        help="replace the deploy-time ${...} placeholders with readable example values",
    )
    parser.add_argument("--output", type=Path, help="write the JSON to this file instead of stdout")
    parser.add_argument("--cdk-json", type=Path, help="read environments from this cdk.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from stacks.config import CDK_JSON, ConfigError, load_environment

    from pipeline_definition.pipeline import definition_json
    from pipeline_definition.settings import PipelineDefinitionSettings, example_deploy_time_values

    started = time.perf_counter()
    try:
        config = load_environment(args.env, args.cdk_json or CDK_JSON)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not config.trains:
        # The app deploys no pipeline there: a printed definition would describe nothing that runs.
        source = config.model_source.promote_from
        print(
            f"error: {args.env} runs no pipeline: it serves model packages promoted from {source} "
            f"(model_source.promote_from in cdk.json); print {source}'s definition with --env {source}",
            file=sys.stderr,
        )
        return 2
    deploy_time = example_deploy_time_values(config) if args.resolve else None
    settings = PipelineDefinitionSettings.from_environment(config, deploy_time)
    definition = definition_json(settings)
    if args.output:
        args.output.write_text(definition)
    else:
        sys.stdout.write(definition)
    print(
        f"{settings.pipeline_name}: definition generated in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
