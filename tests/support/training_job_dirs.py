"""A training job's /opt/ml in a test folder, with the job configuration files SageMaker
writes there, so container_code's tests can run train.py through the sagemaker-training
toolkit directly (the pipeline run itself goes through local_pipeline/jobs.py)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

LOCAL_HOST = "algo-1"  # SageMaker's name for the first (here: only) instance of a job


def _replace_tree(source: Path, destination: Path) -> None:
    """Copy like SageMaker's File input mode: the job gets its own copy of the channel."""
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(source, destination)


def _write_json(path: Path, document) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path


def single_host_resource_config(host: str = LOCAL_HOST) -> dict:
    return {
        "current_host": host,
        "hosts": [host],
        "current_group_name": "homogeneousCluster",
        "current_instance_type": "local",
        "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": "local", "hosts": [host]}],
        "network_interface_name": "eth0",
    }


@dataclass(frozen=True)
class TrainingJobDirs:
    """A training job's /opt/ml, rooted at base (the toolkit's SAGEMAKER_BASE_DIR)."""

    base: Path

    @property
    def input_config(self) -> Path:
        return self.base / "input" / "config"

    def channel(self, name: str) -> Path:
        return self.base / "input" / "data" / name

    @property
    def code(self) -> Path:
        return self.base / "code"

    @property
    def model(self) -> Path:
        return self.base / "model"

    @property
    def output_data(self) -> Path:
        return self.base / "output" / "data"

    @property
    def checkpoints(self) -> Path:
        return self.base / "checkpoints"

    def write_job_config(
        self,
        *,
        entry_point: str,
        source_dir: Path,
        hyperparameters: Mapping[str, object],
        channels: Mapping[str, Path],
    ) -> None:
        """hyperparameters.json, inputdataconfig.json and resourceconfig.json as SageMaker
        writes them for a one-instance job, and each channel's data under input/data/."""
        # The SDK JSON-encodes every hyperparameter value; the toolkit decodes them again.
        encoded = {name: json.dumps(value) for name, value in hyperparameters.items()}
        encoded["sagemaker_program"] = json.dumps(entry_point)
        encoded["sagemaker_submit_directory"] = json.dumps(str(Path(source_dir).resolve()))
        _write_json(self.input_config / "hyperparameters.json", encoded)
        _write_json(
            self.input_config / "inputdataconfig.json",
            {
                name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
                for name in channels
            },
        )
        _write_json(self.input_config / "resourceconfig.json", single_host_resource_config())
        for name, source in channels.items():
            _replace_tree(Path(source), self.channel(name))
        self.model.mkdir(parents=True, exist_ok=True)
        self.output_data.mkdir(parents=True, exist_ok=True)
