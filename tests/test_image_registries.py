"""The roles pull images only from the ECR repositories that the SageMaker SDK's image config names
for the environment's region, and exactly those the generated pipeline definition runs
(pipeline_definition/image_registries.py): for every environment in cdk.json, and for the dev
environment moved to a region whose registry accounts differ."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass

import pytest

from pipeline_definition import image_registries
from pipeline_definition.image_registries import ImageRepository, UnsupportedRegionError
from stacks.config import CDK_JSON, ENVIRONMENTS_CONTEXT_KEY, load_environment, parse_environments

ENVIRONMENTS = tuple(json.loads(CDK_JSON.read_text())["context"][ENVIRONMENTS_CONTEXT_KEY])
COMPONENTS = ("foundation", "pipeline", "serving")
NAG_PACK_PREFIX = "AwsSolutions-"

TRAINING, INFERENCE, RULES = "huggingface-pytorch-training", "huggingface-pytorch-inference", "sagemaker-debugger-rules"
MODEL_MONITOR = "sagemaker-model-monitor-analyzer"
# (Deep Learning Containers account, Debugger/Profiler rule images account, Model Monitor analyzer
# account) in sagemaker 2.257.7's config.
SDK_ACCOUNTS = {
    "us-east-1": ("763104351884", "503895931360", "156813124566"),
    "eu-south-1": ("692866216735", "563282790590", "933208885752"),
    "af-south-1": ("626614931356", "314341159256", "875698925577"),
}
OTHER_REGION = "eu-south-1"
OTHER_REGION_DEPLOYMENT = f"dev-in-{OTHER_REGION}"
# Where the definition names an image: processing, training, rule evaluator, registered/created model.
DEFINITION_IMAGE_FIELDS = ("ImageUri", "TrainingImage", "RuleEvaluatorImage", "Image")
PIPELINE_ROLE, MODEL_ROLE = "PipelineExecutionRole", "ApprovedModelEndpointModelExecutionRole"
MONITORING_ROLE = "ModelMonitoringRole"  # the schedules' analyzer jobs, where the environment monitors
_REPOSITORY_ARN = re.compile(r"arn:<partition>:ecr:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):repository/(?P<name>.+)")


# --- The module: the SDK's image config, offline ------------------------------------------------

@pytest.mark.parametrize("region", SDK_ACCOUNTS)
def test_repositories_are_the_sdk_config_of_the_region(region):
    dlc, rules, model_monitor = SDK_ACCOUNTS[region]
    assert image_registries.training_repositories(region) == (ImageRepository(dlc, region, TRAINING),)
    assert image_registries.inference_repositories(region) == (ImageRepository(dlc, region, INFERENCE),)
    assert image_registries.rule_evaluator_repositories(region) == (ImageRepository(rules, region, RULES),)
    assert image_registries.model_monitor_repositories(region) == (ImageRepository(model_monitor, region, MODEL_MONITOR),)
    assert image_registries.registry_accounts(image_registries.pipeline_repositories(region)) == tuple(
        sorted((dlc, rules, model_monitor)))


def test_a_region_the_sdk_does_not_know_fails_naming_it():
    with pytest.raises(UnsupportedRegionError, match=r"region 'xx-nowhere-1'.*training image.*Unsupported region"):
        image_registries.pipeline_repositories("xx-nowhere-1")


@pytest.mark.parametrize("image_uri, expected", [
    ("763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:2.6.0-transformers4.51.3-cpu-py312-ubuntu22.04",
     ImageRepository("763104351884", "us-east-1", INFERENCE)),
    ("727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/huggingface-pytorch-training:2.8.0-gpu",
     ImageRepository("727897471807", "cn-north-1", TRAINING)),
    (f"503895931360.dkr.ecr.us-east-1.amazonaws.com/a/b@sha256:{'0' * 64}", ImageRepository("503895931360", "us-east-1", "a/b")),
])
def test_an_image_uri_names_its_repository(image_uri, expected):
    assert ImageRepository.of_image(image_uri) == expected


def test_an_image_outside_ecr_is_refused():
    with pytest.raises(ValueError, match="not an ECR image URI"):
        ImageRepository.of_image("docker.io/library/python:3.12")


# --- The roles, in every environment and in another region -----------------------------------

@dataclass
class Deployment:
    region: str
    templates: dict[str, dict]  # by component
    nag_findings: list[str]


@pytest.fixture(scope="module")
def other_region_deployment(offline_aws_environment, tmp_path_factory) -> Deployment:
    """The dev environment's stacks, built as the app builds them, in OTHER_REGION."""
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks

    from stacks.app_builder import build_environment

    context = copy.deepcopy(json.loads(CDK_JSON.read_text())["context"])
    context[ENVIRONMENTS_CONTEXT_KEY]["dev"]["region"] = OTHER_REGION
    [config] = parse_environments(context[ENVIRONMENTS_CONTEXT_KEY], selected="dev")
    app = cdk.App(context=context, outdir=str(tmp_path_factory.mktemp("other-region-cdk.out")))
    stacks = build_environment(app, config)
    cdk.Aspects.of(app).add(AwsSolutionsChecks(reports=False))
    assembly = app.synth()
    templates, findings = {}, []
    for component, stack in stacks.items():
        artifact = assembly.get_stack_artifact(stack.artifact_id)
        templates[component] = json.loads(open(artifact.template_full_path).read())
        findings += [
            f"{message.id}: {str(message.entry.data).splitlines()[0]}"
            for message in artifact.messages
            if message.level.name in ("ERROR", "WARNING") and str(message.entry.data).startswith(NAG_PACK_PREFIX)
        ]
    return Deployment(region=OTHER_REGION, templates=templates, nag_findings=findings)


