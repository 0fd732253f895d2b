"""The generated `dev` definition, upserted through the real handler into moto and executed
step by step in the images' parity environments, on a tiny RoBERTa and synthetic reviews; and
damaged definitions that the executor must fail at the step that is wrong."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import os
from pathlib import Path

import boto3
import pytest
from botocore.validate import ParamValidator

from local_pipeline import iam, local_aws, s3_io
from local_pipeline.executor import ExecutionResult, PipelineExecutor, SelectiveExecution
from local_pipeline.jobs import JobContext
from stacks.config import load_environment
from local_run_support import tiny_training_parameters

pytestmark = pytest.mark.slow

# Below the gate: which threshold was missed, in the order the definition asks.
DIAGNOSIS_CHAIN = ["CheckNegativeRecall", "CheckNeutralRecall", "CheckPositiveRecall", "CheckMacroF1", "CheckAccuracyFloor"]
STEP_ORDER = ["FingerprintInput", "PrepareReviews", "TrainModel", "SealModelArtifact", "EvaluateModel",
              "DataQualityBaseline", "ModelQualityBaseline", "CheckModelQuality", "CheckNotYetRegistered",
              "Register-RegisterModel", "Create-CreateModel"]


class LocalPipeline:
    """The dev environment deployed into moto with its templates' roles enforced, and a way to
    run executions of its pipeline."""

    def __init__(self, work_dir: Path, model_dir: Path, raw_reviews: list[Path], templates: dict, endpoint_url: str):
        self.config = load_environment("dev")
        self.environment = local_aws.provision(self.config)
        local_aws.upload_reviews(self.environment, raw_reviews, "reviews/raw/")
        self.roles = local_aws.deploy_roles(self.environment, templates, endpoint_url)
        admin = self.roles.admin.session(self.config.region)
        self.sagemaker, self.iam = admin.client("sagemaker"), admin.client("iam")
        with local_aws.credentials_in_environment(self.roles.admin):
            self.definition = json.loads(local_aws.resolved_definition(self.environment))
            local_aws.upsert_pipeline(self.environment, json.dumps(self.definition), self.roles.pipeline_upserter)
        self.model_dir = model_dir
        pipeline_role = self.roles.pipeline.session(self.config.region)
        self.s3 = pipeline_role.client("s3")
        self.context = JobContext(self.s3, pipeline_role.client("sagemaker"), work_dir, self.config.region,
                                  self.config.account, local_aws.job_environment(self.config.region, self.roles.pipeline))
        self.runs = 0

    def run(self, definition: dict | None = None, selective: SelectiveExecution | None = None, **overrides: str) -> ExecutionResult:
        if definition is not None:
            self.sagemaker.update_pipeline(PipelineName=self.config.pipeline_name, PipelineDefinition=json.dumps(definition))
        self.runs += 1
        arn = self.sagemaker.start_pipeline_execution(
            PipelineName=self.config.pipeline_name,
            PipelineParameters=[{"Name": name, "Value": value}
                                for name, value in tiny_training_parameters(self.model_dir, **overrides).items()],
            ClientRequestToken=f"test-execution-{self.runs}".ljust(32, "0"),
        )["PipelineExecutionArn"]
        return PipelineExecutor(self.sagemaker, self.context, echo=None).execute(arn, selective)

    @contextlib.contextmanager
    def pipeline_role_without(self, sid: str):
        """The pipeline role less one statement of its template, for the duration."""
        role = self.roles.policies["pipeline"]
        iam.put_policies(self.iam, iam.without_statement(role, sid))
        try:
            yield
        finally:
            iam.put_policies(self.iam, role)


@pytest.fixture(scope="module")
def local_pipeline(tmp_path_factory, tiny_model_for_images, raw_reviews_dir, synthesized_app):
    config = load_environment("dev")
    templates = {config.stack_name(component): synthesized_app.template_json("dev", component)
                 for component in ("foundation", "pipeline", "serving")}
    with local_aws.moto_server() as url, local_aws.aws_endpoint(url, config.region, config.account):
        yield LocalPipeline(tmp_path_factory.mktemp("jobs"), tiny_model_for_images,
                            sorted(raw_reviews_dir.glob("*.csv")), templates, url)


@pytest.fixture(scope="module")
def baseline(local_pipeline) -> ExecutionResult:
    result = local_pipeline.run()
    assert result.status == "Succeeded", result.failure_reason
    return result


def test_every_step_of_the_definition_runs_in_order(baseline):
    assert [record.name for record in baseline.steps] == STEP_ORDER
    assert all(record.status == "Succeeded" and record.end_time >= record.start_time for record in baseline.steps)
    assert baseline.step("CheckModelQuality").metadata == {"Condition": {"Outcome": "True"}}
    assert baseline.step("CheckNotYetRegistered").metadata == {"Condition": {"Outcome": "True"}}


def test_execution_and_step_reports_have_the_services_response_shapes(baseline):
    model = boto3.client("sagemaker").meta.service_model
    for operation, response in (("ListPipelineExecutionSteps", baseline.list_steps()),
                                ("DescribePipelineExecution", baseline.describe())):
        report = ParamValidator().validate(response, model.operation_model(operation).output_shape)
        assert not report.has_errors(), report.generate_report()


def test_the_registered_package_points_at_the_sealed_artifact_and_its_evaluation(local_pipeline, baseline):
    package_arn = baseline.step_properties["Register-RegisterModel"]["ModelPackageArn"]
    package = local_pipeline.sagemaker.describe_model_package(ModelPackageName=package_arn)
    trained = baseline.step_properties["TrainModel"]["ModelArtifacts"]["S3ModelArtifacts"]
    digest = hashlib.sha256(_read(local_pipeline, trained)).hexdigest()
    sealed = f"s3://{local_pipeline.environment.artifacts_bucket}/immutable-models/sha256/{digest}/model.tar.gz"
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == sealed
    assert _read(local_pipeline, sealed) == _read(local_pipeline, trained)
    evaluated = baseline.step_properties["EvaluateModel"]["ProcessingInputs"]
    assert next(item for item in evaluated if item["InputName"] == "model")["S3Input"]["S3Uri"] == sealed
    evaluation_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    evaluation = local_aws_json(local_pipeline, evaluation_uri)
    assert 0.6 <= evaluation["multiclass_classification_metrics"]["accuracy"]["value"] <= 1.0
    model_name = baseline.step_properties["Create-CreateModel"]["ModelName"]
    assert local_pipeline.sagemaker.describe_model(ModelName=model_name)["PrimaryContainer"]["ModelDataUrl"] == sealed


def test_the_registered_package_carries_the_baselines_computed_from_its_test_predictions(local_pipeline, baseline):
    package_arn = baseline.step_properties["Register-RegisterModel"]["ModelPackageArn"]
    package = local_pipeline.sagemaker.describe_model_package(ModelPackageName=package_arn)
    drift, metrics = package["DriftCheckBaselines"], package["ModelMetrics"]
    data_statistics = local_aws_json(local_pipeline, drift["ModelDataQuality"]["Statistics"]["S3Uri"])
    data_constraints = local_aws_json(local_pipeline, drift["ModelDataQuality"]["Constraints"]["S3Uri"])
    assert metrics["ModelDataQuality"] == drift["ModelDataQuality"]
    # One column per monitored feature, typed as the analyzer types them.
    types = {feature["name"]: feature["inferred_type"] for feature in data_statistics["features"]}
    assert types == {"review_characters": "Integral", "review_tokens": "Integral", "truncated_share": "Fractional",
                     "unknown_token_share": "Fractional", "predicted_label": "String", "confidence": "Fractional"}
    predicted = next(c for c in data_constraints["features"] if c["name"] == "predicted_label")
    assert set(predicted["string_constraints"]["domains"]) <= {"negative", "neutral", "positive"}
    # The model-quality baseline agrees with evaluate.py's own report of the same predictions.
    evaluation = local_aws_json(local_pipeline, metrics["ModelQuality"]["Statistics"]["S3Uri"])
    model_statistics = local_aws_json(local_pipeline, drift["ModelQuality"]["Statistics"]["S3Uri"])
    model_constraints = local_aws_json(local_pipeline, drift["ModelQuality"]["Constraints"]["S3Uri"])
    accuracy = evaluation["multiclass_classification_metrics"]["accuracy"]["value"]
    assert model_statistics["multiclass_classification_metrics"]["accuracy"]["value"] == pytest.approx(accuracy)
    assert data_statistics["dataset"]["item_count"] == model_statistics["dataset"]["item_count"] == sum(
        sum(row.values()) for row in evaluation["multiclass_classification_metrics"]["confusion_matrix"].values())
    assert model_constraints["multiclass_classification_constraints"]["accuracy"] == {
        "threshold": pytest.approx(accuracy), "comparison_operator": "LessThanThreshold"}
    assert baseline.step("DataQualityBaseline").metadata["QualityCheck"]["CheckType"] == "DATA_QUALITY"


def _read(pipeline: "LocalPipeline", uri: str) -> bytes:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return pipeline.s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _sealed_key(baseline: ExecutionResult) -> tuple[str, str]:
    evaluated = baseline.step_properties["EvaluateModel"]["ProcessingInputs"]
    uri = next(item for item in evaluated if item["InputName"] == "model")["S3Input"]["S3Uri"]
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def test_the_pipeline_role_cannot_delete_the_sealed_artifact(local_pipeline, baseline):
    from botocore.exceptions import ClientError

    bucket, key = _sealed_key(baseline)
    version = local_pipeline.s3.head_object(Bucket=bucket, Key=key)["VersionId"]
    for extra in ({}, {"VersionId": version}):
        with pytest.raises(ClientError, match="AccessDenied"):
            local_pipeline.s3.delete_object(Bucket=bucket, Key=key, **extra)
    # A conditional write, the only kind the bucket policy lets through there, cannot replace it.
    with pytest.raises(ClientError, match="PreconditionFailed"):
        local_pipeline.s3.put_object(Bucket=bucket, Key=key, Body=b"other code/inference.py", IfNoneMatch="*")
    assert hashlib.sha256(local_pipeline.s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest() in key


def test_a_rerun_of_the_same_trained_artifact_registers_no_second_version(local_pipeline, baseline):
    group = local_pipeline.config.model_package_group_name
    before = local_pipeline.sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    # What a re-run with prepare and train cached gets: their results from the earlier execution.
    cached = dataclasses.replace(baseline, step_properties={name: baseline.step_properties[name]
                                                            for name in ("PrepareReviews", "TrainModel")})
    # FingerprintInput and SealModelArtifact are never cached: they run on every execution.
    # The baselines read this execution's evaluation output, so they run again too.
    rerun = frozenset({"FingerprintInput", "SealModelArtifact", "EvaluateModel", "DataQualityBaseline",
                       "ModelQualityBaseline", "CheckModelQuality", "CheckNotYetRegistered"})
    result = local_pipeline.run(local_pipeline.definition, SelectiveExecution(cached, rerun))
    assert result.status == "Succeeded", result.failure_reason
    assert [record.name for record in result.steps] == [
        "FingerprintInput", "SealModelArtifact", "EvaluateModel", "DataQualityBaseline", "ModelQualityBaseline",
        "CheckModelQuality", "CheckNotYetRegistered"]
    assert result.step("CheckNotYetRegistered").metadata == {"Condition": {"Outcome": "False"}}
    after = local_pipeline.sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    assert after == before


def local_aws_json(pipeline: "LocalPipeline", uri: str):
    from local_pipeline.s3_io import read_json_object

    return read_json_object(pipeline.s3, uri)


def test_overrides_reach_the_jobs_and_metrics_are_read_from_the_log(baseline):
    training = baseline.step_properties["TrainModel"]
    assert training["HyperParameters"]["epochs"] == "15"
    assert training["HyperParameters"]["learning-rate"] == "0.001"
    metric_names = {metric["MetricName"] for metric in training["FinalMetricDataList"]}
    assert metric_names == {"train_loss", "validation_loss", "validation_accuracy"}
    prepare_arguments = baseline.step_properties["PrepareReviews"]["AppSpecification"]["ContainerArguments"]
    assert prepare_arguments[prepare_arguments.index("--max-seq-length") + 1] == "32"


def _only(result: ExecutionResult, step: str) -> None:
    assert result.status == "Failed"
    failed = [record.name for record in result.steps if record.status == "Failed"]
    assert failed == [step]
    assert result.failure_reason.startswith(f"Step failure: {step} failed")


def _step(definition: dict, name: str) -> dict:
    """The step `name`, inside condition branches too."""
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop(0)
        if step["Name"] == name:
            return step
        if step["Type"] == "Condition":
            pending += [*step["Arguments"].get("IfSteps", []), *step["Arguments"].get("ElseSteps", [])]
    raise KeyError(name)


def test_a_wrong_json_get_path_fails_the_condition_step(local_pipeline, baseline):
    damaged = copy.deepcopy(local_pipeline.definition)
    condition = _step(damaged, "CheckModelQuality")["Arguments"]["Conditions"][0]
    condition["LeftValue"]["Std:JsonGet"]["Path"] = "multiclass_classification_metrics.accuracy.valu"
    result = local_pipeline.run(damaged, SelectiveExecution(baseline, frozenset({"CheckModelQuality"})))
    _only(result, "CheckModelQuality")
    assert "'valu' does not exist" in result.failure_reason


def test_a_train_channel_on_a_prefix_prepare_never_writes_fails_the_training_step(local_pipeline, baseline):
    damaged = copy.deepcopy(local_pipeline.definition)
    channel = _step(damaged, "TrainModel")["Arguments"]["InputDataConfig"][0]
    assert channel["ChannelName"] == "train"
    channel["DataSource"]["S3DataSource"]["S3Uri"] = {"Std:Join": {"On": "/", "Values": [
        {"Get": "Steps.PrepareReviews.ProcessingOutputConfig.Outputs['validation'].S3Output.S3Uri"}, "train"]}}
    result = local_pipeline.run(damaged, SelectiveExecution(baseline, frozenset({"TrainModel"})))
    _only(result, "TrainModel")
    assert "No S3 objects found under S3 URL" in result.failure_reason


def test_a_missing_hyperparameter_fails_the_training_step(local_pipeline, baseline):
    damaged = copy.deepcopy(local_pipeline.definition)
    del _step(damaged, "TrainModel")["Arguments"]["HyperParameters"]["sagemaker_program"]
    result = local_pipeline.run(damaged, SelectiveExecution(baseline, frozenset({"TrainModel"})))
    _only(result, "TrainModel")


def test_an_output_name_that_prepare_does_not_declare_fails_the_step_that_reads_it(local_pipeline, baseline):
    damaged = copy.deepcopy(local_pipeline.definition)
    evaluate_inputs = _step(damaged, "EvaluateModel")["Arguments"]["ProcessingInputs"]
    test_input = next(item for item in evaluate_inputs if item["InputName"] == "test")
    test_input["S3Input"]["S3Uri"] = {"Get": "Steps.PrepareReviews.ProcessingOutputConfig.Outputs['testing'].S3Output.S3Uri"}
    result = local_pipeline.run(damaged, SelectiveExecution(baseline, frozenset({"EvaluateModel"})))
    _only(result, "EvaluateModel")
    assert "no item named 'testing'" in result.failure_reason


def test_below_the_threshold_the_fail_step_ends_the_run_and_nothing_is_registered(local_pipeline, baseline):
    result = local_pipeline.run(local_pipeline.definition, SelectiveExecution(baseline, frozenset({"CheckModelQuality"})),
                                MinAccuracy="1.01")
    assert result.status == "Failed"
    assert [record.name for record in result.steps] == ["CheckModelQuality", *DIAGNOSIS_CHAIN, "AccuracyBelowThreshold"]
    assert result.step("CheckModelQuality").metadata == {"Condition": {"Outcome": "False"}}
    assert result.failure_reason.startswith("Evaluated accuracy ")
    assert result.failure_reason.endswith("is below the minimum accuracy 1.01")


def test_a_min_accuracy_below_the_floor_does_not_lower_it(local_pipeline, baseline):
    # The same definition in an environment whose floor the model misses (a stricter cdk.json).
    stricter = json.loads(json.dumps(local_pipeline.definition).replace("dev's accuracy floor 0.6", "dev's accuracy floor 1.01"))
    for name in ("CheckModelQuality", "CheckAccuracyFloor"):
        for condition in _step(stricter, name)["Arguments"]["Conditions"]:
            if condition["RightValue"] == local_pipeline.config.pipeline.min_accuracy:
                condition["RightValue"] = 1.01
    result = local_pipeline.run(stricter, SelectiveExecution(baseline, frozenset({"CheckModelQuality"})), MinAccuracy="0")
    assert result.status == "Failed"
    assert [record.name for record in result.steps] == ["CheckModelQuality", *DIAGNOSIS_CHAIN, "AccuracyBelowFloor"]
    assert result.failure_reason.startswith("Evaluated accuracy ")
    assert result.failure_reason.endswith("is below dev's accuracy floor 1.01")


def _evaluated_elsewhere(local_pipeline, baseline, report: dict) -> ExecutionResult:
    """The baseline as if EvaluateModel had written `report`: the same step properties, with
    its evaluation output at a prefix that holds `report` as evaluation.json."""
    source = copy.deepcopy(baseline.step_properties)
    [output] = [item for item in source["EvaluateModel"]["ProcessingOutputConfig"]["Outputs"] if item["OutputName"] == "evaluation"]
    output["S3Output"]["S3Uri"] = output["S3Output"]["S3Uri"].rstrip("/") + "-degenerate"
    bucket, _, prefix = output["S3Output"]["S3Uri"][len("s3://"):].partition("/")
    admin_s3 = local_pipeline.roles.admin.session(local_pipeline.config.region).client("s3")
    admin_s3.put_object(Bucket=bucket, Key=f"{prefix}/evaluation.json", Body=json.dumps(report).encode())
    return dataclasses.replace(baseline, step_properties=source)


def test_a_model_that_ignores_neutral_fails_at_the_neutral_recall_check_though_its_accuracy_passes(local_pipeline, baseline):
    import evaluate as evaluate_script  # container_code/

    # 16 positive, 2 negative, 2 neutral reviews; every neutral one called positive: accuracy 0.9.
    actual = [2] * 16 + [0, 0, 1, 1]
    report = evaluate_script.model_quality_report(actual, [2] * 16 + [0, 0, 2, 2])
    assert report["multiclass_classification_metrics"]["accuracy"]["value"] == pytest.approx(0.9)
    source = _evaluated_elsewhere(local_pipeline, baseline, report)
    result = local_pipeline.run(local_pipeline.definition, SelectiveExecution(source, frozenset({"CheckModelQuality"})))
    assert result.status == "Failed"
    assert [record.name for record in result.steps] == [
        "CheckModelQuality", "CheckNegativeRecall", "CheckNeutralRecall", "NeutralRecallBelowThreshold"]
    assert result.step("CheckNegativeRecall").metadata == {"Condition": {"Outcome": "True"}}
    assert result.failure_reason == ("Evaluated recall of class neutral 0.0 is below dev's minimum class recall 0.3 "
                                     "or this run's MinClassRecall 0.3")
    # The same report with the neutral reviews found passes the gate: the recall check is what failed it.
    passing = evaluate_script.model_quality_report(actual, actual)
    result = local_pipeline.run(local_pipeline.definition, SelectiveExecution(
        _evaluated_elsewhere(local_pipeline, baseline, passing), frozenset({"CheckModelQuality"})))
    assert result.step("CheckModelQuality").metadata == {"Condition": {"Outcome": "True"}}


def test_a_macro_f1_above_the_run_threshold_fails_at_the_macro_f1_check(local_pipeline, baseline):
    result = local_pipeline.run(local_pipeline.definition, SelectiveExecution(baseline, frozenset({"CheckModelQuality"})),
                                MinMacroF1="1.01")
    assert [record.name for record in result.steps] == ["CheckModelQuality", *DIAGNOSIS_CHAIN[:-1], "MacroF1BelowThreshold"]
    assert result.failure_reason.startswith("Evaluated macro-F1 ")
    assert result.failure_reason.endswith("is below dev's floor 0.55 or this run's MinMacroF1 1.01")


def test_a_step_whose_role_lacks_the_permission_fails_with_access_denied(local_pipeline, baseline):
    with local_pipeline.pipeline_role_without("RegisterModelVersions"):
        result = local_pipeline.run(local_pipeline.definition,
                                    SelectiveExecution(baseline, frozenset({"Register-RegisterModel", "Create-CreateModel"})))
    _only(result, "Register-RegisterModel")
    assert "AccessDenied" in result.failure_reason and "sagemaker:CreateModelPackage" in result.failure_reason


def test_a_job_whose_role_cannot_read_its_inputs_fails_before_it_starts(local_pipeline, baseline):
    with local_pipeline.pipeline_role_without("ReadWriteProjectObjects"):
        result = local_pipeline.run(local_pipeline.definition, SelectiveExecution(baseline, frozenset({"SealModelArtifact"})))
    _only(result, "SealModelArtifact")
    assert "AccessDenied when the job's role tried to read s3://review-classifier-dev-" in result.failure_reason


def test_job_code_runs_with_the_role_and_is_denied_what_the_role_does_not_allow(local_pipeline, baseline):
    # The training toolkit inside the container downloads the code bundle itself.
    with local_pipeline.pipeline_role_without("ReadCodeAssets"):
        result = local_pipeline.run(local_pipeline.definition, SelectiveExecution(baseline, frozenset({"TrainModel"})))
    _only(result, "TrainModel")
    assert "AlgorithmError" in result.failure_reason and "403" in result.failure_reason


def test_the_upserter_runs_as_its_role(local_pipeline):
    from stacks.lambdas.pipeline_upserter.handler import PipelineUpsertError

    role = local_pipeline.roles.policies["pipeline_upserter"]
    iam.put_policies(local_pipeline.iam, iam.without_statement(role, "ManageThisPipelineOnly"))
    try:
        with local_aws.credentials_in_environment(local_pipeline.roles.admin), \
                pytest.raises(PipelineUpsertError, match="(?s)DescribePipeline .*AccessDenied"):
            local_aws.upsert_pipeline(local_pipeline.environment, json.dumps(local_pipeline.definition),
                                      local_pipeline.roles.pipeline_upserter)
    finally:
        iam.put_policies(local_pipeline.iam, role)


# ---------------------------------------------------------------------------------------------
# The input fingerprint: prepare's cache key follows the objects under the prefix

PREPARE_ONLY = frozenset({"FingerprintInput", "PrepareReviews"})


def prepare_cache_key(result: ExecutionResult) -> str:
    """SageMaker's cache key attributes of a processing step, as the job received them."""
    request = result.step_properties["PrepareReviews"]
    return hashlib.sha256(json.dumps({name: request.get(name) for name in ("AppSpecification", "Environment", "ProcessingInputs")},
                                     sort_keys=True).encode()).hexdigest()


