"""Model Monitor schedules of the served endpoint: data quality of the captured requests (turned
into review features by container_code/record_features.py, the record preprocessor) and model
quality of the captured predictions against the labels users upload, each compared with the
baselines of the package that serves, and a CloudWatch alarm on each kind of violation.

The schedules follow the served package without any change to them: their baselines live at
fixed keys of the artifacts bucket (SERVING_BASELINES_PREFIX/<endpoint>/...), and the approval
deployer copies the promoted package's DriftCheckBaselines there when it promotes it
(stacks/lambdas/approval_deployer/handler.py, publish_serving_baselines). Everything here exists
only while a package is approved (the endpoint's condition).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from cdk_nag import RegexAppliesTo
from constructs import Construct

from pipeline_definition.image_registries import ImageRepository
from stacks.components.encrypted_buckets import DATA_CAPTURE_PREFIX
from stacks.components.image_pulls import image_pull_statements
from stacks.config import MonitoringConfig
from stacks.nag_suppressions import suppress

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RECORD_PREPROCESSOR = PROJECT_ROOT / "container_code" / "record_features.py"
SERVING_BASELINES_PREFIX = "serving-baselines"
# Where users upload labels (AWS: "Ingest Ground Truth Labels and Merge Them With Predictions"):
# <prefix>/<endpoint>/yyyy/mm/dd/hh/*.jsonl in the data bucket.
GROUND_TRUTH_PREFIX = "ground-truth"
MONITORING_REPORTS_PREFIX = "monitoring-reports"
PROCESSING_DIR = "/opt/ml/processing"
DATA_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
MODEL_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/model-metrics"
# The features record_features.py gives (FEATURE_NAMES): the analyzer publishes one
# feature_baseline_drift_<name> metric per column of the baseline.
MONITORED_FEATURES = ("review_characters", "review_tokens", "truncated_share", "unknown_token_share",
                      "predicted_label", "confidence")
# The distribution distance above which the analyzer reports a feature as drifted (the
# comparison_threshold of the baseline's monitoring_config).
DRIFT_DISTANCE_THRESHOLD = 0.1
INFERENCE_ATTRIBUTE = "predicted_label"
VOLUME_SIZE_GB = 20


@dataclass(frozen=True)
class ModelMonitoringProps:
    endpoint_name: str
    monitoring: MonitoringConfig
    max_seq_length: int
    # The model-quality alarm's floor: the environment's accuracy floor (pipeline.min_accuracy).
    min_accuracy: float
    condition: cdk.CfnCondition
    endpoint: sagemaker.CfnEndpoint
    key: kms.IKey
    data_bucket: s3.IBucket
    artifacts_bucket: s3.IBucket
    image_uri: str
    image_repositories: tuple[ImageRepository, ...]


def serving_baseline_key(endpoint_name: str, kind: str, file_name: str) -> str:
    """Where the served package's baseline file of `kind` (data-quality, model-quality) lives."""
    return f"{SERVING_BASELINES_PREFIX}/{endpoint_name}/{kind}/{file_name}"


class ModelMonitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: ModelMonitoringProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        self.record_preprocessor = s3_assets.Asset(self, "RecordPreprocessor", path=str(RECORD_PREPROCESSOR))
        self.role = self._role()
        self.data_quality_job = self._data_quality_job()
        self.model_quality_job = self._model_quality_job()
        self.data_quality_schedule = self._schedule("DataQuality", _name_of(self.data_quality_job.attr_job_definition_arn),
                                                    props.monitoring.data_quality_schedule)
        self.model_quality_schedule = self._schedule("ModelQuality", _name_of(self.model_quality_job.attr_job_definition_arn),
                                                     props.monitoring.model_quality_schedule)
        self.data_drift_alarm = self._data_drift_alarm()
        self.model_quality_alarm = self._model_quality_alarm()
        self.alarms = (self.data_drift_alarm, self.model_quality_alarm)
        for resource in (self.data_quality_job, self.model_quality_job, self.data_quality_schedule,
                         self.model_quality_schedule, *self.alarms):
            resource.cfn_options.condition = props.condition
        for job in (self.data_quality_job, self.model_quality_job):
            job.node.add_dependency(props.endpoint)  # the job definitions name the endpoint, not a reference

    # --- IAM -----------------------------------------------------------------------------------
    def _role(self) -> iam.Role:
        props, stack = self._props, cdk.Stack.of(self)
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                        description=f"Runs the Model Monitor jobs of the {props.endpoint_name} endpoint")
        props.data_bucket.grant_read(role, f"{DATA_CAPTURE_PREFIX}/{props.endpoint_name}/*")
        props.data_bucket.grant_read(role, f"{GROUND_TRUTH_PREFIX}/{props.endpoint_name}/*")
        props.data_bucket.grant_put(role, f"{MONITORING_REPORTS_PREFIX}/{props.endpoint_name}/*")
        props.artifacts_bucket.grant_read(role, f"{SERVING_BASELINES_PREFIX}/{props.endpoint_name}/*")
        self.record_preprocessor.grant_read(role)
        props.key.grant_encrypt_decrypt(role)
        for statement in image_pull_statements(self, props.image_repositories):
            role.add_to_policy(statement)
        role.add_to_policy(iam.PolicyStatement(
            sid="WriteMonitoringJobLogs",
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[stack.format_arn(service="logs", resource="log-group", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                                        resource_name="/aws/sagemaker/ProcessingJobs:*")],
        ))
        role.add_to_policy(iam.PolicyStatement(
            sid="PublishMonitoringMetrics", actions=["cloudwatch:PutMetricData"], resources=["*"],
            conditions={"StringLike": {"cloudwatch:namespace": "aws/sagemaker/Endpoints/*"}},
        ))
        suppress(
            role, "AwsSolutions-IAM5",
            "CDK grant helpers scoped to this endpoint's prefixes (captured data, ground truth, reports, "
            "served baselines) and the record preprocessor asset; object keys are named by SageMaker at run "
            "time; ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level permissions "
            "(metrics limited to aws/sagemaker/Endpoints/* by a condition); processing job log streams are "
            "named per job.",
            applies_to=[
                "Action::s3:GetBucket*", "Action::s3:GetObject*", "Action::s3:List*", "Action::s3:Abort*",
                "Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*", "Resource::*",
                RegexAppliesTo(regex="/^Resource::.*\\/\\*$/"),
                f"Resource::arn:<AWS::Partition>:logs:{stack.region}:{stack.account}:log-group:/aws/sagemaker/ProcessingJobs:*",
            ],
            apply_to_children=True,
        )
        return role

    # --- Job definitions -----------------------------------------------------------------------
    def _baseline_uri(self, kind: str, file_name: str) -> str:
        return self._props.artifacts_bucket.s3_url_for_object(serving_baseline_key(self._props.endpoint_name, kind, file_name))

    def _common(self, kind: str, cls, output_config_key: str) -> dict:
        """What both job definitions share; `cls` is the job definition's L1 class (each has its
        own property types)."""
        props = self._props
        return {
            "job_resources": cls.MonitoringResourcesProperty(
                cluster_config=cls.ClusterConfigProperty(
                    instance_count=1, instance_type=props.monitoring.instance_type,
                    volume_size_in_gb=VOLUME_SIZE_GB, volume_kms_key_id=props.key.key_arn,
                )),
            "stopping_condition": cls.StoppingConditionProperty(
                max_runtime_in_seconds=props.monitoring.max_runtime_seconds),
            "network_config": cls.NetworkConfigProperty(
                enable_inter_container_traffic_encryption=True, enable_network_isolation=True),
            "role_arn": self.role.role_arn,
            output_config_key: cls.MonitoringOutputConfigProperty(
                kms_key_id=props.key.key_arn,
                monitoring_outputs=[cls.MonitoringOutputProperty(
                    s3_output=cls.S3OutputProperty(
                        local_path=f"{PROCESSING_DIR}/output",
                        s3_uri=props.data_bucket.s3_url_for_object(
                            f"{MONITORING_REPORTS_PREFIX}/{props.endpoint_name}/{kind}"),
                        s3_upload_mode="EndOfJob",
                    ))],
            ),
        }

    def _data_quality_job(self) -> sagemaker.CfnDataQualityJobDefinition:
        props = self._props
        job = sagemaker.CfnDataQualityJobDefinition(
            self, "DataQualityJobDefinition",
            data_quality_app_specification=sagemaker.CfnDataQualityJobDefinition.DataQualityAppSpecificationProperty(
                image_uri=props.image_uri,
                record_preprocessor_source_uri=self.record_preprocessor.s3_object_url,
                # record_features.py reads it: the share truncated follows the served model's length.
                environment={"REVIEW_CLASSIFIER_MAX_SEQ_LENGTH": str(props.max_seq_length)},
            ),
            data_quality_baseline_config=sagemaker.CfnDataQualityJobDefinition.DataQualityBaselineConfigProperty(
                constraints_resource=sagemaker.CfnDataQualityJobDefinition.ConstraintsResourceProperty(
                    s3_uri=self._baseline_uri("data-quality", "constraints.json")),
                statistics_resource=sagemaker.CfnDataQualityJobDefinition.StatisticsResourceProperty(
                    s3_uri=self._baseline_uri("data-quality", "statistics.json")),
            ),
            data_quality_job_input=sagemaker.CfnDataQualityJobDefinition.DataQualityJobInputProperty(
                endpoint_input=sagemaker.CfnDataQualityJobDefinition.EndpointInputProperty(
                    endpoint_name=props.endpoint_name, local_path=f"{PROCESSING_DIR}/input/endpoint",
                    s3_input_mode="File", s3_data_distribution_type="FullyReplicated",
                )),
            **self._common("data-quality", sagemaker.CfnDataQualityJobDefinition, "data_quality_job_output_config"),
        )
        return job

    def _model_quality_job(self) -> sagemaker.CfnModelQualityJobDefinition:
        props = self._props
        return sagemaker.CfnModelQualityJobDefinition(
            self, "ModelQualityJobDefinition",
            model_quality_app_specification=sagemaker.CfnModelQualityJobDefinition.ModelQualityAppSpecificationProperty(
                image_uri=props.image_uri,
                problem_type="MulticlassClassification",
                record_preprocessor_source_uri=self.record_preprocessor.s3_object_url,
                environment={"REVIEW_CLASSIFIER_MAX_SEQ_LENGTH": str(props.max_seq_length)},
            ),
            model_quality_baseline_config=sagemaker.CfnModelQualityJobDefinition.ModelQualityBaselineConfigProperty(
                constraints_resource=sagemaker.CfnModelQualityJobDefinition.ConstraintsResourceProperty(
                    s3_uri=self._baseline_uri("model-quality", "constraints.json")),
            ),
            model_quality_job_input=sagemaker.CfnModelQualityJobDefinition.ModelQualityJobInputProperty(
                endpoint_input=sagemaker.CfnModelQualityJobDefinition.EndpointInputProperty(
                    endpoint_name=props.endpoint_name, local_path=f"{PROCESSING_DIR}/input/endpoint",
                    inference_attribute=INFERENCE_ATTRIBUTE,
                    s3_input_mode="File", s3_data_distribution_type="FullyReplicated",
                ),
                ground_truth_s3_input=sagemaker.CfnModelQualityJobDefinition.MonitoringGroundTruthS3InputProperty(
                    s3_uri=props.data_bucket.s3_url_for_object(f"{GROUND_TRUTH_PREFIX}/{props.endpoint_name}")),
            ),
            **self._common("model-quality", sagemaker.CfnModelQualityJobDefinition, "model_quality_job_output_config"),
        )

    def _schedule(self, kind: str, job_definition_name: str, expression: str) -> sagemaker.CfnMonitoringSchedule:
        props = self._props
        return sagemaker.CfnMonitoringSchedule(
            self, f"{kind}Schedule",
            monitoring_schedule_name=f"{props.endpoint_name}-{kind.lower().replace('quality', '-quality')}",
            endpoint_name=props.endpoint_name,
            monitoring_schedule_config=sagemaker.CfnMonitoringSchedule.MonitoringScheduleConfigProperty(
                monitoring_job_definition_name=job_definition_name,
                monitoring_type=kind,
                schedule_config=sagemaker.CfnMonitoringSchedule.ScheduleConfigProperty(schedule_expression=expression),
            ),
        )

    # --- Alarms ----------------------------------------------------------------------------------
    def _metric(self, namespace: str, name: str, schedule: sagemaker.CfnMonitoringSchedule, statistic: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=namespace, metric_name=name, statistic=statistic, period=cdk.Duration.hours(1),
            dimensions_map={"Endpoint": self._props.endpoint_name, "MonitoringSchedule": schedule.monitoring_schedule_name},
        )

    def _data_drift_alarm(self) -> cloudwatch.CfnAlarm:
        props = self._props
        drifted = " + ".join(f"IF(m{index} > {DRIFT_DISTANCE_THRESHOLD}, 1, 0)" for index in range(len(MONITORED_FEATURES)))
        expression = cloudwatch.MathExpression(
            expression=drifted,
            using_metrics={f"m{index}": self._metric(DATA_METRICS_NAMESPACE, f"feature_baseline_drift_{name}",
                                                     self.data_quality_schedule, "Maximum")
                           for index, name in enumerate(MONITORED_FEATURES)},
            label="features drifted from the served package's baseline",
            period=cdk.Duration.hours(1),
        )
        alarm = cloudwatch.Alarm(
            self, "DataDriftAlarm",
            alarm_name=f"{props.endpoint_name}-data-drift",
            alarm_description=(f"{props.endpoint_name}: at least {props.monitoring.drifted_features_alarm_threshold} "
                               "monitored review feature(s) drifted from the served package's data-quality baseline"),
            metric=expression,
            threshold=props.monitoring.drifted_features_alarm_threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        return alarm.node.default_child

    def _model_quality_alarm(self) -> cloudwatch.CfnAlarm:
        props = self._props
        alarm = cloudwatch.Alarm(
            self, "ModelQualityAlarm",
            alarm_name=f"{props.endpoint_name}-accuracy-below-floor",
            alarm_description=(f"{props.endpoint_name}: accuracy on the uploaded ground-truth labels is below the "
                               f"environment's floor {props.min_accuracy}"),
            metric=self._metric(MODEL_METRICS_NAMESPACE, "accuracy", self.model_quality_schedule, "Minimum")
            .with_(period=cdk.Duration.days(1)),
            threshold=props.min_accuracy,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        return alarm.node.default_child


def _name_of(job_definition_arn: str) -> str:
    """`arn:...:data-quality-job-definition/<name>` -> `<name>`: the job definitions are left
    unnamed, so CloudFormation can replace one when its settings change."""
    return cdk.Fn.select(1, cdk.Fn.split("/", job_definition_arn))
