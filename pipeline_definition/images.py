"""Container images of the pipeline's jobs: HuggingFace PyTorch deep-learning containers,
resolved offline from the SDK's bundled image config for the environment's region."""

from __future__ import annotations

from dataclasses import dataclass

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
    from sagemaker import image_uris  # here, not at the top: see main()

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
    from sagemaker import image_uris

    return image_uris.retrieve(
        "huggingface",
        region,
        version=INFERENCE_TRANSFORMERS_VERSION,
        base_framework_version=f"pytorch{INFERENCE_PYTORCH_VERSION}",
        py_version=INFERENCE_PY_VERSION,
        image_scope="inference",
        instance_type=instance_type,
    )


# --- What each image ships -----------------------------------------------------------------
# The library versions inside the images above that container_code (and its tests) import, so
# that `make setup-parity` can build one virtual env per image (.parity/<image>) and run the
# scripts in them. Evidence, and which versions are the resolver's picks where the Dockerfiles
# leave them open: docs/decisions.md, "Parity environments".


@dataclass(frozen=True)
class ImagePackages:
    """One image's Python and the pinned packages our scripts rely on in it."""

    image: str
    python_version: str
    packages: tuple[tuple[str, str], ...]  # (distribution name, exact version)

    def requirements(self) -> list[str]:
        """pip requirement lines, one exact pin each."""
        return [f"{name}=={version}" for name, version in self.packages]


TRAINING_IMAGE_PACKAGES = ImagePackages(
    image="training",  # also the processing jobs' image (processing_image_uri)
    python_version="3.12.10",
    packages=(
        ("torch", TRAINING_PYTORCH_VERSION),
        ("transformers", TRAINING_TRANSFORMERS_VERSION),
        ("tokenizers", "0.22.2"),
        ("safetensors", "0.8.0"),
        ("huggingface-hub", "0.35.3"),
        ("accelerate", "1.10.1"),  # from_pretrained takes other loading paths when it is there
        ("datasets", "4.1.0"),
        ("dill", "0.3.8"),  # the image downgrades these two for datasets
        ("multiprocess", "0.70.16"),
        ("numpy", "1.26.4"),
        ("pandas", "3.0.6"),
        ("scikit-learn", "1.9.1"),
        ("matplotlib", "3.11.2"),  # comes with seaborn; evaluate.py draws its confusion matrix
        ("sagemaker-training", "5.1.4"),
        # The SageMaker Python SDK: prepare ingests with its FeatureGroup.ingest.
        ("sagemaker", "2.254.1"),
        ("boto3", "1.40.49"),
    ),
)

INFERENCE_IMAGE_PACKAGES = ImagePackages(
    image="inference",
    python_version="3.12.8",
    packages=(
        ("torch", INFERENCE_PYTORCH_VERSION),
        ("transformers", INFERENCE_TRANSFORMERS_VERSION),
        ("tokenizers", "0.21.4"),
        ("safetensors", "0.8.0"),
        ("huggingface-hub", "0.30.0"),
        ("accelerate", "1.6.0"),
        ("numpy", "1.26.4"),
        ("sagemaker-huggingface-inference-toolkit", "2.6.0"),
        ("sagemaker-inference", "1.10.1"),
        ("multi-model-server", "1.1.11"),
        # sagemaker-inference imports pkg_resources, which setuptools 81 removed.
        ("setuptools", "80.10.2"),
        ("boto3", "1.44.8"),
    ),
)

IMAGE_PACKAGES = {packages.image: packages for packages in (TRAINING_IMAGE_PACKAGES, INFERENCE_IMAGE_PACKAGES)}


def main(argv: list[str] | None = None) -> None:
    """`python pipeline_definition/images.py requirements training|inference` prints one
    image's requirement lines.

    The Makefile runs this file with the bare Python 3.12 that builds .parity/<image>, before
    any virtual env exists: so it is a plain script that needs only the standard library (the SDK
    is imported inside the URI functions, which also keeps this module quick to import)."""
    import argparse

    parser = argparse.ArgumentParser(prog="pipeline_definition/images.py", description="What an image ships, for pip.")
    commands = parser.add_subparsers(dest="command", required=True)
    requirements = commands.add_parser("requirements", help="pip requirement lines of one image")
    requirements.add_argument("image", choices=sorted(IMAGE_PACKAGES))
    arguments = parser.parse_args(argv)
    print("\n".join(IMAGE_PACKAGES[arguments.image].requirements()))


if __name__ == "__main__":
    main()


def model_monitor_image_uri(region: str) -> str:
    """SageMaker's Model Monitor analyzer (Deequ on Spark), which the baselining jobs run."""
    from sagemaker import image_uris

    return image_uris.retrieve("model-monitor", region)
