"""Container images of the pipeline's jobs: HuggingFace PyTorch deep-learning containers,
resolved offline from the SDK's bundled image config for the environment's region."""

from __future__ import annotations

from sagemaker import image_uris

# The newest transformers/PyTorch pairs this SDK's image config knows (sagemaker 2.257.7).
TRAINING_TRANSFORMERS_VERSION = "4.56.2"
TRAINING_PYTORCH_VERSION = "2.8.0"
TRAINING_PY_VERSION = "py312"
INFERENCE_TRANSFORMERS_VERSION = "4.51.3"
INFERENCE_PYTORCH_VERSION = "2.6.0"
INFERENCE_PY_VERSION = "py312"

# The training DLC is published for GPU only; it also runs on CPU instances (PyTorch falls
# back to the CPU), which is how the processing steps use it for its pandas, scikit-learn
# and transformers.
GPU_REFERENCE_INSTANCE_TYPE = "ml.g5.xlarge"


def training_image_uri(region: str, instance_type: str) -> str:
    return image_uris.retrieve(
        "huggingface",
        region,
        version=TRAINING_TRANSFORMERS_VERSION,
        base_framework_version=f"pytorch{TRAINING_PYTORCH_VERSION}",
        py_version=TRAINING_PY_VERSION,
        image_scope="training",
        instance_type=instance_type,
    )


def processing_image_uri(region: str) -> str:
    return training_image_uri(region, GPU_REFERENCE_INSTANCE_TYPE)


def inference_image_uri(region: str, instance_type: str) -> str:
    """CPU or GPU build, as the SDK picks for `instance_type`."""
    return image_uris.retrieve(
        "huggingface",
        region,
        version=INFERENCE_TRANSFORMERS_VERSION,
        base_framework_version=f"pytorch{INFERENCE_PYTORCH_VERSION}",
        py_version=INFERENCE_PY_VERSION,
        image_scope="inference",
        instance_type=instance_type,
    )
