"""The pipeline's DAG: steps and their order, what each step reads from the one before, the
condition's PropertyFile path against what evaluate.py writes, metric regexes against the
training script's log lines, caching, and run-time overrides of numeric parameters."""

from __future__ import annotations

import json
import re

import pytest
from definition_helpers import all_steps, step_named

import evaluate as evaluate_script  # container_code/, on sys.path via tests/conftest.py
import fingerprint_input as fingerprint_script
import reviews
from pipeline_definition.locations import IMMUTABLE_MODELS_PREFIX
from pipeline_definition.steps import baselines, evaluate, fingerprint, prepare, register, seal, train

EXPECTED_PARAMETERS = {
    "InputDataS3Uri": "String",
    "ProcessingInstanceType": "String",
    "ProcessingInstanceCount": "Integer",
    "TrainingInstanceType": "String",
    "TrainingInstanceCount": "Integer",
    "ModelNameOrPath": "String",
    "Epochs": "Integer",
    "LearningRate": "Float",
    "TrainBatchSize": "Integer",
    "MaxSeqLength": "Integer",
    "ClassWeighting": "String",
    "BalanceDataset": "String",
    "TrainFraction": "Float",
    "ValidationFraction": "Float",
    "TestFraction": "Float",
    "RandomSeed": "Integer",
    "TestDomain": "String",
    "IngestIntoFeatureStore": "String",
    "MinAccuracy": "Float",
    "MinMacroF1": "Float",
    "MinClassRecall": "Float",
}


def _parameters(definition: dict) -> dict[str, dict]:
    return {parameter["Name"]: parameter for parameter in definition["Parameters"]}


def _references(node) -> set[str]:
    """Every Get reference anywhere under `node`."""
    text = json.dumps(node)
    return set(re.findall(r'"Get": "([^"]+)"', text))


def _argument_after(arguments: list, flag: str):
    return arguments[arguments.index(flag) + 1]


def test_parameters_and_their_environment_defaults(definition, environment_name):
    from stacks.config import load_environment

    config = load_environment(environment_name).pipeline
    parameters = _parameters(definition)
    assert {name: p["Type"] for name, p in parameters.items()} == EXPECTED_PARAMETERS
    assert parameters["ModelNameOrPath"]["DefaultValue"] == config.model_name_or_path == "roberta-base"
    assert parameters["Epochs"]["DefaultValue"] == config.epochs
    assert parameters["LearningRate"]["DefaultValue"] == config.learning_rate
    assert parameters["TrainingInstanceType"]["DefaultValue"] == config.training_instance_type
    assert parameters["ProcessingInstanceCount"]["DefaultValue"] == config.processing_instance_count
    assert parameters["MinAccuracy"]["DefaultValue"] == config.min_accuracy
    assert parameters["MinMacroF1"]["DefaultValue"] == config.min_macro_f1
    assert parameters["MinClassRecall"]["DefaultValue"] == config.min_class_recall
    assert parameters["InputDataS3Uri"]["DefaultValue"] == "s3://${DataBucketName}/reviews/raw/"
    # Every default a run gets when it overrides nothing, as StartPipelineExecution shows them.
    assert {name: p.get("DefaultValue") for name, p in parameters.items()} == {
        "InputDataS3Uri": "s3://${DataBucketName}/reviews/raw/",
        "ProcessingInstanceType": config.processing_instance_type,
        "ProcessingInstanceCount": config.processing_instance_count,
        "TrainingInstanceType": config.training_instance_type,
        "TrainingInstanceCount": config.training_instance_count,
        "ModelNameOrPath": config.model_name_or_path,
        "Epochs": config.epochs,
        "LearningRate": config.learning_rate,
        "TrainBatchSize": config.train_batch_size,
        "MaxSeqLength": config.max_seq_length,
        "ClassWeighting": "balanced",
        "BalanceDataset": "true",
        "TrainFraction": 0.9,
        "ValidationFraction": 0.05,
        "TestFraction": 0.05,
        "RandomSeed": 42,
        "TestDomain": "*",
        "IngestIntoFeatureStore": "true",
        "MinAccuracy": config.min_accuracy,
        "MinMacroF1": config.min_macro_f1,
        "MinClassRecall": config.min_class_recall,
    }
    assert [p["Name"] for p in definition["Parameters"]] == list(EXPECTED_PARAMETERS)  # declaration order


