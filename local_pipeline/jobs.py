"""Processing and training jobs from their resolved CreateProcessingJob / CreateTrainingJob
requests: stage the inputs from S3 under /opt/ml, run the image's command in its parity env,
upload the outputs, and answer with the fields of the Describe* response that later steps read.
"""

from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, TextIO

from local_pipeline import baseline_analyzer, containers, s3_io

# Where SageMaker leaves the reason for a failed job (the scripts write it, or the toolkit).
PROCESSING_FAILURE_FILE = "output/message"
TRAINING_FAILURE_FILE = "output/failure"


class JobFailed(Exception):
    """The job ran and failed; the message is the job's FailureReason."""


@dataclass(frozen=True)
class JobContext:
    """What every job of one execution shares."""

    # Clients with the job role's credentials: SageMaker Pipelines creates the jobs, and they
    # read and write S3, as the pipeline's role.
    s3: Any
    sagemaker: Any
    work_dir: Path
    region: str
    account_id: str
    # What the host adds to every job's environment: the AWS endpoint and credentials its
    # code uses (the role's, on AWS) and the offline switches.
    job_environment: Mapping[str, str]
    echo: TextIO | None = None

    def job_arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{kind}/{name.lower()}"


def _hosts(count: Any) -> list[str]:
    return [f"algo-{index}" for index in range(1, int(count) + 1)]


def _local_path(opt_ml: Path, container_path: str) -> Path:
    if not container_path.startswith(containers.OPT_ML + "/"):
        raise JobFailed(f"ClientError: local path {container_path} is not under {containers.OPT_ML}")
    return opt_ml / container_path[len(containers.OPT_ML) + 1:]


def _failure_reason(opt_ml: Path, failure_file: str, run: containers.ContainerRun) -> str:
    message_file = opt_ml / failure_file
    if message_file.is_file() and message_file.read_text().strip():
        detail = message_file.read_text().strip()
    else:
        detail = containers.log_tail(run.log_path, 8)
    return f"AlgorithmError: exit code {run.exit_code}: {detail[-2000:]}"


def _write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


# ------------------------------------------------------------------------------ processing


def _stage_processing_inputs(context: JobContext, request: Mapping[str, Any], opt_ml: Path, host_index: int, host_count: int) -> None:
    for processing_input in request.get("ProcessingInputs", []):
        s3_input = processing_input.get("S3Input")
        if s3_input is None:
            raise JobFailed(f"ClientError: input {processing_input.get('InputName')} is not an S3Input (not emulated)")
        keys = s3_io.list_keys(context.s3, s3_input["S3Uri"])
        if s3_input.get("S3DataDistributionType") == "ShardedByS3Key":
            keys = keys[host_index::host_count]
            if not keys:
                continue  # a host with no share of a sharded input gets an empty folder
        s3_io.download_prefix(context.s3, s3_input["S3Uri"], _local_path(opt_ml, s3_input["LocalPath"]), keys)


