"""Assembles one environment's SageMaker Pipeline from its steps and renders the definition
JSON, offline and deterministically."""

from __future__ import annotations

import json
import warnings

from sagemaker.workflow.pipeline import Pipeline

from pipeline_definition.offline_sdk import OfflinePipelineSession, telemetry_disabled
from pipeline_definition.parameters import build_parameters
from pipeline_definition.settings import PipelineDefinitionSettings
from pipeline_definition.steps.baselines import build_data_quality_step, build_model_quality_step
from pipeline_definition.steps.evaluate import build_evaluate_step, evaluation_report
from pipeline_definition.steps.fingerprint import build_fingerprint_step, fingerprint_report, input_fingerprint
from pipeline_definition.steps.prepare import build_prepare_step
from pipeline_definition.steps.register import build_condition_step
from pipeline_definition.steps.seal import build_seal_step, seal_report, sealed_model_data_url
from pipeline_definition.steps.train import build_train_step


def build_pipeline(settings: PipelineDefinitionSettings) -> Pipeline:
    session = OfflinePipelineSession(settings.region)
    params = build_parameters(settings)
    report = evaluation_report()
    fingerprint = fingerprint_report()
    sealed = seal_report()
    with telemetry_disabled(), warnings.catch_warnings():
        # Says that a PipelineSession starts no jobs: exactly why it is used here.
        warnings.filterwarnings("ignore", message="Running within a PipelineSession")
        fingerprint_step = build_fingerprint_step(settings, params, fingerprint, session)
        prepare_step = build_prepare_step(settings, params, input_fingerprint(fingerprint_step, fingerprint), session)
        train_step = build_train_step(settings, params, prepare_step, session)
        seal_step = build_seal_step(settings, params, train_step, sealed, session)
        evaluate_step = build_evaluate_step(
            settings, params, prepare_step, sealed_model_data_url(seal_step, sealed), report, session
        )
        data_quality_step = build_data_quality_step(settings, evaluate_step, session)
        model_quality_step = build_model_quality_step(settings, evaluate_step, session)
        condition_step = build_condition_step(
            settings, params, seal_step, sealed, evaluate_step, report, session,
            baselines=(data_quality_step, model_quality_step),
        )
    return Pipeline(
        name=settings.pipeline_name,
        parameters=params.all(),
        steps=[fingerprint_step, prepare_step, train_step, seal_step, evaluate_step, data_quality_step, model_quality_step,
               condition_step],
        # No experiment/trial per run: the default config adds them, and they are not needed.
        pipeline_experiment_config=None,
        sagemaker_session=session,
    )


def definition_json(settings: PipelineDefinitionSettings, *, compact: bool = False) -> str:
    """The pipeline definition as canonical JSON: sorted keys, indented for people to read
    and diff, or `compact` for the CloudFormation template."""
    pipeline = build_pipeline(settings)
    # definition() replays the recorded estimator.fit() call, which telemetry decorates.
    with telemetry_disabled():
        definition = json.loads(pipeline.definition())
    if compact:
        return json.dumps(canonical(definition), sort_keys=True, separators=(",", ":"))
    return json.dumps(canonical(definition), indent=2, sort_keys=True) + "\n"


def canonical(definition: dict) -> dict:
    """The SDK's definition with its run-to-run variations and its nulls removed."""
    # The SDK writes "PipelineExperimentConfig": null when there is none; leaving the key out
    # means the same and keeps the document within the published schema.
    if definition.get("PipelineExperimentConfig", ...) is None:
        del definition["PipelineExperimentConfig"]
    # The SDK de-duplicates Debugger collections through a set, so their order follows
    # Python's per-process string hashing; sorted, the same commit gives the same bytes.
    for step in definition["Steps"]:
        # A QualityCheck step without a supplied baseline: the SDK writes null, the service
        # and the published schema take the key left out.
        for key in ("SuppliedBaselineStatistics", "SuppliedBaselineConstraints"):
            if step.get(key, ...) is None:
                del step[key]
        hook = step.get("Arguments", {}).get("DebugHookConfig")
        if hook and "CollectionConfigurations" in hook:
            hook["CollectionConfigurations"].sort(key=lambda collection: json.dumps(collection, sort_keys=True))
    return definition
