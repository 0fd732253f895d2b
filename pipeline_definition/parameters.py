"""The pipeline's execution parameters: every value a user may override per execution, with
the environment's defaults from cdk.json. What must not change per execution is no parameter:
the approval status of a registered version, and the quality floors (steps/register.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sagemaker.workflow.parameters import (
    Parameter,
    ParameterFloat,
    ParameterInteger,
    ParameterString,
)

from pipeline_definition.settings import PipelineDefinitionSettings

# Not per-environment: how prepare splits and balances the reviews.
DEFAULT_TRAIN_FRACTION = 0.90
DEFAULT_VALIDATION_FRACTION = 0.05
DEFAULT_TEST_FRACTION = 0.05
DEFAULT_RANDOM_SEED = 42
RAW_REVIEWS_PREFIX = "reviews/raw/"
# prepare.py's --test-domain value for "no single test domain" (container_code/prepare.py ALL_DOMAINS).
ALL_DOMAINS = "*"


@dataclass(frozen=True)
class PipelineParameters:
    input_data_s3_uri: ParameterString
    processing_instance_type: ParameterString
    processing_instance_count: ParameterInteger
    training_instance_type: ParameterString
    training_instance_count: ParameterInteger
    model_name_or_path: ParameterString
    epochs: ParameterInteger
    learning_rate: ParameterFloat
    train_batch_size: ParameterInteger
    max_seq_length: ParameterInteger
    class_weighting: ParameterString
    balance_dataset: ParameterString
    train_fraction: ParameterFloat
    validation_fraction: ParameterFloat
    test_fraction: ParameterFloat
    random_seed: ParameterInteger
    test_domain: ParameterString
    ingest_into_feature_store: ParameterString
    min_accuracy: ParameterFloat
    min_macro_f1: ParameterFloat
    min_class_recall: ParameterFloat

    def all(self) -> list[Parameter]:
        """In declaration order, which is the order the definition lists them in."""
        return [getattr(self, name) for name in self.__dataclass_fields__]


def build_parameters(settings: PipelineDefinitionSettings) -> PipelineParameters:
    defaults = settings.defaults
    return PipelineParameters(
        input_data_s3_uri=ParameterString(
            "InputDataS3Uri",
            default_value=f"s3://{settings.deploy_time.data_bucket_name}/{RAW_REVIEWS_PREFIX}",
        ),
        processing_instance_type=ParameterString(
            "ProcessingInstanceType", default_value=defaults.processing_instance_type
        ),
        processing_instance_count=ParameterInteger(
            "ProcessingInstanceCount", default_value=defaults.processing_instance_count
        ),
        training_instance_type=ParameterString(
            "TrainingInstanceType", default_value=defaults.training_instance_type
        ),
        training_instance_count=ParameterInteger(
            "TrainingInstanceCount", default_value=defaults.training_instance_count
        ),
        model_name_or_path=ParameterString("ModelNameOrPath", default_value=defaults.model_name_or_path),
        epochs=ParameterInteger("Epochs", default_value=defaults.epochs),
        learning_rate=ParameterFloat("LearningRate", default_value=defaults.learning_rate),
        train_batch_size=ParameterInteger("TrainBatchSize", default_value=defaults.train_batch_size),
        max_seq_length=ParameterInteger("MaxSeqLength", default_value=defaults.max_seq_length),
        # train.py --class-weighting: "balanced" weighs the loss against class imbalance, "none" does not.
        class_weighting=ParameterString("ClassWeighting", default_value="balanced"),
        # Strings, not Boolean parameters: they are passed on as command-line values.
        balance_dataset=ParameterString("BalanceDataset", default_value="true"),
        # Shares of each sentiment class that go to each split (prepare.py checks they add up).
        train_fraction=ParameterFloat("TrainFraction", default_value=DEFAULT_TRAIN_FRACTION),
        validation_fraction=ParameterFloat("ValidationFraction", default_value=DEFAULT_VALIDATION_FRACTION),
        test_fraction=ParameterFloat("TestFraction", default_value=DEFAULT_TEST_FRACTION),
        random_seed=ParameterInteger("RandomSeed", default_value=DEFAULT_RANDOM_SEED),
        # Which domain (the input's domain column) the test split comes from; "*": every one.
        test_domain=ParameterString("TestDomain", default_value=ALL_DOMAINS),
        ingest_into_feature_store=ParameterString("IngestIntoFeatureStore", default_value="true"),
        # Raises the accuracy threshold for one run; below the environment's floor it has no effect.
        min_accuracy=ParameterFloat("MinAccuracy", default_value=defaults.min_accuracy),
        # Likewise for macro-F1 and for every class's recall: only a raise has an effect.
        min_macro_f1=ParameterFloat("MinMacroF1", default_value=defaults.min_macro_f1),
        min_class_recall=ParameterFloat("MinClassRecall", default_value=defaults.min_class_recall),
    )