def run_processing_job(context: JobContext, name: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """One processing job; its hosts run one after the other, each with its own /opt/ml."""
    app = request["AppSpecification"]
    # The service's request validation and the role's sagemaker:CreateProcessingJob permission.
    context.sagemaker.create_processing_job(ProcessingJobName=name, **request)
    image = containers.parity_image(app["ImageUri"])
    hosts = _hosts(request["ProcessingResources"]["ClusterConfig"]["InstanceCount"])
    command = [*app.get("ContainerEntrypoint", []), *app.get("ContainerArguments", [])]
    outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
    kms_key = request.get("ProcessingOutputConfig", {}).get("KmsKeyId")
    for index, host in enumerate(hosts):
        opt_ml = context.work_dir / name / host
        _write_json(opt_ml / "config/resourceconfig.json", {"current_host": host, "hosts": hosts})
        _write_json(opt_ml / "config/processingjobconfig.json", {**request, "ProcessingJobName": name})
        _stage_processing_inputs(context, request, opt_ml, index, len(hosts))
        for output in outputs:
            _local_path(opt_ml, output["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        run = containers.run_container(
            image, command, opt_ml=opt_ml, hosts=hosts,
            environment={**request.get("Environment", {}), **context.job_environment},
            log_path=context.work_dir / name / f"{host}.log", echo=context.echo,
        )
        if run.exit_code != 0:
            raise JobFailed(_failure_reason(opt_ml, PROCESSING_FAILURE_FILE, run))
        for output in outputs:
            s3_output = output["S3Output"]
            s3_io.upload_tree(context.s3, _local_path(opt_ml, s3_output["LocalPath"]), s3_output["S3Uri"], kms_key_id=kms_key)
    return {
        **request,
        "ProcessingJobName": name,
        "ProcessingJobArn": context.job_arn("processing-job", name),
        "ProcessingJobStatus": "Completed",
    }


def run_baselining_job(context: JobContext, name: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """A QualityCheck step's processing job: created as the service creates it (request
    validation, the role's permission), its inputs staged and outputs uploaded as for any
    processing job, with the analyzer image's work done by baseline_analyzer.py, the stand-in."""
    context.sagemaker.create_processing_job(ProcessingJobName=name, **request)
    environment = request.get("Environment", {})
    opt_ml = context.work_dir / name / "algo-1"
    _stage_processing_inputs(context, request, opt_ml, 0, 1)
    (output,) = request["ProcessingOutputConfig"]["Outputs"]
    try:
        baseline_analyzer.run_baselining_job(
            environment, _local_path(opt_ml, environment["dataset_source"]),
            _local_path(opt_ml, environment["output_path"]))
    except (baseline_analyzer.AnalyzerError, KeyError, ValueError) as error:
        raise JobFailed(f"AlgorithmError: {error}") from None
    s3_io.upload_tree(context.s3, _local_path(opt_ml, output["S3Output"]["LocalPath"]), output["S3Output"]["S3Uri"],
                      kms_key_id=request["ProcessingOutputConfig"].get("KmsKeyId"))
    return {"ProcessingJobName": name, "ProcessingJobArn": context.job_arn("processing-job", name),
            "ProcessingJobStatus": "Completed", "OutputS3Uri": output["S3Output"]["S3Uri"]}


# -------------------------------------------------------------------------------- training


def _training_config(request: Mapping[str, Any], hosts: list[str]) -> dict[str, Any]:
    channels = {
        channel["ChannelName"]: {
            "TrainingInputMode": channel.get("InputMode", request["AlgorithmSpecification"].get("TrainingInputMode", "File")),
            "S3DistributionType": channel["DataSource"]["S3DataSource"].get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        for channel in request.get("InputDataConfig", [])
    }
    resource = {
        "current_host": hosts[0],
        "hosts": hosts,
        "current_group_name": "homogeneousCluster",
        "current_instance_type": request["ResourceConfig"]["InstanceType"],
        "instance_groups": [{
            "instance_group_name": "homogeneousCluster",
            "instance_type": request["ResourceConfig"]["InstanceType"],
            "hosts": hosts,
        }],
        "network_interface_name": "eth0",
    }
    return {"hyperparameters.json": request.get("HyperParameters", {}), "inputdataconfig.json": channels,
            "resourceconfig.json": resource}


def final_metrics(metric_definitions: list[Mapping[str, str]], log_text: str) -> list[dict[str, Any]]:
    """FinalMetricDataList as SageMaker fills it: the last match of each metric's regex."""
    metrics = []
    for definition in metric_definitions:
        values = re.findall(definition["Regex"], log_text)
        if values:
            metrics.append({"MetricName": definition["Name"], "Value": float(values[-1])})
    return metrics


def _pack(source: Path, archive: Path) -> Path:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def run_training_job(context: JobContext, name: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """A training job on one host: SageMaker's `train` command (the sagemaker-training toolkit
    in the image) with the job's config files, channels and checkpoints under /opt/ml."""
    algorithm = request["AlgorithmSpecification"]
    context.sagemaker.create_training_job(TrainingJobName=name, **request)
    image = containers.parity_image(algorithm["TrainingImage"])
    count = int(request["ResourceConfig"]["InstanceCount"])
    if count != 1:
        # Several hosts train together through torch.distributed: not emulated here.
        raise JobFailed(f"ClientError: InstanceCount {count}: only one training host runs locally (set TrainingInstanceCount=1)")
    hosts = _hosts(1)
    opt_ml = context.work_dir / name / hosts[0]
    for file_name, document in _training_config(request, hosts).items():
        _write_json(opt_ml / "input/config" / file_name, document)
    for channel in request.get("InputDataConfig", []):
        s3_io.download_prefix(context.s3, channel["DataSource"]["S3DataSource"]["S3Uri"], opt_ml / "input/data" / channel["ChannelName"])
    checkpoint_uri = request.get("CheckpointConfig", {}).get("S3Uri")
    checkpoints = opt_ml / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    if checkpoint_uri and s3_io.list_keys(context.s3, checkpoint_uri):
        s3_io.download_prefix(context.s3, checkpoint_uri, checkpoints)
    for folder in ("model", "output/data"):
        (opt_ml / folder).mkdir(parents=True, exist_ok=True)
    run = containers.run_container(
        image, ["train"], opt_ml=opt_ml, hosts=hosts,
        environment={**request.get("Environment", {}), **context.job_environment,
                     "TRAINING_JOB_NAME": name, "TRAINING_JOB_ARN": context.job_arn("training-job", name)},
        log_path=context.work_dir / name / f"{hosts[0]}.log", echo=context.echo,
    )
    if checkpoint_uri:
        s3_io.upload_tree(context.s3, checkpoints, checkpoint_uri)
    if run.exit_code != 0:
        raise JobFailed(_failure_reason(opt_ml, TRAINING_FAILURE_FILE, run))
    output = request["OutputDataConfig"]
    job_prefix = f"{output['S3OutputPath'].rstrip('/')}/{name}/output"
    kms_key = output.get("KmsKeyId")
    s3_io.upload_tree(context.s3, _pack(opt_ml / "model", context.work_dir / name / "model.tar.gz"), job_prefix, kms_key_id=kms_key)
    s3_io.upload_tree(context.s3, _pack(opt_ml / "output/data", context.work_dir / name / "output.tar.gz"), job_prefix, kms_key_id=kms_key)
    return {
        **request,
        "TrainingJobName": name,
        "TrainingJobArn": context.job_arn("training-job", name),
        "TrainingJobStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": f"{job_prefix}/model.tar.gz"},
        "FinalMetricDataList": final_metrics(algorithm.get("MetricDefinitions", []), run.log_path.read_text(errors="replace")),
    }
