"""The fingerprint step: list the input objects and publish a digest of them (keys, ETags,
sizes, times) that prepare takes as arguments, so that prepare's cache key follows the objects
rather than only the prefix that names them (docs/pipeline.md, "Caching")."""

from __future__ import annotations

from dataclasses import dataclass

from sagemaker.processing import ProcessingOutput
from sagemaker.workflow.functions import JsonGet
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep

from pipeline_definition.locations import execution_s3_uri
from pipeline_definition.parameters import PipelineParameters
from pipeline_definition.settings import PipelineDefinitionSettings
from pipeline_definition.steps import bundled_script

STEP_NAME = "FingerprintInput"
SCRIPT = "fingerprint_input.py"
OUTPUT_DIR = "/opt/ml/processing/fingerprint"
OUTPUT_NAME = "fingerprint"
FINGERPRINT_FILE_NAME = "fingerprint.json"  # fingerprint_input.FINGERPRINT_FILE
PROPERTY_FILE_NAME = "InputFingerprint"
FINGERPRINT_PREFIX = "reviews/fingerprints"


def fingerprint_report() -> PropertyFile:
    return PropertyFile(name=PROPERTY_FILE_NAME, output_name=OUTPUT_NAME, path=FINGERPRINT_FILE_NAME)


@dataclass(frozen=True)
class InputFingerprint:
    """The fingerprint's values as run-time expressions, for prepare's command line. Each is a
    function of the listed objects alone, so unchanged input gives prepare the same arguments."""

    digest: JsonGet
    object_count: JsonGet
    total_bytes: JsonGet
    snapshot_time: JsonGet


def input_fingerprint(step: ProcessingStep, report: PropertyFile) -> InputFingerprint:
    def value(path: str) -> JsonGet:
        return JsonGet(step_name=step.name, property_file=report, json_path=path)

    return InputFingerprint(
        digest=value("digest"),
        object_count=value("object_count"),
        total_bytes=value("total_bytes"),
        snapshot_time=value("snapshot_time"),
    )


def build_fingerprint_step(
    settings: PipelineDefinitionSettings, params: PipelineParameters, report: PropertyFile, session
) -> ProcessingStep:
    step_args = bundled_script.run_args(
        settings,
        script_name=SCRIPT,
        instance_type=params.processing_instance_type,
        # Listing a prefix is one API call per 1,000 objects: one host.
        instance_count=1,
        base_job_name="fingerprint-reviews",
        env={"AWS_DEFAULT_REGION": settings.region},
        session=session,
        # No data input: the job lists the prefix (s3:ListBucket) rather than downloading it.
        inputs=[],
        outputs=[
            ProcessingOutput(
                output_name=OUTPUT_NAME,
                source=OUTPUT_DIR,
                destination=execution_s3_uri(settings.deploy_time.data_bucket_name, FINGERPRINT_PREFIX),
            )
        ],
        arguments=["--input-s3-uri", params.input_data_s3_uri, "--output-dir", OUTPUT_DIR],
    )
    return ProcessingStep(
        name=STEP_NAME,
        description="List the input objects; publish their digest for prepare's cache key",
        step_args=step_args,
        property_files=[report],
        # Never cached: its arguments name the prefix, not the objects, so a cached result
        # would be the very staleness this step exists to detect.
        cache_config=None,
    )
