"""Step cache keys as SageMaker forms them: the cache-key attributes of a step's request
(AWS's "Default cache key attributes by pipeline step type"), with the run's values in place
of parameters, execution variables, step properties and JsonGet (the values the job receives,
evaluated by the local executor's expression evaluator). Two executions whose keys are equal
share a cached result; new input objects under the same prefix must not."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from definition_helpers import step_named

import fingerprint_input
from local_pipeline.expressions import EvaluationContext, evaluate
from pipeline_definition.steps import evaluate as evaluate_step
from pipeline_definition.steps import fingerprint, prepare, seal, train

CACHE_KEY_ATTRIBUTES = {
    "Processing": ("AppSpecification", "Environment", "ProcessingInputs"),
    "Training": ("AlgorithmSpecification", "CheckpointConfig", "DebugHookConfig", "DebugRuleConfigurations",
                 "Environment", "HyperParameters", "InputDataConfig"),
}
RAW_URI = "s3://${DataBucketName}/reviews/raw/"


def objects(*changes: tuple[str, str, int, str]) -> list[fingerprint_input.InputObject]:
    """Two delivered files, with `changes` added or replacing objects of the same key."""
    listed = {
        key: fingerprint_input.InputObject(f"reviews/raw/{key}", etag, size, modified)
        for key, etag, size, modified in (
            ("2026-10/reviews.csv.gz", "5d41402abc4b2a76b9719d911017c592", 51_200, "2026-10-31T23:10:00Z"),
            ("2026-11/reviews.csv.gz", "7d793037a0760186574b0282f2f435e7-3", 40_960_000, "2026-11-30T22:00:00Z"),
        )
    }
    for key, etag, size, modified in changes:
        listed[key] = fingerprint_input.InputObject(f"reviews/raw/{key}", etag, size, modified)
    return list(listed.values())


def context(definition: dict, execution_id: str, listed: list, step_properties: dict | None = None) -> EvaluationContext:
    parameters = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    report = fingerprint_input.fingerprint(listed, RAW_URI)
    run = EvaluationContext(
        parameters=parameters,
        execution_variables={"PipelineExecutionId": execution_id, "StartDateTime": f"2026-12-01T0{len(execution_id) % 10}:00:00Z"},
        step_properties={fingerprint.STEP_NAME: {}, seal.STEP_NAME: {}, **(step_properties or {})},
    )

    def read_property_file(step: str, name: str) -> dict:
        if step != seal.STEP_NAME:
            return report
        # The sealed copy's key is the artifact's content hash; a stand-in: the hash of its URL.
        artifact = run.step_properties[train.STEP_NAME]["ModelArtifacts"]["S3ModelArtifacts"]
        digest = hashlib.sha256(artifact.encode()).hexdigest()
        return {"model_data_url": f"s3://artifacts/immutable-models/sha256/{digest}/model.tar.gz", "registered_versions": 0}

    run.read_property_file = read_property_file
    return run


def cache_key(definition: dict, step_name: str, run: EvaluationContext) -> str:
    step = step_named(definition, step_name)
    resolved = {name: evaluate(step["Arguments"].get(name), run) for name in CACHE_KEY_ATTRIBUTES[step["Type"]]}
    return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()


def prepare_ran_in(definition: dict, execution_id: str, run: EvaluationContext) -> dict[str, Any]:
    """PrepareReviews' Describe fields after a run in `execution_id` (the ones later steps read)."""
    arguments = evaluate(step_named(definition, prepare.STEP_NAME)["Arguments"], run)
    return {**arguments, "ProcessingJobName": f"pipelines-{execution_id}-PrepareReviews-0123456789"}


def test_unchanged_input_objects_give_prepare_the_same_cache_key(dev_definition):
    first = cache_key(dev_definition, prepare.STEP_NAME, context(dev_definition, "exec1aaaaaaa", objects()))
    second = cache_key(dev_definition, prepare.STEP_NAME, context(dev_definition, "exec2bbbbbbbbb", objects()))
    assert first == second


def test_new_removed_or_rewritten_objects_under_the_same_prefix_change_prepares_cache_key(dev_definition):
    keys = {
        name: cache_key(dev_definition, prepare.STEP_NAME, context(dev_definition, "exec1aaaaaaa", listed))
        for name, listed in {
            "as before": objects(),
            "a new file": objects(("2026-12/reviews.csv.gz", "c4ca4238a0b923820dcc509a6f75849b", 1024, "2026-12-01T06:00:00Z")),
            "a file removed": objects()[1:],
            # Same key, same size: one star rating edited (4 -> 5) and the file uploaded again.
            "a file rewritten": objects(("2026-10/reviews.csv.gz", "e4da3b7fbbce2345d7772b0674a318d5", 51_200, "2026-12-01T07:00:00Z")),
        }.items()
    }
    assert len(set(keys.values())) == len(keys), keys


def test_a_rerun_of_prepare_reruns_train_and_evaluate_and_a_cached_one_does_not(dev_definition):
    # On a cache hit SageMaker hands later steps the cached run's properties (its job name and
    # output prefixes); a new prepare run has new ones, keyed by its execution id.
    cached = context(dev_definition, "exec1aaaaaaa", objects())
    cached.step_properties[prepare.STEP_NAME] = prepare_ran_in(dev_definition, "exec1aaaaaaa", cached)
    again = context(dev_definition, "exec2bbbbbbbbb", objects(), {prepare.STEP_NAME: cached.step_properties[prepare.STEP_NAME]})
    fresh = context(dev_definition, "exec3ccccccc", objects(("new.csv", "c4ca4238a0b923820dcc509a6f75849b", 10, "2026-12-02T00:00:00Z")))
    fresh.step_properties[prepare.STEP_NAME] = prepare_ran_in(dev_definition, "exec3ccccccc", fresh)
    for run in (cached, again, fresh):
        run.step_properties[train.STEP_NAME] = {"ModelArtifacts": {"S3ModelArtifacts": "s3://a/" + run.step_properties[prepare.STEP_NAME]["ProcessingJobName"]}}

    assert cache_key(dev_definition, train.STEP_NAME, cached) == cache_key(dev_definition, train.STEP_NAME, again)
    assert cache_key(dev_definition, train.STEP_NAME, cached) != cache_key(dev_definition, train.STEP_NAME, fresh)
    assert cache_key(dev_definition, evaluate_step.STEP_NAME, cached) == cache_key(dev_definition, evaluate_step.STEP_NAME, again)
    assert cache_key(dev_definition, evaluate_step.STEP_NAME, cached) != cache_key(dev_definition, evaluate_step.STEP_NAME, fresh)
