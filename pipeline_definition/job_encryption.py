"""Encryption every job of the pipeline shares: the environment's KMS key on the ML storage volume
wherever SageMaker accepts one, and encrypted traffic between the instances of a job."""

from __future__ import annotations

from sagemaker.network import NetworkConfig
from sagemaker.utils import instance_supports_kms

# Between the instances of a multi-instance job (prod trains on two). A no-op for one instance;
# instance counts are run-time parameters, so it is on for every job.
ENCRYPT_INTER_CONTAINER_TRAFFIC = True


def volume_kms_key(kms_key_arn: str, default_instance_type: str) -> str | None:
    """The key for a job's ML storage volume, or None where the instance type has NVMe instance
    storage (g4dn, g5, p4d, c5d...): SageMaker mounts that instead of an EBS volume, encrypts it in
    hardware, and refuses a VolumeKmsKeyId for it. The instance type is a run-time parameter, so the
    decision follows the environment's default; the SDK's own rule (`instance_supports_kms`) decides."""
    return kms_key_arn if instance_supports_kms(default_instance_type) else None


def processing_network_config() -> NetworkConfig:
    return NetworkConfig(encrypt_inter_container_traffic=ENCRYPT_INTER_CONTAINER_TRAFFIC)
