"""images.py's package pins: they agree with the image URIs' versions, pin each distribution
once and exactly, and the CLI that the Makefile runs needs nothing but the standard library."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_definition import images

IMAGES_PY = Path(images.__file__)
EXACT_PIN = re.compile(r"^[a-z0-9][a-z0-9-]*==\d+(\.\d+)+$")


@pytest.mark.parametrize(
    ("packages", "torch", "transformers"),
    [
        (images.TRAINING_IMAGE_PACKAGES, images.TRAINING_PYTORCH_VERSION, images.TRAINING_TRANSFORMERS_VERSION),
        (images.INFERENCE_IMAGE_PACKAGES, images.INFERENCE_PYTORCH_VERSION, images.INFERENCE_TRANSFORMERS_VERSION),
    ],
    ids=["training", "inference"],
)
def test_the_pins_match_the_image_uri_versions(packages, torch, transformers):
    lines = packages.requirements()
    assert f"torch=={torch}" in lines and f"transformers=={transformers}" in lines
    py_version = images.TRAINING_PY_VERSION if packages.image == "training" else images.INFERENCE_PY_VERSION
    assert py_version == "py" + "".join(packages.python_version.split(".")[:2])


@pytest.mark.parametrize("packages", images.IMAGE_PACKAGES.values(), ids=images.IMAGE_PACKAGES.keys())
def test_every_distribution_is_pinned_once_and_exactly(packages):
    lines = packages.requirements()
    assert all(EXACT_PIN.match(line) for line in lines), lines
    names = [line.split("==")[0] for line in lines]
    assert len(names) == len(set(names))


def test_the_inference_image_pins_its_serving_toolkit():
    names = {name for name, _ in images.INFERENCE_IMAGE_PACKAGES.packages}
    assert {"sagemaker-huggingface-inference-toolkit", "multi-model-server"} <= names
    assert "sagemaker-training" in {name for name, _ in images.TRAINING_IMAGE_PACKAGES.packages}


@pytest.mark.parametrize("image", sorted(images.IMAGE_PACKAGES))
def test_the_cli_prints_the_requirements_without_site_packages(image):
    # -S: no site-packages, so the SDK (or anything else installed) cannot be imported.
    completed = subprocess.run(
        [sys.executable, "-S", str(IMAGES_PY), "requirements", image], capture_output=True, text=True, timeout=30
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == images.IMAGE_PACKAGES[image].requirements()


def test_the_cli_refuses_an_unknown_image():
    completed = subprocess.run(
        [sys.executable, "-S", str(IMAGES_PY), "requirements", "notebook"], capture_output=True, text=True, timeout=30
    )
    assert completed.returncode == 2 and "invalid choice" in completed.stderr