def _branches(step: dict) -> tuple[list, list]:
    arguments = step["Arguments"]
    return ([(s["Name"], s["Type"]) for s in arguments["IfSteps"]], [(s["Name"], s["Type"]) for s in arguments["ElseSteps"]])


def test_steps_run_fingerprint_prepare_train_seal_evaluate_then_the_quality_gate(dev_definition):
    assert [(s["Name"], s["Type"]) for s in dev_definition["Steps"]] == [
        (fingerprint.STEP_NAME, "Processing"),
        (prepare.STEP_NAME, "Processing"),
        (train.STEP_NAME, "Training"),
        (seal.STEP_NAME, "Processing"),
        (evaluate.STEP_NAME, "Processing"),
        (baselines.DATA_QUALITY_STEP_NAME, "QualityCheck"),
        (baselines.MODEL_QUALITY_STEP_NAME, "QualityCheck"),
        (register.CONDITION_STEP_NAME, "Condition"),
    ]
    assert _branches(step_named(dev_definition, register.CONDITION_STEP_NAME)) == (
        [(register.NOT_REGISTERED_CONDITION_STEP_NAME, "Condition")],
        [("CheckNegativeRecall", "Condition")],
    )
    # Below the gate, a chain that names the first thing missed: each class's recall, macro-F1, accuracy.
    chain = ["CheckNegativeRecall", "CheckNeutralRecall", "CheckPositiveRecall", register.MACRO_F1_CONDITION_STEP_NAME,
             register.FLOOR_CONDITION_STEP_NAME]
    fails = ["NegativeRecallBelowThreshold", "NeutralRecallBelowThreshold", "PositiveRecallBelowThreshold",
             register.MACRO_F1_FAIL_STEP_NAME]
    for check, next_check, fail in zip(chain, chain[1:], fails):
        assert _branches(step_named(dev_definition, check)) == ([(next_check, "Condition")], [(fail, "Fail")])
    assert _branches(step_named(dev_definition, register.NOT_REGISTERED_CONDITION_STEP_NAME)) == (
        [("Register-RegisterModel", "RegisterModel"), ("Create-CreateModel", "Model")],
        [],
    )
    assert _branches(step_named(dev_definition, register.FLOOR_CONDITION_STEP_NAME)) == (
        [(register.FAIL_STEP_NAME, "Fail")],
        [(register.FLOOR_FAIL_STEP_NAME, "Fail")],
    )


