"""Serving stack of one environment: an endpoint that follows model package approvals.

The stack reads which model package serves from the environment's approved-package SSM parameter
(created by the foundation stack, written by the approval deployer) through its SSM-typed
`ApprovedModelPackageArn` parameter: `none` deploys no endpoint; an ARN deploys the model,
endpoint config, endpoint and auto scaling for it. CloudFormation resolves the parameter again on
every create and update, so `cdk deploy` - with or without previous parameter values - deploys
what the parameter says and cannot take a serving endpoint down.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from pipeline_definition import image_registries, images
from stacks.components.approval_deployer import ApprovalDeployer, ApprovalDeployerProps
from stacks.components.approval_update_role import ApprovalUpdateRole, ApprovalUpdateRoleProps
from stacks.components.approved_model_endpoint import ApprovedModelEndpoint, ApprovedModelEndpointProps
from pipeline_definition.locations import BASELINES_PREFIX
from stacks.components.retraining_trigger import RetrainingTrigger, RetrainingTriggerProps
from stacks.components.model_monitoring import SERVING_BASELINES_PREFIX, ModelMonitoring, ModelMonitoringProps
from stacks.components.approved_model_package_parameter import NO_APPROVED_PACKAGE, parameter_arn
from stacks.components.cdk_bootstrap import bootstrap_version_parameter_name
from stacks.components.promotion_access import PromotedModelAccess, PromotedModelAccessProps, PromotionSource
from stacks.config import EnvironmentConfig
from stacks.shared_resources import SharedResources

APPROVED_MODEL_PACKAGE_PARAMETER = "ApprovedModelPackageArn"
METRIC_NAMESPACE = "ReviewClassifier/Serving"


class ServingStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        shared: SharedResources,
        promotion_source: PromotionSource | None = None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.shared = shared

        self.approved_model_package_arn = cdk.CfnParameter(
            self,
            APPROVED_MODEL_PACKAGE_PARAMETER,
            type="AWS::SSM::Parameter::Value<String>",
            default=config.approved_model_package_parameter_name,
            description=(
                f"SSM parameter holding the ARN of the Approved model package the endpoint serves "
                f"('{NO_APPROVED_PACKAGE}': no endpoint). The approval deployer writes it; every deploy "
                "resolves it again, so keep the default."
            ),
        )
        # Logical ids are frozen: the approval deployer and operators address the parameter by name.
        self.approved_model_package_arn.override_logical_id(APPROVED_MODEL_PACKAGE_PARAMETER)
        self.has_approved_model = cdk.CfnCondition(
            self,
            "HasApprovedModel",
            expression=cdk.Fn.condition_not(
                cdk.Fn.condition_equals(self.approved_model_package_arn.value_as_string, NO_APPROVED_PACKAGE)
            ),
        )

        self.served = ApprovedModelEndpoint(
            self,
            "ApprovedModelEndpoint",
            props=ApprovedModelEndpointProps(
                endpoint_name=config.endpoint_name,
                model_package_group_name=config.model_package_group_name,
                approved_model_package_arn=self.approved_model_package_arn.value_as_string,
                has_approved_model=self.has_approved_model,
                serving=config.serving,
                key=shared.key,
                data_bucket=shared.data_bucket,
                artifacts_bucket=shared.artifacts_bucket,
                image_repositories=image_registries.inference_repositories(config.region),
                role_name=config.serving_model_role_name if promotion_source else None,
            ),
        )
        self.monitoring = self._monitoring() if config.serving.monitoring is not None else None
        approved_package_parameter_arn = parameter_arn(self, config.approved_model_package_parameter_name)
        bootstrap_version_parameter_arn = (
            parameter_arn(self, bootstrap_version_parameter_name(self))
            if isinstance(self.synthesizer, cdk.DefaultStackSynthesizer) else None
        )
        self.update_role = ApprovalUpdateRole(
            self,
            "ApprovalUpdateRole",
            props=ApprovalUpdateRoleProps(
                endpoint_name=config.endpoint_name,
                model_package_group_name=config.model_package_group_name,
                model_execution_role=self.served.role,
                rollback_alarm_names=self._rollback_alarm_names(),
                resolved_parameter_arns=tuple(
                    arn for arn in (approved_package_parameter_arn, bootstrap_version_parameter_arn) if arn
                ),
                endpoint_key=None if config.serving.is_serverless else shared.key,
                instance_type=config.serving.instance_type,
                auto_scaling=config.serving.auto_scaling is not None,
                monitoring_role=self.monitoring.role if self.monitoring is not None else None,
            ),
        )
        self.deployer = ApprovalDeployer(
            self,
            "ApprovalDeployer",
            props=ApprovalDeployerProps(
                environment_name=config.name,
                model_package_group_name=config.model_package_group_name,
                parameter_name=APPROVED_MODEL_PACKAGE_PARAMETER,
                approved_package_parameter_name=config.approved_model_package_parameter_name,
                approved_package_parameter_arn=approved_package_parameter_arn,
                bootstrap_version_parameter_arn=bootstrap_version_parameter_arn,
                update_role=self.update_role.role,
                endpoint_name=config.endpoint_name,
                metric_namespace=METRIC_NAMESPACE,
                log_retention_days=config.log_retention_days,
                retain_on_delete=config.retain_on_delete,
                key=shared.key,
                role_name=config.approval_deployer_role_name if promotion_source else None,
                promotion_source_prefix=promotion_source.package_arn_prefix if promotion_source else None,
                **self._baseline_publishing(promotes=promotion_source is not None),
            ),
        )
        if promotion_source is not None:
            self.promoted_model_access = PromotedModelAccess(
                self,
                "PromotedModelAccess",
                props=PromotedModelAccessProps(
                    source=promotion_source,
                    model_package_group_name=config.model_package_group_name,
                    promotion_role_name=config.model_promotion_role_name,
                    serving_model_role=self.served.role,
                    deployer_role=self.deployer.function.role,
                    deployer_reads_baselines=self.monitoring is not None,
                ),
            )
            cdk.CfnOutput(
                self, "ModelPromotionRoleArn", value=self.promoted_model_access.promotion_role.role_arn,
                description=f"Assume it to run tools.promote_model --from {promotion_source.environment_name} "
                            f"--to {config.name}",
            )

        retraining = config.retraining
        if retraining.on_drift or retraining.schedule:
            RetrainingTrigger(self, "RetrainingTrigger", props=RetrainingTriggerProps(
                pipeline_name=config.pipeline_name,
                drift_alarm=self.monitoring.data_drift_alarm if retraining.on_drift else None,
                schedule=retraining.schedule,
                log_retention_days=config.log_retention_days,
                retain_on_delete=config.retain_on_delete,
                key=shared.key,
            ))

        endpoint_output = cdk.CfnOutput(
            self, "EndpointName", value=config.endpoint_name,
            description="The endpoint serving the approved model package",
        )
        endpoint_output.condition = self.has_approved_model
        cdk.CfnOutput(
            self, "ServingModelPackageArn", value=self.approved_model_package_arn.value_as_string,
            description=f"The model package the stack deploys ({NO_APPROVED_PACKAGE}: no endpoint)",
        )
        cdk.CfnOutput(
            self, "ApprovedModelPackageParameterName", value=config.approved_model_package_parameter_name,
            description="SSM parameter the approval deployer writes and every deploy reads",
        )
        cdk.CfnOutput(self, "ApprovalEventsDeadLetterQueueUrl", value=self.deployer.dead_letter_queue.queue_url)
        cdk.CfnOutput(self, "ApprovalDeployerLogGroupName", value=self.deployer.log_group.log_group_name)

    def _baseline_publishing(self, *, promotes: bool) -> dict:
        """What the deployer needs to point the monitoring schedules at a promoted package's baselines.
        An environment that promotes has no pipeline: its packages' baselines are in the source's
        bucket (PromotedModelAccess grants that read), none in its own."""
        if self.monitoring is None:
            return {}
        return {
            "artifacts_bucket": self.shared.artifacts_bucket,
            "pipeline_baselines_prefix": None if promotes else BASELINES_PREFIX,
            "serving_baselines_prefix": f"{SERVING_BASELINES_PREFIX}/{self.config.endpoint_name}",
        }

    def _monitoring(self) -> ModelMonitoring:
        config = self.config
        return ModelMonitoring(
            self,
            "ModelMonitoring",
            props=ModelMonitoringProps(
                endpoint_name=config.endpoint_name,
                monitoring=config.serving.monitoring,
                max_seq_length=config.pipeline.max_seq_length,
                min_accuracy=config.pipeline.min_accuracy,
                condition=self.has_approved_model,
                endpoint=self.served.endpoint,
                key=self.shared.key,
                data_bucket=self.shared.data_bucket,
                artifacts_bucket=self.shared.artifacts_bucket,
                image_uri=images.model_monitor_image_uri(config.region),
                image_repositories=image_registries.model_monitor_repositories(config.region),
            ),
        )

    def _rollback_alarm_names(self) -> tuple[str, ...]:
        """Every alarm the served endpoint and its monitoring declare: an approval update creates,
        changes or deletes them."""
        names = []
        watched = [*self.served.node.find_all(), *(self.monitoring.node.find_all() if self.monitoring else [])]
        for child in watched:
            if isinstance(child, cloudwatch.CfnAlarm):
                name = child.alarm_name  # read once: a jsii round trip
                if not isinstance(name, str) or cdk.Token.is_unresolved(name):
                    raise ValueError(f"{child.node.path}: the approval update role needs a fixed alarm name")
                names.append(name)
        return tuple(names)
