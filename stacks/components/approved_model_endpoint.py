"""The served side of one environment: a SageMaker model built from the approved model package,
its endpoint config and endpoint (blue/green with auto-rollback on alarms), and auto scaling.

The rollback alarms watch 5XX errors, latency and the share of 4XX answers: the HuggingFace
inference image answers every handler error, a failing model included, with a 400 (docs/serving.md).

Every served resource exists only under `props.has_approved_model` (a CfnCondition on the stack's
approved-package parameter), so the stack deploys cleanly before any approval.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from cdk_nag import RegexAppliesTo
from constructs import Construct

from pipeline_definition.image_registries import ImageRepository
from stacks.checkov_skips import skip_checkov
from stacks.components.encrypted_buckets import DATA_CAPTURE_PREFIX
from stacks.components.image_pulls import image_pull_statements
from stacks.config import ServingConfig, TrafficShiftingConfig
from stacks.nag_suppressions import suppress

# Blue/green deployments replace a variant by name: the name must never change.
VARIANT_NAME = "AllTraffic"
SAGEMAKER_METRICS_NAMESPACE = "AWS/SageMaker"
ALARM_PERIOD = cdk.Duration.minutes(1)
ALARM_EVALUATION_PERIODS = 2
MICROSECONDS_PER_MILLISECOND = 1000  # ModelLatency is reported in microseconds
# Metric math: the percentage of a minute's invocations the model answered with a 4xx. Minutes
# without a datapoint count as not breaching, like the other alarms (an idle endpoint is healthy).
ERROR_4XX_SHARE_EXPRESSION = "100 * errors4xx / invocations"


@dataclass(frozen=True)
class ApprovedModelEndpointProps:
    endpoint_name: str
    model_package_group_name: str
    approved_model_package_arn: str  # a token: the stack parameter's value
    has_approved_model: cdk.CfnCondition
    serving: ServingConfig
    key: kms.IKey
    data_bucket: s3.IBucket
    artifacts_bucket: s3.IBucket
    # The inference image's builds: `image_registries.inference_repositories(region)`.
    image_repositories: tuple[ImageRepository, ...]
    # Fixed where another account's policies must name the role (a promotion target); else generated.
    role_name: str | None = None


class ApprovedModelEndpoint(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, props: ApprovedModelEndpointProps) -> None:
        super().__init__(scope, construct_id)
        self._props = props
        self.role = self._model_execution_role()
        self.model = sagemaker.CfnModel(
            self,
            "Model",
            # No model name: CloudFormation names it, so a new package creates a new model beside
            # the old one (model properties cannot change in place).
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                model_package_name=props.approved_model_package_arn,
            ),
            # No network for the container: the artifact carries weights, tokenizer and code
            # (model_io.SERVING_CODE_FILES, no requirements.txt to install), the image the libraries,
            # and SageMaker itself fetches the artifact and writes data capture and logs.
            # Serverless endpoints refuse network isolation (a documented feature exclusion).
            enable_network_isolation=not props.serving.is_serverless,
            tags=[cdk.CfnTag(key="model-package-group", value=props.model_package_group_name)],
        )
        self.model.node.add_dependency(self.role)
        if props.serving.is_serverless:
            skip_checkov(
                self.model,
                "CKV_AWS_370",
                "This environment serves from a serverless endpoint, and SageMaker Serverless Inference "
                "does not support network isolation (one of its documented feature exclusions); "
                "real-time environments isolate the container.",
            )
        self.endpoint_config = self._endpoint_config()
        self.rollback_alarms = self._rollback_alarms()
        self.endpoint = self._endpoint()
        served: list[cdk.CfnResource] = [self.model, self.endpoint_config, *self.rollback_alarms, self.endpoint]
        if props.serving.auto_scaling is not None:
            served.extend(self._auto_scaling())
        for resource in served:
            resource.cfn_options.condition = props.has_approved_model

    # --- IAM -----------------------------------------------------------------------------------
    def _model_execution_role(self) -> iam.Role:
        props, stack = self._props, cdk.Stack.of(self)
        role = iam.Role(
            self,
            "ModelExecutionRole",
            role_name=props.role_name,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Runs the {props.endpoint_name} endpoint's model container",
        )
        # Read the model artifact the package points to (written by the training pipeline).
        props.artifacts_bucket.grant_read(role)
        # Data capture writes request/response samples to the data bucket, encrypted with the key.
        props.data_bucket.grant_put(role, f"{DATA_CAPTURE_PREFIX}/{props.endpoint_name}/*")
        props.key.grant_encrypt_decrypt(role)
        for statement in image_pull_statements(self, props.image_repositories):
            role.add_to_policy(statement)
        role.add_to_policy(iam.PolicyStatement(
            sid="WriteEndpointLogs",
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[stack.format_arn(
                service="logs", resource="log-group", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                resource_name=f"/aws/sagemaker/Endpoints/{props.endpoint_name}:*",
            )],
        ))
        role.add_to_policy(iam.PolicyStatement(
            sid="PublishEndpointMetrics", actions=["cloudwatch:PutMetricData"], resources=["*"],
            conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
        ))
        findings = [
            "Action::s3:GetBucket*", "Action::s3:GetObject*", "Action::s3:List*",
            "Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*", "Action::s3:Abort*",
            # The buckets are imported from the foundation stack: match their export by logical id.
            RegexAppliesTo(regex=f"/^Resource::.*{_logical_id(props.artifacts_bucket)}.*\\/\\*$/"),
            RegexAppliesTo(regex=f"/^Resource::.*{_logical_id(props.data_bucket)}.*\\/{DATA_CAPTURE_PREFIX}\\/{props.endpoint_name}\\/\\*$/"),
            "Resource::*",
            f"Resource::arn:<AWS::Partition>:logs:{stack.region}:{stack.account}:log-group:/aws/sagemaker/Endpoints/{props.endpoint_name}:*",
        ]
        suppress(
            role,
            "AwsSolutions-IAM5",
            "CDK grant helpers for the artifacts bucket (read), the data-capture prefix of the data bucket "
            "(write) and the environment key; object keys and log streams are named by "
            "SageMaker at run time; ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no "
            "resource-level permissions (metrics limited to /aws/sagemaker/* by a condition).",
            applies_to=findings,
            apply_to_children=True,
        )
        return role

    # --- Endpoint config -------------------------------------------------------------------------
    def _endpoint_config(self) -> sagemaker.CfnEndpointConfig:
        props, serving = self._props, self._props.serving
        if serving.serverless is not None:
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT_NAME,
                model_name=self.model.attr_model_name,
                initial_variant_weight=1.0,
                serverless_config=sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                    max_concurrency=serving.serverless.max_concurrency,
                    memory_size_in_mb=serving.serverless.memory_size_mb,
                ),
            )
            data_capture = None  # serverless endpoints do not support data capture
        else:
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT_NAME,
                model_name=self.model.attr_model_name,
                initial_variant_weight=1.0,
                instance_type=serving.instance_type,
                initial_instance_count=serving.initial_instance_count,
            )
            data_capture = sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
                enable_capture=True,
                initial_sampling_percentage=serving.data_capture_sampling_percent,
                destination_s3_uri=props.data_bucket.s3_url_for_object(f"{DATA_CAPTURE_PREFIX}/{props.endpoint_name}"),
                kms_key_id=props.key.key_arn,
                capture_options=[
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output"),
                ],
                capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                    json_content_types=["application/json", "application/jsonlines"],
                ),
            )
        # No endpoint config name either: each new model gets a new config, created beside the
        # serving one, which is what a blue/green update needs.
        config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[variant],
            data_capture_config=data_capture,
            # Encrypts the ML storage volume of real-time instances (not allowed for serverless).
            kms_key_id=None if serving.serverless is not None else props.key.key_arn,
        )
        if serving.serverless is not None:
            suppress(config, "AwsSolutions-SM2",
                     "Serverless endpoint configs accept no KmsKeyId: there is no instance volume to encrypt.")
        return config

    # --- Alarms that roll a deployment back -------------------------------------------------------
    def _rollback_alarms(self) -> tuple[cloudwatch.CfnAlarm, ...]:
        props, serving = self._props, self._props.serving
        dimensions = [
            cloudwatch.CfnAlarm.DimensionProperty(name="EndpointName", value=props.endpoint_name),
            cloudwatch.CfnAlarm.DimensionProperty(name="VariantName", value=VARIANT_NAME),
        ]
        period = int(ALARM_PERIOD.to_seconds())
        common = dict(
            evaluation_periods=ALARM_EVALUATION_PERIODS,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",  # an idle endpoint is healthy
        )
        single_metric = dict(namespace=SAGEMAKER_METRICS_NAMESPACE, dimensions=dimensions, period=period, **common)
        errors = cloudwatch.CfnAlarm(
            self,
            "Invocation5xxErrorsAlarm",
            alarm_name=f"{props.endpoint_name}-invocation-5xx-errors",
            alarm_description=f"{props.endpoint_name}: model returned 5XX errors; rolls back a deployment in progress",
            metric_name="Invocation5XXErrors",
            statistic="Sum",
            threshold=serving.error_5xx_alarm_threshold,
            **single_metric,
        )
        latency = cloudwatch.CfnAlarm(
            self,
            "ModelLatencyAlarm",
            alarm_name=f"{props.endpoint_name}-model-latency",
            alarm_description=(
                f"{props.endpoint_name}: average model latency above {serving.latency_alarm_threshold_ms} ms; "
                "rolls back a deployment in progress"
            ),
            metric_name="ModelLatency",
            statistic="Average",
            threshold=serving.latency_alarm_threshold_ms * MICROSECONDS_PER_MILLISECOND,
            **single_metric,
        )

        def summed(query_id: str, metric_name: str) -> cloudwatch.CfnAlarm.MetricDataQueryProperty:
            return cloudwatch.CfnAlarm.MetricDataQueryProperty(
                id=query_id,
                metric_stat=cloudwatch.CfnAlarm.MetricStatProperty(
                    metric=cloudwatch.CfnAlarm.MetricProperty(
                        namespace=SAGEMAKER_METRICS_NAMESPACE, metric_name=metric_name, dimensions=dimensions,
                    ),
                    period=period,
                    stat="Sum",
                ),
                return_data=False,
            )

        share_4xx = cloudwatch.CfnAlarm(
            self,
            "Invocation4xxShareAlarm",
            alarm_name=f"{props.endpoint_name}-invocation-4xx-share",
            alarm_description=(
                f"{props.endpoint_name}: at least {serving.error_4xx_share_alarm_threshold_percent} % of invocations "
                "answered 4XX (how the HuggingFace inference toolkit answers a failing model); rolls back a "
                "deployment in progress"
            ),
            metrics=[
                summed("errors4xx", "Invocation4XXErrors"),
                summed("invocations", "Invocations"),
                cloudwatch.CfnAlarm.MetricDataQueryProperty(
                    id="share4xx", expression=ERROR_4XX_SHARE_EXPRESSION, label="4XX share of invocations (%)",
                    return_data=True,
                ),
            ],
            threshold=serving.error_4xx_share_alarm_threshold_percent,
            **common,
        )
        return errors, latency, share_4xx

    # --- Endpoint ----------------------------------------------------------------------------------
    def _endpoint(self) -> sagemaker.CfnEndpoint:
        props, serving = self._props, self._props.serving
        deployment_config = None
        if serving.serverless is None:
            # Deployment guardrails (traffic shifting, auto-rollback) exist for real-time endpoints only.
            deployment_config = sagemaker.CfnEndpoint.DeploymentConfigProperty(
                blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
                    traffic_routing_configuration=_traffic_routing(serving.traffic_shifting),
                    termination_wait_in_seconds=(
                        serving.traffic_shifting.termination_wait_seconds if serving.traffic_shifting else None
                    ),
                ),
                auto_rollback_configuration=sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
                    alarms=[
                        sagemaker.CfnEndpoint.AlarmProperty(alarm_name=alarm.ref)
                        for alarm in self.rollback_alarms
                    ],
                ),
            )
        endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=props.endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            deployment_config=deployment_config,
            # Keep what auto scaling (or an operator) set on the variant - instance count and
            # weight - across model updates; data capture settings follow cdk.json.
            retain_all_variant_properties=serving.serverless is None,
            exclude_retained_variant_properties=(
                [sagemaker.CfnEndpoint.VariantPropertyProperty(variant_property_type="DataCaptureConfig")]
                if serving.serverless is None else None
            ),
        )
        return endpoint

    # --- Auto scaling ------------------------------------------------------------------------------
    def _auto_scaling(self) -> list[cdk.CfnResource]:
        props, scaling = self._props, self._props.serving.auto_scaling
        assert scaling is not None
        target = autoscaling.CfnScalableTarget(
            self,
            "ScalableTarget",
            service_namespace="sagemaker",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            resource_id=f"endpoint/{props.endpoint_name}/variant/{VARIANT_NAME}",
            min_capacity=scaling.min_capacity,
            max_capacity=scaling.max_capacity,
            # No RoleARN: Application Auto Scaling uses its service-linked role for SageMaker.
        )
        target.node.add_dependency(self.endpoint)  # the resource id names the endpoint, not a reference
        policy = autoscaling.CfnScalingPolicy(
            self,
            "InvocationsPerInstancePolicy",
            policy_name=f"{props.endpoint_name}-invocations-per-instance",
            policy_type="TargetTrackingScaling",
            scaling_target_id=target.ref,
            target_tracking_scaling_policy_configuration=autoscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=float(scaling.target_invocations_per_instance),
                predefined_metric_specification=autoscaling.CfnScalingPolicy.PredefinedMetricSpecificationProperty(
                    predefined_metric_type="SageMakerVariantInvocationsPerInstance",
                ),
                scale_in_cooldown=300,
                scale_out_cooldown=60,
            ),
        )
        return [target, policy]


def _traffic_routing(shifting: TrafficShiftingConfig | None) -> sagemaker.CfnEndpoint.TrafficRoutingConfigProperty:
    if shifting is None or shifting.type == "ALL_AT_ONCE":
        return sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
            type="ALL_AT_ONCE",
            wait_interval_in_seconds=shifting.wait_interval_seconds if shifting else None,
        )
    step = sagemaker.CfnEndpoint.CapacitySizeProperty(type="CAPACITY_PERCENT", value=shifting.step_percent)
    return sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
        type=shifting.type,
        wait_interval_in_seconds=shifting.wait_interval_seconds,
        canary_size=step if shifting.type == "CANARY" else None,
        linear_step_size=step if shifting.type == "LINEAR" else None,
    )


def _logical_id(bucket: s3.IBucket) -> str:
    return cdk.Stack.of(bucket).get_logical_id(bucket.node.default_child)