def test_each_step_reads_the_outputs_of_the_one_before(dev_definition):
    # Data dependencies (Get references) are what order the steps: no DependsOn needed.
    train_step = step_named(dev_definition, train.STEP_NAME)
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in train_step["Arguments"]["InputDataConfig"]}
    assert channels == {
        split: {"Get": f"Steps.PrepareReviews.ProcessingOutputConfig.Outputs['{split}'].S3Output.S3Uri"}
        for split in ("train", "validation")
    }
    seal_inputs = {i["InputName"]: i["S3Input"] for i in step_named(dev_definition, seal.STEP_NAME)["Arguments"]["ProcessingInputs"]}
    assert seal_inputs["model"]["S3Uri"] == {"Get": "Steps.TrainModel.ModelArtifacts.S3ModelArtifacts"}
    # Evaluation, registration and the SageMaker model all read the sealed copy: what was
    # evaluated is what is registered and served.
    sealed = {"Std:JsonGet": {"Path": "model_data_url", "PropertyFile": {"Get": "Steps.SealModelArtifact.PropertyFiles.SealReport"}}}
    evaluate_inputs = {i["InputName"]: i["S3Input"] for i in step_named(dev_definition, evaluate.STEP_NAME)["Arguments"]["ProcessingInputs"]}
    assert evaluate_inputs["model"]["S3Uri"] == sealed
    assert evaluate_inputs["test"]["S3Uri"] == {"Get": "Steps.PrepareReviews.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"}
    register_step = step_named(dev_definition, "Register-RegisterModel")["Arguments"]
    assert register_step["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == sealed
    create_step = step_named(dev_definition, "Create-CreateModel")["Arguments"]
    assert create_step["PrimaryContainer"]["ModelDataUrl"] == sealed
    assert "S3ModelArtifacts" not in json.dumps([register_step, create_step, evaluate_inputs])
    assert "DependsOn" not in json.dumps(dev_definition)


def test_prepare_outputs_match_the_prepared_split_contract(dev_definition):
    outputs = step_named(dev_definition, prepare.STEP_NAME)["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert [o["OutputName"] for o in outputs] == [*reviews.SPLIT_NAMES, "report"]
    for output in outputs:
        assert output["S3Output"]["LocalPath"] == f"{prepare.OUTPUT_DIR}/{output['OutputName']}"
        # Keyed by the execution id, never by a timestamp.
        assert output["S3Output"]["S3Uri"]["Std:Join"]["Values"] == [
            "s3:/", "${DataBucketName}", "reviews/prepared", {"Get": "Execution.PipelineExecutionId"}, output["OutputName"]
        ]
    raw = step_named(dev_definition, prepare.STEP_NAME)["Arguments"]["ProcessingInputs"][1]["S3Input"]
    assert raw["S3Uri"] == {"Get": "Parameters.InputDataS3Uri"}
    assert raw["S3DataDistributionType"] == "FullyReplicated"


def sample_fingerprint() -> dict:
    """What fingerprint_input.py writes for two objects."""
    objects = [
        fingerprint_script.InputObject("reviews/raw/a.csv", "9b2cf535f27731c974343645a3985328", 1200, "2026-11-02T10:00:00Z"),
        fingerprint_script.InputObject("reviews/raw/b.csv.gz", "0f343b0931126a20f133d67c2b018a3b-2", 9000, "2026-11-03T11:30:00Z"),
    ]
    return fingerprint_script.fingerprint(objects, "s3://bucket/reviews/raw/")


def _concrete(argument, defaults: dict, fingerprint_file: dict) -> str:
    """A container argument with its run-time value: a parameter's default or what JsonGet
    reads from the fingerprint property file."""
    if not isinstance(argument, dict):
        return argument
    text = json.dumps(argument)
    paths = re.findall(r'"Path": "([^"]+)"', text)
    if paths:
        assert "Steps.FingerprintInput.PropertyFiles.InputFingerprint" in _references(argument)
        return str(fingerprint_file[paths[0]])
    return str(defaults[next(iter(_references(argument))).removeprefix("Parameters.")])


def test_prepare_arguments_are_the_ones_prepare_py_accepts(dev_definition):
    import prepare as prepare_script

    arguments = step_named(dev_definition, prepare.STEP_NAME)["Arguments"]["AppSpecification"]["ContainerArguments"]
    flags = [a for a in arguments if isinstance(a, str) and a.startswith("--")]
    assert flags == ["--input-dir", "--output-dir", "--tokenizer", "--max-seq-length", "--balance", "--train-fraction",
                     "--validation-fraction", "--test-fraction", "--random-seed", "--test-domain", "--ingest", "--feature-group-name",
                     "--input-digest", "--expected-input-files", "--expected-input-bytes", "--event-time"]
    # Run-time values stand in for the parameters and the fingerprint: argparse exits on an
    # unknown flag or a bad value.
    defaults = {p["Name"]: p["DefaultValue"] for p in dev_definition["Parameters"]}
    fingerprint_file = sample_fingerprint()
    parsed = prepare_script.build_argument_parser().parse_args([_concrete(a, defaults, fingerprint_file) for a in arguments])
    assert parsed.feature_group_name == "${FeatureGroupName}"
    assert parsed.input_dir == prepare.RAW_INPUT_DIR and parsed.output_dir == prepare.OUTPUT_DIR
    assert (parsed.train_fraction, parsed.validation_fraction, parsed.test_fraction) == (0.9, 0.05, 0.05)
    assert parsed.balance is True and parsed.ingest is True and parsed.max_seq_length == 64
    assert parsed.input_digest == fingerprint_file["digest"]
    assert (parsed.expected_input_files, parsed.expected_input_bytes) == (2, 10200)
    assert parsed.event_time == "2026-11-03T11:30:00Z"
    assert parsed.test_domain == prepare_script.ALL_DOMAINS


def test_the_fingerprint_step_lists_the_prefix_prepare_reads_and_is_never_cached(dev_definition):
    step = step_named(dev_definition, fingerprint.STEP_NAME)
    assert "CacheConfig" not in step
    app = step["Arguments"]["AppSpecification"]
    parsed = fingerprint_script.build_argument_parser().parse_args(
        [_concrete(a, {"InputDataS3Uri": "s3://bucket/reviews/raw/"}, {}) for a in app["ContainerArguments"]]
    )
    assert parsed.input_s3_uri == "s3://bucket/reviews/raw/"
    raw = next(i for i in step_named(dev_definition, prepare.STEP_NAME)["Arguments"]["ProcessingInputs"] if i["InputName"] == "raw-reviews")
    assert _argument_after(app["ContainerArguments"], "--input-s3-uri") == raw["S3Input"]["S3Uri"] == {"Get": "Parameters.InputDataS3Uri"}
    # No data input: it lists the objects, it does not download them.
    assert [i["InputName"] for i in step["Arguments"]["ProcessingInputs"]] == ["code"]
    [property_file] = step["PropertyFiles"]
    [output] = step["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert property_file == {"PropertyFileName": "InputFingerprint", "OutputName": output["OutputName"],
                             "FilePath": fingerprint_script.FINGERPRINT_FILE}
    assert output["S3Output"]["LocalPath"] == parsed.output_dir == fingerprint_script.DEFAULT_OUTPUT_DIR
    # Every JsonGet prepare makes reads a key the script writes.
    prepare_arguments = json.dumps(step_named(dev_definition, prepare.STEP_NAME)["Arguments"])
    assert set(re.findall(r'"Path": "([^"]+)"', prepare_arguments)) == set(sample_fingerprint()) - {"input_s3_uri"}


def test_train_hyperparameters_are_the_ones_train_py_accepts(dev_definition):
    import train as train_script

    hyperparameters = step_named(dev_definition, train.STEP_NAME)["Arguments"]["HyperParameters"]
    script_arguments = []
    for name, value in sorted(hyperparameters.items()):
        if not name.startswith("sagemaker_"):
            stand_in = "balanced" if name == "class-weighting" else "1"
            script_arguments += [f"--{name}", stand_in if isinstance(value, dict) else json.loads(value)]
    parsed = train_script.build_parser().parse_args(script_arguments)
    assert parsed.epochs == 1
    assert hyperparameters["class-weighting"] == {"Get": "Parameters.ClassWeighting"}
    assert set(hyperparameters) - {n for n in hyperparameters if n.startswith("sagemaker_")} == {
        "model-name-or-path", "epochs", "learning-rate", "train-batch-size", "seed", "class-weighting"
    }


def test_evaluate_arguments_are_the_ones_evaluate_py_accepts(dev_definition):
    app = step_named(dev_definition, evaluate.STEP_NAME)["Arguments"]["AppSpecification"]
    parsed = evaluate_script.build_parser().parse_args(app["ContainerArguments"])
    inputs = {i["InputName"]: i["S3Input"]["LocalPath"] for i in step_named(dev_definition, evaluate.STEP_NAME)["Arguments"]["ProcessingInputs"]}
    assert parsed.model_archive == inputs["model"]
    assert parsed.test_dir == inputs["test"]
    assert parsed.output_dir == evaluate.OUTPUT_DIR
    assert app["ContainerEntrypoint"][-1] == "evaluate.py"


def test_property_file_path_reads_the_accuracy_evaluate_py_writes(dev_definition):
    evaluate_step = step_named(dev_definition, evaluate.STEP_NAME)
    [property_file] = evaluate_step["PropertyFiles"]
    assert property_file == {"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    assert evaluate_script.EVALUATION_FILE == property_file["FilePath"]
    condition = step_named(dev_definition, register.CONDITION_STEP_NAME)["Arguments"]["Conditions"][1]
    assert condition["Type"] == "GreaterThanOrEqualTo"
    assert condition["RightValue"] == {"Get": "Parameters.MinAccuracy"}
    json_get = condition["LeftValue"]["Std:JsonGet"]
    assert json_get["PropertyFile"] == {"Get": "Steps.EvaluateModel.PropertyFiles.EvaluationReport"}
    # Follow the JsonGet path through a report evaluate.py really builds.
    report = evaluate_script.model_quality_report([0, 1, 2, 2], [0, 1, 2, 1])
    value = report
    for key in json_get["Path"].split("."):
        value = value[key]
    assert value == pytest.approx(0.75)


@pytest.mark.parametrize("value", [0.7125, 0.0, 1.0, -0.25, 1234.5, 1e-7, 3.5e-5, 12.000001])
@pytest.mark.parametrize("name", train.METRIC_NAMES)
def test_metric_regexes_extract_values_from_real_log_lines(name, value):
    definitions = {d["Name"]: d["Regex"] for d in train.metric_definitions()}
    line = reviews.format_metric_line(name, value, epoch=2, step=94)
    match = re.search(definitions[name], f"2026-11-23 10:00:00 algo-1 {line}")
    assert match, (definitions[name], line)
    assert float(match.group(1)) == pytest.approx(value, abs=5e-7)
    # A line of another metric must not feed this one.
    for other in set(train.METRIC_NAMES) - {name}:
        assert not re.search(definitions[name], reviews.format_metric_line(other, value, epoch=1, step=1))


def test_metric_regexes_ignore_non_finite_values():
    for name, regex in ((d["Name"], d["Regex"]) for d in train.metric_definitions()):
        assert not re.search(regex, reviews.format_metric_line(name, float("nan"), epoch=1, step=1))


def test_training_step_carries_metrics_debugger_profiler_and_rules(dev_definition):
    arguments = step_named(dev_definition, train.STEP_NAME)["Arguments"]
    assert arguments["AlgorithmSpecification"]["MetricDefinitions"] == train.metric_definitions()
    hook = arguments["DebugHookConfig"]
    assert hook["S3OutputPath"] == "s3://${ArtifactsBucketName}/debugger"
    assert [c["CollectionName"] for c in hook["CollectionConfigurations"]] == ["gradients", "losses", "metrics"]
    assert arguments["ProfilerConfig"]["S3OutputPath"] == "s3://${ArtifactsBucketName}/profiler"
    assert arguments["ProfilerConfig"]["ProfilingIntervalInMilliseconds"] == 500
    rules = {r["RuleConfigurationName"]: r for r in arguments["DebugRuleConfigurations"] + arguments["ProfilerRuleConfigurations"]}
    assert set(rules) == {"ProfilerReport", "LossNotDecreasing", "Overtraining", "VanishingGradient"}
    # The rule images come from the SDK's offline region table.
    assert all(r["RuleEvaluatorImage"].endswith(".dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest") for r in rules.values())
    assert "huggingface-pytorch-training" in arguments["AlgorithmSpecification"]["TrainingImage"]
    assert arguments["HyperParameters"]["sagemaker_submit_directory"] == json.dumps("s3://${CodeBundleBucket}/${CodeBundleKey}")
    assert arguments["HyperParameters"]["sagemaker_program"] == json.dumps("train.py")


def test_caching_is_on_for_prepare_train_and_evaluate(dev_definition):
    for name in (prepare.STEP_NAME, train.STEP_NAME, evaluate.STEP_NAME):
        assert step_named(dev_definition, name)["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}


def test_cache_keys_hold_nothing_that_changes_per_execution(dev_definition):
    # SageMaker's cache key of a processing step is AppSpecification, Environment and
    # ProcessingInputs; of a training step also DebugHookConfig, rules, hyperparameters and
    # input channels. An execution id in any of them would make every run a cache miss.
    keyed = {
        prepare.STEP_NAME: ("AppSpecification", "Environment", "ProcessingInputs"),
        evaluate.STEP_NAME: ("AppSpecification", "Environment", "ProcessingInputs"),
        train.STEP_NAME: ("AlgorithmSpecification", "DebugHookConfig", "DebugRuleConfigurations", "Environment",
                          "HyperParameters", "InputDataConfig", "CheckpointConfig"),
    }
    for name, fields in keyed.items():
        arguments = step_named(dev_definition, name)["Arguments"]
        for field in fields:
            assert "Execution." not in json.dumps(arguments.get(field)), (name, field)


def test_checkpoints_are_keyed_by_what_the_trained_weights_depend_on(dev_definition):
    # A spot-interrupted job resumes from this prefix, so two configurations must never share
    # one: the data (the prepare job), the code bundle and every hyperparameter are in it.
    checkpoint_uri = step_named(dev_definition, train.STEP_NAME)["Arguments"]["CheckpointConfig"]["S3Uri"]
    assert f"Steps.{prepare.STEP_NAME}.ProcessingJobName" in _references(checkpoint_uri)
    assert "${CodeBundleKey}" in checkpoint_uri["Std:Join"]["Values"]
    for parameter in ("ModelNameOrPath", "Epochs", "LearningRate", "TrainBatchSize", "RandomSeed"):
        assert f"Parameters.{parameter}" in _references(checkpoint_uri), parameter


def test_numeric_parameters_reach_jobs_as_run_time_strings(dev_definition):
    # A baked literal would ignore a run's override; a bare Get of a number fails the job
    # (container arguments and hyperparameters must be strings): Std:Join turns it into one.
    def joined(parameter):
        return {"Std:Join": {"On": "", "Values": [{"Get": f"Parameters.{parameter}"}]}}

    arguments = step_named(dev_definition, prepare.STEP_NAME)["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert _argument_after(arguments, "--max-seq-length") == joined("MaxSeqLength")
    assert _argument_after(arguments, "--train-fraction") == joined("TrainFraction")
    assert _argument_after(arguments, "--random-seed") == joined("RandomSeed")
    assert _argument_after(arguments, "--tokenizer") == {"Get": "Parameters.ModelNameOrPath"}
    hyperparameters = step_named(dev_definition, train.STEP_NAME)["Arguments"]["HyperParameters"]
    assert hyperparameters["epochs"] == joined("Epochs")
    assert hyperparameters["learning-rate"] == joined("LearningRate")
    assert hyperparameters["train-batch-size"] == joined("TrainBatchSize")
    resources = step_named(dev_definition, train.STEP_NAME)["Arguments"]["ResourceConfig"]
    assert resources["InstanceType"] == {"Get": "Parameters.TrainingInstanceType"}
    assert resources["InstanceCount"] == {"Get": "Parameters.TrainingInstanceCount"}


def test_every_parameter_is_used(dev_definition):
    used = {ref.removeprefix("Parameters.") for ref in _references(dev_definition["Steps"]) if ref.startswith("Parameters.")}
    assert used == set(EXPECTED_PARAMETERS)


def test_registration_declares_content_types_metrics_and_approval(definition, environment_name):
    from stacks.config import load_environment

    config = load_environment(environment_name)
    arguments = step_named(definition, "Register-RegisterModel")["Arguments"]
    spec = arguments["InferenceSpecification"]
    assert spec["SupportedContentTypes"] == spec["SupportedResponseMIMETypes"] == ["application/json", "application/jsonlines"]
    if config.serving.instance_type:
        assert spec["SupportedRealtimeInferenceInstanceTypes"][0] == config.serving.instance_type
    assert "-cpu-" in spec["Containers"][0]["Image"]
    assert spec["Containers"][0]["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert spec["Containers"][0]["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    # The environment's status as a literal of the definition: no run can choose another.
    assert arguments["ModelApprovalStatus"] == config.pipeline.model_approval_status
    assert arguments["ModelPackageGroupName"] == "${ModelPackageGroupName}"
    statistics = arguments["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert statistics["S3Uri"]["Std:Join"]["Values"] == [
        {"Get": "Steps.EvaluateModel.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}, "evaluation.json"
    ]
    create = step_named(definition, "Create-CreateModel")["Arguments"]
    assert create["PrimaryContainer"]["Image"] == spec["Containers"][0]["Image"]


def test_a_dev_environment_that_registers_approved_versions_gets_that_status_in_its_definition():
    # Every configured environment registers PendingManualApproval, the SDK's own default: only
    # another status shows that the environment's one is what the definition carries.
    from pipeline_definition import PipelineDefinitionSettings, definition_json
    from stacks.config import load_environment

    config = load_environment("dev")
    approving = config.model_copy(update={"pipeline": config.pipeline.model_copy(update={"model_approval_status": "Approved"})})
    approved = json.loads(definition_json(PipelineDefinitionSettings.from_environment(approving)))
    assert step_named(approved, "Register-RegisterModel")["Arguments"]["ModelApprovalStatus"] == "Approved"



def test_an_environment_serving_on_a_gpu_registers_the_gpu_build_of_the_inference_image():
    # Every configured environment serves on CPU types, whose images are the same build: only a
    # GPU serving type shows that the image is chosen for the type the endpoint runs on.
    from pipeline_definition import PipelineDefinitionSettings, definition_json
    from stacks.config import load_environment

    config = load_environment("staging")
    on_gpu = config.model_copy(update={"serving": config.serving.model_copy(update={"instance_type": "ml.g4dn.xlarge"})})
    definition = json.loads(definition_json(PipelineDefinitionSettings.from_environment(on_gpu)))
    spec = step_named(definition, "Register-RegisterModel")["Arguments"]["InferenceSpecification"]
    assert spec["SupportedRealtimeInferenceInstanceTypes"][0] == "ml.g4dn.xlarge"
    assert "-gpu-" in spec["Containers"][0]["Image"]
    assert step_named(definition, "Create-CreateModel")["Arguments"]["PrimaryContainer"]["Image"] == spec["Containers"][0]["Image"]

def _accuracy(value) -> bool:
    return _json_get_path(value) == evaluate.ACCURACY_JSON_PATH


def _json_get_path(value) -> str | None:
    return value.get("Std:JsonGet", {}).get("Path") if isinstance(value, dict) else None


def test_the_gate_requires_accuracy_macro_f1_and_every_class_recall_at_floor_and_parameter(definition, environment_name):
    from stacks.config import load_environment

    config = load_environment(environment_name).pipeline
    conditions = step_named(definition, register.CONDITION_STEP_NAME)["Arguments"]["Conditions"]
    gated = [(c["Type"], _json_get_path(c["LeftValue"]), c["RightValue"]) for c in conditions]
    metrics = "multiclass_classification_metrics"
    expected = [
        ("accuracy", config.min_accuracy, "MinAccuracy"),
        ("macro_f1", config.min_macro_f1, "MinMacroF1"),
        *[(f"{name}_recall", config.min_class_recall, "MinClassRecall") for name in ("negative", "neutral", "positive")],
    ]
    assert gated == [item for metric, floor, parameter in expected for item in (
        ("GreaterThanOrEqualTo", f"{metrics}.{metric}.value", floor),
        ("GreaterThanOrEqualTo", f"{metrics}.{metric}.value", {"Get": f"Parameters.{parameter}"}),
    )]
    # Each path resolves in a report evaluate.py really writes.
    report = evaluate_script.model_quality_report([0, 1, 2, 2], [0, 1, 2, 1])
    for _, path, _ in gated:
        value = report
        for key in path.split("."):
            value = value[key]
        assert isinstance(value, float)


def test_the_definitions_class_names_and_domain_wildcard_are_the_container_codes():
    import prepare as prepare_script
    from pipeline_definition import parameters

    assert evaluate.CLASS_NAMES == reviews.LABEL_NAMES
    assert parameters.ALL_DOMAINS == prepare_script.ALL_DOMAINS


def test_a_class_recall_fail_step_names_the_class_its_recall_and_both_thresholds(definition, environment_name):
    from stacks.config import load_environment

    floor = load_environment(environment_name).pipeline.min_class_recall
    for class_name in evaluate.CLASS_NAMES:
        check = step_named(definition, register.class_recall_condition_step_name(class_name))["Arguments"]["Conditions"]
        path = f"multiclass_classification_metrics.{class_name}_recall.value"
        assert [(_json_get_path(c["LeftValue"]), c["RightValue"]) for c in check] == [
            (path, floor), (path, {"Get": "Parameters.MinClassRecall"})]
        message = step_named(definition, register.class_recall_fail_step_name(class_name))["Arguments"]["ErrorMessage"]["Std:Join"]
        assert message["Values"][0] == f"Evaluated recall of class {class_name}"
        assert _json_get_path(message["Values"][1]) == path
        assert message["Values"][2:] == [
            f"is below {environment_name}'s minimum class recall {floor} or this run's MinClassRecall",
            {"Get": "Parameters.MinClassRecall"}]


def test_the_gate_holds_the_environments_floor_whatever_min_accuracy_a_run_sets(definition, environment_name):
    from stacks.config import load_environment

    floor = load_environment(environment_name).pipeline.min_accuracy
    conditions = step_named(definition, register.CONDITION_STEP_NAME)["Arguments"]["Conditions"]
    # Every condition must hold: the constant floor, then the run's MinAccuracy (only a raise).
    assert [(c["Type"], _accuracy(c["LeftValue"]), c["RightValue"]) for c in conditions if _accuracy(c["LeftValue"])] == [
        ("GreaterThanOrEqualTo", True, floor),
        ("GreaterThanOrEqualTo", True, {"Get": "Parameters.MinAccuracy"}),
    ]
    which = step_named(definition, register.FLOOR_CONDITION_STEP_NAME)["Arguments"]["Conditions"]
    assert [(c["Type"], _accuracy(c["LeftValue"]), c["RightValue"]) for c in which] == [("GreaterThanOrEqualTo", True, floor)]


def test_each_fail_step_states_the_accuracy_and_the_threshold_it_missed(definition, environment_name):
    from stacks.config import load_environment

    floor = load_environment(environment_name).pipeline.min_accuracy
    below_min = step_named(definition, register.FAIL_STEP_NAME)["Arguments"]["ErrorMessage"]["Std:Join"]
    assert below_min["On"] == " "
    assert below_min["Values"][0] == "Evaluated accuracy" and _accuracy(below_min["Values"][1])
    assert below_min["Values"][2:] == ["is below the minimum accuracy", {"Get": "Parameters.MinAccuracy"}]
    below_floor = step_named(definition, register.FLOOR_FAIL_STEP_NAME)["Arguments"]["ErrorMessage"]["Std:Join"]
    assert below_floor["Values"][0] == "Evaluated accuracy" and _accuracy(below_floor["Values"][1])
    assert below_floor["Values"][2:] == [f"is below {environment_name}'s accuracy floor {floor}"]


def test_an_artifact_already_in_the_registry_is_not_registered_again(dev_definition):
    condition = step_named(dev_definition, register.NOT_REGISTERED_CONDITION_STEP_NAME)["Arguments"]["Conditions"]
    assert condition == [{
        "Type": "Equals",
        "LeftValue": {"Std:JsonGet": {"Path": "registered_versions",
                                      "PropertyFile": {"Get": "Steps.SealModelArtifact.PropertyFiles.SealReport"}}},
        "RightValue": 0,
    }]


def test_seal_arguments_are_the_ones_seal_model_py_accepts(dev_definition):
    import seal_model

    arguments = step_named(dev_definition, seal.STEP_NAME)["Arguments"]
    parsed = seal_model.build_parser().parse_args(arguments["AppSpecification"]["ContainerArguments"])
    inputs = {i["InputName"]: i["S3Input"]["LocalPath"] for i in arguments["ProcessingInputs"]}
    assert parsed.model_archive == inputs["model"]
    assert (parsed.bucket, parsed.prefix) == ("${ArtifactsBucketName}", IMMUTABLE_MODELS_PREFIX)
    assert parsed.model_package_group == "${ModelPackageGroupName}"
    [output] = arguments["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["LocalPath"] == parsed.output_dir
    assert step_named(dev_definition, seal.STEP_NAME)["PropertyFiles"] == [
        {"PropertyFileName": "SealReport", "OutputName": output["OutputName"], "FilePath": seal_model.REPORT_FILE}
    ]
    # The script answers the registry question anew on every run.
    assert "CacheConfig" not in step_named(dev_definition, seal.STEP_NAME)


def test_processing_steps_run_their_script_from_the_code_bundle(dev_definition):
    for name, script in ((fingerprint.STEP_NAME, "fingerprint_input.py"), (prepare.STEP_NAME, "prepare.py"),
                         (seal.STEP_NAME, "seal_model.py"), (evaluate.STEP_NAME, "evaluate.py")):
        arguments = step_named(dev_definition, name)["Arguments"]
        entrypoint = arguments["AppSpecification"]["ContainerEntrypoint"]
        assert entrypoint[:2] == ["bash", "-c"] and entrypoint[-1] == script
        code = next(i for i in arguments["ProcessingInputs"] if i["InputName"] == "code")["S3Input"]
        assert code["S3Uri"] == "s3://${CodeBundleBucket}/${CodeBundleKey}"
        assert code["LocalPath"] in entrypoint[2]


def test_placeholders_are_the_only_substitutions_in_the_json(definition_text):
    from pipeline_definition.settings import PLACEHOLDER_NAMES, PSEUDO_PARAMETER_NAMES

    # Fn::Sub reads every "${...}": anything else would break the deploy or be substituted.
    found = set(re.findall(r"\$\{([^}]*)\}", definition_text))
    assert found == set(PLACEHOLDER_NAMES) | set(PSEUDO_PARAMETER_NAMES)