@pytest.fixture(params=[*ENVIRONMENTS, OTHER_REGION_DEPLOYMENT])
def deployment(request, synthesized_app) -> Deployment:
    if request.param == OTHER_REGION_DEPLOYMENT:
        return request.getfixturevalue("other_region_deployment")
    return Deployment(
        region=load_environment(request.param).region,
        templates={component: synthesized_app.template_json(request.param, component) for component in COMPONENTS
                   if (request.param, component) in synthesized_app.stacks},  # a promoting one has no pipeline
        nag_findings=[],  # tests/test_cdk_nag.py checks these stacks
    )


def test_the_environments_in_cdk_json_are_in_us_east_1():
    """If one moves, SDK_ACCOUNTS needs its region for the account test below to cover it."""
    assert {load_environment(name).region for name in ENVIRONMENTS} <= set(SDK_ACCOUNTS)


def test_pipeline_role_pulls_exactly_the_sdk_repositories_of_the_region(deployment):
    pulled = pulled_repositories(deployment.templates["foundation"], PIPELINE_ROLE)
    assert pulled == set(image_registries.pipeline_repositories(deployment.region))
    assert {r.account for r in pulled} == set(SDK_ACCOUNTS[deployment.region])


def test_model_role_pulls_exactly_the_inference_image(deployment):
    pulled = pulled_repositories(deployment.templates["serving"], MODEL_ROLE)
    assert pulled == set(image_registries.inference_repositories(deployment.region))
    assert {r.account for r in pulled} == {SDK_ACCOUNTS[deployment.region][0]}


def test_monitoring_role_pulls_exactly_the_analyzer_image(deployment):
    if not any(role.startswith(MONITORING_ROLE) for role in pulls_by_role(deployment.templates["serving"])):
        pytest.skip("this environment has no Model Monitor schedules (cdk.json serving.monitoring)")
    pulled = pulled_repositories(deployment.templates["serving"], MONITORING_ROLE)
    assert pulled == set(image_registries.model_monitor_repositories(deployment.region))


