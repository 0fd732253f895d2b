"""The ECR repositories the pipeline's images come from in a region, read offline from the SageMaker
SDK's bundled image config through the same calls that put the images into the definition, so the
IAM roles that pull them cannot drift from what the pipeline runs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import sagemaker
from sagemaker.debugger import get_rule_container_image_uri

from pipeline_definition import images
from pipeline_definition.steps import train

# Serving instances the registered model may run on: the SDK picks the CPU or GPU build by type.
CPU_REFERENCE_INSTANCE_TYPE = "ml.m5.xlarge"
INFERENCE_REFERENCE_INSTANCE_TYPES = (CPU_REFERENCE_INSTANCE_TYPE, images.GPU_REFERENCE_INSTANCE_TYPE)
# What Rule.sagemaker()/ProfilerRule.sagemaker() leave as the image; the estimator replaces it
# with get_rule_container_image_uri(rule name, session region) when the training job is built.
SDK_DEFAULT_RULE_IMAGE = "DEFAULT_RULE_EVALUATOR_IMAGE"

# <account>.dkr.ecr.<region>.<amazonaws.com | amazonaws.com.cn | ...>/<repository>[:tag | @digest]
_IMAGE_URI = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.[a-z0-9.-]+/(?P<name>[a-z0-9._/-]+)(?::[\w.-]+|@[\w:]+)?"
)


class UnsupportedRegionError(ValueError):
    """The SDK's image config has no image for the region (or an SDK upgrade is needed)."""


@dataclass(frozen=True, order=True)
class ImageRepository:
    """An ECR repository, as an image URI names it."""

    account: str
    region: str
    name: str

    @classmethod
    def of_image(cls, image_uri: str) -> "ImageRepository":
        match = _IMAGE_URI.fullmatch(image_uri)
        if match is None:
            raise ValueError(f"not an ECR image URI: {image_uri!r}")
        return cls(**match.groupdict())


def training_repositories(region: str) -> tuple[ImageRepository, ...]:
    """The training image, which the processing steps run too."""
    return _repositories(
        region,
        ("training image", lambda: images.training_image_uri(region, images.GPU_REFERENCE_INSTANCE_TYPE)),
        ("processing image", lambda: images.processing_image_uri(region)),
    )


def inference_repositories(region: str) -> tuple[ImageRepository, ...]:
    """The inference image, CPU and GPU builds."""
    return _repositories(
        region,
        *((f"inference image for {instance_type}", lambda t=instance_type: images.inference_image_uri(region, t))
          for instance_type in INFERENCE_REFERENCE_INSTANCE_TYPES),
    )


def rule_evaluator_repositories(region: str) -> tuple[ImageRepository, ...]:
    """The Debugger/Profiler rule evaluator images of the train step's rules."""
    return _repositories(
        region,
        *((f"rule evaluator image of {rule.name}", lambda r=rule: _rule_image_uri(r, region)) for rule in train.rules()),
    )


def model_monitor_repositories(region: str) -> tuple[ImageRepository, ...]:
    """SageMaker's Model Monitor analyzer: the baselining steps and the monitoring schedules."""
    return _repositories(region, ("model monitor analyzer image", lambda: images.model_monitor_image_uri(region)))


def pipeline_repositories(region: str) -> tuple[ImageRepository, ...]:
    """Every image the pipeline execution role pulls: its jobs (the baselining jobs' analyzer
    included), their rule evaluators, and the inference image of the model its CreateModel step
    creates with that role."""
    return tuple(sorted({
        *training_repositories(region), *rule_evaluator_repositories(region), *inference_repositories(region),
        *model_monitor_repositories(region),
    }))


def registry_accounts(repositories: tuple[ImageRepository, ...]) -> tuple[str, ...]:
    return tuple(sorted({repository.account for repository in repositories}))


def _rule_image_uri(rule, region: str) -> str:
    # As sagemaker.estimator.EstimatorBase._set_default_rule_config resolves it.
    return get_rule_container_image_uri(rule.name, region) if rule.image_uri == SDK_DEFAULT_RULE_IMAGE else rule.image_uri


def _repositories(region: str, *lookups: tuple[str, Callable[[], str]]) -> tuple[ImageRepository, ...]:
    found = set()
    for what, image_uri in lookups:
        try:
            uri = image_uri()
        except ValueError as error:  # image_uris.retrieve's "Unsupported region: ..."
            raise UnsupportedRegionError(
                f"region {region!r}: the SageMaker SDK {sagemaker.__version__} image config has no {what} ({error})"
            ) from error
        found.add(ImageRepository.of_image(uri))
    return tuple(sorted(found))