def _output_uri(result: ExecutionResult, step: str, output: str) -> str:
    outputs = result.step_properties[step]["ProcessingOutputConfig"]["Outputs"]
    return next(o["S3Output"]["S3Uri"] for o in outputs if o["OutputName"] == output)


def test_prepare_gets_the_input_fingerprint_and_its_cache_key_follows_the_objects(local_pipeline, baseline, raw_reviews_dir):
    s3, bucket, prefix = local_pipeline.s3, local_pipeline.environment.data_bucket, "reviews/raw-fingerprinted/"
    with local_aws.credentials_in_environment(local_pipeline.roles.admin):
        uri = local_aws.upload_reviews(local_pipeline.environment, sorted(raw_reviews_dir.glob("*.csv")), prefix)
    selective = SelectiveExecution(baseline, PREPARE_ONLY)

    first = local_pipeline.run(local_pipeline.definition, selective, InputDataS3Uri=uri)
    assert first.status == "Succeeded", first.failure_reason
    fingerprint = s3_io.read_json_object(s3, _output_uri(first, "FingerprintInput", "fingerprint") + "/fingerprint.json")
    report = s3_io.read_json_object(s3, _output_uri(first, "PrepareReviews", "report") + "/prepare_report-algo-1.json")
    assert report["input"]["digest"] == fingerprint["digest"]
    assert report["input"]["files"] == fingerprint["object_count"] == 1
    assert report["event_time"]["default_event_time"] == fingerprint["snapshot_time"]

    unchanged = local_pipeline.run(local_pipeline.definition, selective, InputDataS3Uri=uri)
    assert prepare_cache_key(unchanged) == prepare_cache_key(first)  # SageMaker would reuse the first run

    # One review's rating edited in place (same key, same size): a cache miss, so new data
    # reaches train and evaluate.
    key = f"{prefix}reviews.csv"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    line_start = body.index(b"\nr0000,") + len(b"\nr0000,")
    edited = body[:line_start] + (b"3" if body[line_start:line_start + 1] != b"3" else b"1") + body[line_start + 1:]
    s3.put_object(Bucket=bucket, Key=key, Body=edited)
    rewritten = local_pipeline.run(local_pipeline.definition, selective, InputDataS3Uri=uri)
    assert rewritten.status == "Succeeded", rewritten.failure_reason
    assert prepare_cache_key(rewritten) != prepare_cache_key(first)


