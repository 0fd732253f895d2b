"""The prepare step: balance, split and tokenize the raw reviews, ingest them into the
environment's Feature Group, and write the train/validation/test splits.

Its arguments carry the fingerprint of the input objects, so that its cache key (and through
its outputs, train's and evaluate's) changes when, and only when, the input objects do."""

from __future__ import annotations

from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.workflow.steps import CacheConfig, ProcessingStep

from pipeline_definition.locations import execution_s3_uri
from pipeline_definition.parameters import PipelineParameters
from pipeline_definition.settings import PipelineDefinitionSettings
from pipeline_definition.steps import bundled_script
from pipeline_definition.steps.fingerprint import InputFingerprint

STEP_NAME = "PrepareReviews"
SCRIPT = "prepare.py"
RAW_INPUT_DIR = "/opt/ml/processing/input/raw"
OUTPUT_DIR = "/opt/ml/processing/output"
OUTPUT_NAMES = ("train", "validation", "test", "report")
PREPARED_PREFIX = "reviews/prepared"


def prepare_arguments(settings: PipelineDefinitionSettings, params: PipelineParameters, fingerprint: InputFingerprint) -> list:
    """prepare.py's command line; numbers go through to_string() because the service accepts
    only strings as container arguments (a bare Get of an Integer parameter fails the job).

    The fingerprint's values come last: the digest puts the input objects into the cache key;
    prepare checks its download against the count and bytes; the snapshot time is the event
    time of rows without a date (a value of the data, where the execution's start time would
    make every run a cache miss)."""
    return [
        "--input-dir", RAW_INPUT_DIR,
        "--output-dir", OUTPUT_DIR,
        "--tokenizer", params.model_name_or_path,
        "--max-seq-length", params.max_seq_length.to_string(),
        "--balance", params.balance_dataset,
        "--train-fraction", params.train_fraction.to_string(),
        "--validation-fraction", params.validation_fraction.to_string(),
        "--test-fraction", params.test_fraction.to_string(),
        "--random-seed", params.random_seed.to_string(),
        "--test-domain", params.test_domain,
        "--ingest", params.ingest_into_feature_store,
        "--feature-group-name", settings.deploy_time.feature_group_name,
        "--input-digest", fingerprint.digest,
        "--expected-input-files", fingerprint.object_count.to_string(),
        "--expected-input-bytes", fingerprint.total_bytes.to_string(),
        "--event-time", fingerprint.snapshot_time,
    ]


def build_prepare_step(
    settings: PipelineDefinitionSettings, params: PipelineParameters, fingerprint: InputFingerprint, session
) -> ProcessingStep:
    step_args = bundled_script.run_args(
        settings,
        script_name=SCRIPT,
        instance_type=params.processing_instance_type,
        instance_count=params.processing_instance_count,
        base_job_name="prepare-reviews",
        # prepare ingests into the Feature Store, which needs the region.
        env={"AWS_DEFAULT_REGION": settings.region},
        session=session,
        inputs=[
            # Every host sees every raw file; prepare picks its own share by host index.
            ProcessingInput(
                input_name="raw-reviews",
                source=params.input_data_s3_uri,
                destination=RAW_INPUT_DIR,
                s3_data_distribution_type="FullyReplicated",
            ),
        ],
        outputs=[
            ProcessingOutput(
                output_name=name,
                source=f"{OUTPUT_DIR}/{name}",
                destination=execution_s3_uri(settings.deploy_time.data_bucket_name, PREPARED_PREFIX, name),
            )
            for name in OUTPUT_NAMES
        ],
        arguments=prepare_arguments(settings, params, fingerprint),
    )
    return ProcessingStep(
        name=STEP_NAME,
        description="Balance, split and tokenize the raw reviews; ingest them into the Feature Group",
        step_args=step_args,
        cache_config=CacheConfig(enable_caching=True, expire_after=settings.cache_expire_after),
    )