def test_roles_pull_what_the_generated_definition_runs(deployment):
    if "pipeline" not in deployment.templates:
        pytest.skip("this environment promotes models from another one: it runs no pipeline definition")
    images = definition_images(pipeline_definition_of(deployment.templates["pipeline"]))
    assert set(images) == set(DEFINITION_IMAGE_FIELDS), "an image field of the definition moved"
    assert pulled_repositories(deployment.templates["foundation"], PIPELINE_ROLE) == set().union(*images.values())
    assert pulled_repositories(deployment.templates["serving"], MODEL_ROLE) == images["Image"]


def test_another_region_names_no_us_east_1_registry(other_region_deployment):
    for component, template in other_region_deployment.templates.items():
        text = json.dumps(template)
        assert SDK_ACCOUNTS["us-east-1"][0] not in text, component
        assert SDK_ACCOUNTS["us-east-1"][1] not in text, component


def test_a_role_may_not_pull_from_another_region(offline_aws_environment):
    import aws_cdk as cdk

    from stacks.components.image_pulls import image_pull_statements

    stack = cdk.Stack(cdk.App(), "Elsewhere", env=cdk.Environment(account="111111111111", region=OTHER_REGION))
    with pytest.raises(ValueError, match=f"from {OTHER_REGION} only"):
        image_pull_statements(stack, image_registries.inference_repositories("us-east-1"))


def test_another_region_has_no_unsuppressed_nag_findings(other_region_deployment):
    assert not other_region_deployment.nag_findings, "\n".join(other_region_deployment.nag_findings)


# --- Reading templates and the definition --------------------------------------------------------

def pulls_by_role(template: dict) -> dict[str, set[ImageRepository]]:
    """The repositories of every ECR pull statement in the template, by the logical id of the role
    whose policy holds it."""
    pulls: dict[str, set[ImageRepository]] = {}
    for policy in (r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"):
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "ecr:BatchGetImage" not in _as_list(statement["Action"]):
                continue
            for role in policy["Properties"]["Roles"]:
                pulls.setdefault(role["Ref"], set()).update(
                    _repository_of_arn(_flatten(resource)) for resource in _as_list(statement["Resource"]))
    return pulls


def pulled_repositories(template: dict, role_logical_id_prefix: str) -> set[ImageRepository]:
    """What the one role pulls; no other role of the template may pull but the ones allowed below."""
    pulls = pulls_by_role(template)
    allowed = (PIPELINE_ROLE, MODEL_ROLE, MONITORING_ROLE)
    assert all(role.startswith(allowed) for role in pulls), f"an ECR pull outside {allowed}: {sorted(pulls)}"
    pulled = set().union(*(repositories for role, repositories in pulls.items() if role.startswith(role_logical_id_prefix)))
    assert pulled, f"{role_logical_id_prefix} pulls no images"
    return pulled


def pipeline_definition_of(pipeline_template: dict) -> dict:
    [resource] = [r for r in pipeline_template["Resources"].values() if r["Type"] == "Custom::SageMakerPipeline"]
    definition_template, _ = resource["Properties"]["PipelineDefinition"]["Fn::Sub"]
    return json.loads(definition_template)  # placeholders sit inside strings: still JSON


def definition_images(definition: dict) -> dict[str, set[ImageRepository]]:
    """Repositories by the field that names the image, anywhere in the definition."""
    found: dict[str, set[ImageRepository]] = {}

    def walk(value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in DEFINITION_IMAGE_FIELDS and isinstance(item, str):
                    found.setdefault(key, set()).add(ImageRepository.of_image(item))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(definition)
    return found


def _repository_of_arn(arn: str) -> ImageRepository:
    match = _REPOSITORY_ARN.fullmatch(arn)
    assert match, f"not a repository-level ECR ARN: {arn}"
    return ImageRepository(**match.groupdict())


def _flatten(value) -> str:
    """An ARN as CDK renders it (Fn::Join with the partition) as text."""
    if isinstance(value, str):
        return value
    if value == {"Ref": "AWS::Partition"}:
        return "<partition>"
    separator, parts = value["Fn::Join"]
    return separator.join(_flatten(part) for part in parts)


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]