def test_a_prepare_failure_reaches_the_step_as_one_line(local_pipeline, baseline):
    bucket, prefix = local_pipeline.environment.data_bucket, "reviews/raw-header-only/"
    local_pipeline.s3.put_object(Bucket=bucket, Key=f"{prefix}reviews.csv", Body=b"review_id,star_rating,review_body\n")
    result = local_pipeline.run(local_pipeline.definition, SelectiveExecution(baseline, PREPARE_ONLY),
                                InputDataS3Uri=f"s3://{bucket}/{prefix}")
    _only(result, "PrepareReviews")
    assert result.failure_reason.endswith("AlgorithmError: exit code 2: prepare: the input holds no data rows (header lines only)")


def test_the_registered_version_promoted_to_prod_serves_the_same_bytes(local_pipeline, baseline, monkeypatch):
    """The run's registered version, approved in its group, promoted by tools/promote_model.py into
    prod's group in prod's account; prod's version serves byte for byte what was trained and
    evaluated, prod's deployer verifies its digest, and it publishes the baselines the run
    calculated (carried by the promotion) byte for byte to prod's monitoring keys. The executed definition is dev's (the one
    run this module shares), so dev's group stands for staging's: the code is the same whichever
    environment prod promotes from."""
    from local_pipeline.iam import enforce_access_control, relax_access_control
    from stacks.config import ModelSourceConfig
    from stacks.lambdas.approval_deployer import handler as deployer
    from support.moto_accounts import route_to_owner
    from tools.promote_model import PromotionClients, promote

    source = local_pipeline.config
    target = load_environment("prod").model_copy(update={"model_source": ModelSourceConfig(promote_from=source.name)})
    source_arn = baseline.step_properties["Register-RegisterModel"]["ModelPackageArn"]
    trained = _read(local_pipeline, baseline.step_properties["TrainModel"]["ModelArtifacts"]["S3ModelArtifacts"])
    local_pipeline.sagemaker.update_model_package(ModelPackageArn=source_arn, ModelApprovalStatus="Approved")
    endpoint, bucket = os.environ["AWS_ENDPOINT_URL"], local_pipeline.environment.artifacts_bucket

    # moto enforces IAM within one account and answers in MOTO_ACCOUNT_ID's: both off here, so that
    # each request reaches the account owning what it names (the policies: tests/serving/test_promotion_policies.py).
    relax_access_control(endpoint)
    monkeypatch.delenv("MOTO_ACCOUNT_ID")
    try:
        def client(service: str):
            return route_to_owner(boto3.client(service, endpoint_url=endpoint, region_name=target.region),
                                  target.account, {bucket: source.account})

        sagemaker, s3 = client("sagemaker"), client("s3")
        sagemaker.create_model_package_group(ModelPackageGroupName=target.model_package_group_name)
        promotion = promote(PromotionClients(sagemaker, s3, sagemaker), source, target, int(source_arn.rsplit("/", 1)[-1]))

        package = sagemaker.describe_model_package(ModelPackageName=promotion.target_arn)
        assert promotion.target_arn.split(":")[4] == target.account
        assert package["ModelApprovalStatus"] == "PendingManualApproval"
        served_url = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
        served_bucket, _, served_key = served_url[len("s3://"):].partition("/")
        assert s3.get_object(Bucket=served_bucket, Key=served_key)["Body"].read() == trained
        assert promotion.sha256 == hashlib.sha256(trained).hexdigest() in served_key
        registered = sagemaker.describe_model_package(ModelPackageName=source_arn)
        assert package["DriftCheckBaselines"] == registered["DriftCheckBaselines"]
        assert package["ModelMetrics"] == registered["ModelMetrics"]

        prod_deployer = deployer.Clients.create(endpoint_url=endpoint, region_name=target.region)
        route_to_owner(prod_deployer.sagemaker, target.account)
        route_to_owner(prod_deployer.s3, target.account, {bucket: source.account})
        settings = deployer.Settings(
            stack_name=target.stack_name("serving"), parameter_name="ApprovedModelPackageArn",
            approved_package_parameter_name=target.approved_model_package_parameter_name,
            cloudformation_role_arn="unused", dead_letter_queue_url="unused",
            model_package_group_name=target.model_package_group_name, environment_name=target.name,
            metric_namespace="unused", promotion_source_prefix=source_arn.rsplit("/", 1)[0] + "/",
            serving_baselines_uri=f"s3://{target.resource_prefix}-artifacts-{target.account}/serving-baselines/"
                                  f"{target.endpoint_name}",
        )
        deployer.verify_promoted_artifact(prod_deployer, settings, promotion.target_arn)
        s3.create_bucket(Bucket=f"{target.resource_prefix}-artifacts-{target.account}")
        assert deployer.publish_serving_baselines(prod_deployer, settings, promotion.target_arn) == 4
        for (kind, document), path in deployer.SERVING_BASELINE_FILES:
            calculated = package["DriftCheckBaselines"][kind][document]["S3Uri"]
            assert calculated.startswith(f"s3://{bucket}/monitoring-baselines/"), calculated
            published_bucket, _, published_prefix = settings.serving_baselines_uri[len("s3://"):].partition("/")
            published = s3.get_object(Bucket=published_bucket, Key=f"{published_prefix}/{path}")["Body"].read()
            assert published == s3.get_object(Bucket=bucket, Key=calculated.split("/", 3)[3])["Body"].read(), path
    finally:
        enforce_access_control(endpoint)
