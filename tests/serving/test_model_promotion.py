"""Promotion across accounts on moto's server, with `staging` (222222222222) and `prod`
(333333333333) as cdk.json names them: each account's resources live in that account's moto
state, and every request goes to the account that owns what it names (tests/support/moto_accounts.py).

tools/promote_model.py reads an Approved staging version and its sealed artifact and registers it
in prod's group as PendingManualApproval, with staging's ModelMetrics and DriftCheckBaselines;
prod's approval deployer checks the digest before the endpoint moves and publishes the baselines,
read from staging's bucket, where prod's monitoring schedules read them. Which principals AWS lets do this is the policies' job:
tests/serving/test_promotion_policies.py evaluates them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib

import boto3
import pytest
from botocore.validate import ParamValidator

from stacks.components.model_monitoring import serving_baseline_key
from stacks.config import load_environment
from stacks.lambdas.approval_deployer import handler as deployer
from support.approval_deployer_world import ACCOUNT as DEV_ACCOUNT
from support.approval_deployer_world import INFERENCE_SPECIFICATION, SETTINGS, World
from support.moto_accounts import route_to_owner
from support.moto_cloudformation import ssm_parameters_resolved_on_update
from tools.promote_model import PromotionClients, PromotionError, promote

STAGING, PROD, DEV = load_environment("staging"), load_environment("prod"), load_environment("dev")
SOURCE_BUCKET = f"{STAGING.resource_prefix}-artifacts-{STAGING.account}"
IMAGE = INFERENCE_SPECIFICATION["Containers"][0]["Image"]
# prod's deployer as its stack configures it (only its group and its source matter here).
PROD_SETTINGS = dataclasses.replace(
    SETTINGS, model_package_group_name=PROD.model_package_group_name, environment_name=PROD.name,
    promotion_source_prefix=f"arn:aws:sagemaker:{STAGING.region}:{STAGING.account}:model-package/"
                            f"{STAGING.model_package_group_name}/",
)


# prod's deployer as prod's serving stack configures it, monitoring included, for a whole approval.
PROD_BUCKET = f"{PROD.resource_prefix}-artifacts-{PROD.account}"
PROD_SERVING_SETTINGS = dataclasses.replace(
    PROD_SETTINGS, stack_name=PROD.stack_name("serving"),
    approved_package_parameter_name=PROD.approved_model_package_parameter_name,
    cloudformation_role_arn=PROD.role_arn(f"{PROD.stack_name('serving')}-approval-update"),
    dead_letter_queue_url=f"https://sqs.{PROD.region}.amazonaws.com/{PROD.account}/{PROD.stack_name('serving')}-dlq",
    serving_baselines_uri=f"s3://{PROD_BUCKET}/serving-baselines/{PROD.endpoint_name}",
)
# DriftCheckBaselines / ModelMetrics members -> the file the pipeline's QualityCheckSteps write
# under monitoring-baselines/<execution id>/ (pipeline_definition/steps/baselines.py, register.py).
BASELINE_FILES = {("ModelDataQuality", "Statistics"): "data-quality/statistics.json",
                  ("ModelDataQuality", "Constraints"): "data-quality/constraints.json",
                  ("ModelQuality", "Statistics"): "model-quality/statistics.json",
                  ("ModelQuality", "Constraints"): "model-quality/constraints.json"}


def sealed_key(data: bytes) -> str:
    return f"immutable-models/sha256/{hashlib.sha256(data).hexdigest()}/model.tar.gz"


class Accounts:
    def __init__(self, endpoint_url: str) -> None:
        def client(service: str, account: str):
            return route_to_owner(boto3.client(service, endpoint_url=endpoint_url, region_name=STAGING.region),
                                  account, {SOURCE_BUCKET: STAGING.account})

        self.staging_sagemaker, self.staging_s3 = client("sagemaker", STAGING.account), client("s3", STAGING.account)
        self.prod_sagemaker = client("sagemaker", PROD.account)
        # The promotion role's clients: prod's account; the source's ARNs and bucket reach staging.
        self.promoter = PromotionClients(self.prod_sagemaker, client("s3", PROD.account), self.prod_sagemaker)
        self.deployer = deployer.Clients.create(endpoint_url=endpoint_url, region_name=PROD.region)
        route_to_owner(self.deployer.sagemaker, PROD.account)
        route_to_owner(self.deployer.s3, PROD.account, {SOURCE_BUCKET: STAGING.account})
        self.staging_s3.create_bucket(Bucket=SOURCE_BUCKET)
        self.staging_sagemaker.create_model_package_group(ModelPackageGroupName=STAGING.model_package_group_name)
        self.prod_sagemaker.create_model_package_group(ModelPackageGroupName=PROD.model_package_group_name)

    def seal(self, data: bytes, *, key: str | None = None, checksum: bool = True) -> str:
        """What the seal step writes: a write-once object whose SHA-256 S3 verified on upload."""
        key = key or sealed_key(data)
        extra = {"ChecksumSHA256": base64.b64encode(hashlib.sha256(data).digest()).decode()} if checksum else {}
        self.staging_s3.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=data, IfNoneMatch="*", **extra)
        return f"s3://{SOURCE_BUCKET}/{key}"

    def write_baselines(self, execution: str) -> dict:
        """What staging's pipeline registers: the baselines its QualityCheckSteps wrote (distinct
        bytes per file) as DriftCheckBaselines, and as ModelMetrics the same constraints and
        data statistics beside evaluate.py's report (outside the baselines prefix)."""
        sources = {}
        for (kind, document), path in BASELINE_FILES.items():
            key = f"monitoring-baselines/{execution}/{path}"
            self.staging_s3.put_object(Bucket=SOURCE_BUCKET, Key=key,
                                       Body=f'{{"execution": "{execution}", "file": "{path}"}}\n'.encode())
            sources.setdefault(kind, {})[document] = {"ContentType": "application/json",
                                                      "S3Uri": f"s3://{SOURCE_BUCKET}/{key}"}
        report = {"ContentType": "application/json",
                  "S3Uri": f"s3://{SOURCE_BUCKET}/pipeline-executions/{execution}/evaluation/evaluation.json"}
        return {
            "DriftCheckBaselines": sources,
            "ModelMetrics": {"ModelQuality": {"Statistics": report, "Constraints": sources["ModelQuality"]["Constraints"]},
                             "ModelDataQuality": sources["ModelDataQuality"]},
        }

    def register_in_staging(self, model_data_url: str, status: str = "Approved", quality: dict | None = None) -> str:
        arn = self.staging_sagemaker.create_model_package(
            ModelPackageGroupName=STAGING.model_package_group_name,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={**INFERENCE_SPECIFICATION,
                                    "Containers": [{"Image": IMAGE, "ModelDataUrl": model_data_url}]},
            **(quality or {}),
        )["ModelPackageArn"]
        if status != "PendingManualApproval":
            self.staging_sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status)
        return arn

    def prod_packages(self) -> list[dict]:
        summaries = self.prod_sagemaker.list_model_packages(
            ModelPackageGroupName=PROD.model_package_group_name)["ModelPackageSummaryList"]
        return [self.prod_sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in summaries]


@pytest.fixture
def accounts(moto_endpoint, monkeypatch) -> Accounts:
    monkeypatch.delenv("MOTO_ACCOUNT_ID", raising=False)  # it would win over the per-request account
    return Accounts(moto_endpoint)


def version_of(arn: str) -> int:
    return int(arn.rsplit("/", 1)[-1])


# --- The promotion tool -----------------------------------------------------------------------

def test_an_approved_staging_version_lands_in_prod_pending_with_its_digest(accounts):
    artifact = b"model bytes staging evaluated"
    url = accounts.seal(artifact)
    source_arn = accounts.register_in_staging(url)

    promotion = promote(accounts.promoter, STAGING, PROD, version_of(source_arn))

    assert promotion.created and promotion.source_arn == source_arn
    assert promotion.target_arn.startswith(f"arn:aws:sagemaker:{PROD.region}:{PROD.account}:model-package/"
                                           f"{PROD.model_package_group_name}/")
    [package] = accounts.prod_packages()
    assert package["ModelPackageArn"] == promotion.target_arn
    assert package["ModelApprovalStatus"] == "PendingManualApproval"  # prod's own, separate decision
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == url
    assert package["CustomerMetadataProperties"] == {
        "PromotedFromModelPackageArn": source_arn, "ModelArtifactSha256": hashlib.sha256(artifact).hexdigest()}
    # Each account holds its own: staging's group has only its version, untouched.
    [source] = accounts.staging_sagemaker.list_model_packages(
        ModelPackageGroupName=STAGING.model_package_group_name)["ModelPackageSummaryList"]
    assert source["ModelPackageArn"] == source_arn and source["ModelApprovalStatus"] == "Approved"


def test_staging_metrics_and_baselines_travel_with_the_promotion(accounts):
    quality = accounts.write_baselines("execution-7")
    source_arn = accounts.register_in_staging(accounts.seal(b"gated model"), quality=quality)
    requests = []
    accounts.prod_sagemaker.meta.events.register(
        "before-parameter-build.sagemaker.CreateModelPackage", lambda params, **_: requests.append(dict(params)))

    promote(accounts.promoter, STAGING, PROD, version_of(source_arn))

    [request] = requests
    shape = accounts.prod_sagemaker.meta.service_model.operation_model("CreateModelPackage").input_shape
    assert not ParamValidator().validate(request, shape).has_errors()
    # The URIs in staging's bucket, with their content types, exactly as staging registered them.
    assert (request["ModelMetrics"], request["DriftCheckBaselines"]) == (quality["ModelMetrics"], quality["DriftCheckBaselines"])
    [package] = accounts.prod_packages()
    assert (package["ModelMetrics"], package["DriftCheckBaselines"]) == (quality["ModelMetrics"], quality["DriftCheckBaselines"])


def test_a_version_registered_without_baselines_is_promoted_without_them(accounts):
    source_arn = accounts.register_in_staging(accounts.seal(b"older pipeline"))
    promote(accounts.promoter, STAGING, PROD, version_of(source_arn))
    [package] = accounts.prod_packages()
    assert "DriftCheckBaselines" not in package and "ModelMetrics" not in package


def test_promoting_the_same_version_again_returns_the_first_promotion(accounts):
    source_arn = accounts.register_in_staging(accounts.seal(b"once"))
    first = promote(accounts.promoter, STAGING, PROD, version_of(source_arn))
    again = promote(accounts.promoter, STAGING, PROD, version_of(source_arn))
    assert (again.target_arn, again.created) == (first.target_arn, False)
    assert len(accounts.prod_packages()) == 1


@pytest.mark.parametrize("status", ["PendingManualApproval", "Rejected"])
def test_only_a_version_approved_in_staging_is_promoted(accounts, status):
    source_arn = accounts.register_in_staging(accounts.seal(b"not approved"), status=status)
    with pytest.raises(PromotionError, match=f"is {status}: only a version Approved in staging"):
        promote(accounts.promoter, STAGING, PROD, version_of(source_arn))
    assert accounts.prod_packages() == []


def test_bytes_that_are_not_the_digest_in_their_key_are_not_promoted(accounts):
    url = accounts.seal(b"other bytes", key=sealed_key(b"the evaluated bytes"), checksum=False)
    source_arn = accounts.register_in_staging(url)
    with pytest.raises(PromotionError, match="holds bytes with SHA-256"):
        promote(accounts.promoter, STAGING, PROD, version_of(source_arn))
    assert accounts.prod_packages() == []


def test_an_artifact_that_is_not_sealed_is_not_promoted(accounts):
    accounts.staging_s3.put_object(Bucket=SOURCE_BUCKET, Key="models/model.tar.gz", Body=b"x")
    source_arn = accounts.register_in_staging(f"s3://{SOURCE_BUCKET}/models/model.tar.gz")
    with pytest.raises(PromotionError, match="not one sealed artifact"):
        promote(accounts.promoter, STAGING, PROD, version_of(source_arn))


def test_prod_promotes_only_from_the_environment_cdk_json_names(accounts):
    with pytest.raises(PromotionError, match=r"prod does not promote from dev .*model_source\.promote_from"):
        promote(accounts.promoter, DEV, PROD, 1)


# --- prod's deployer checks the digest before serving -----------------------------------------

def promoted(accounts: Accounts, artifact: bytes = b"served bytes", **seal) -> str:
    source_arn = accounts.register_in_staging(accounts.seal(artifact, **seal))
    return promote(accounts.promoter, STAGING, PROD, version_of(source_arn)).target_arn


def test_the_deployer_accepts_the_promoted_artifact(accounts, caplog):
    caplog.set_level("INFO")
    arn = promoted(accounts)
    deployer.verify_promoted_artifact(accounts.deployer, PROD_SETTINGS, arn)
    assert "artifact" in caplog.text and "verified" in caplog.text


def _record_s3_reads(accounts: Accounts) -> list[str]:
    calls: list[str] = []
    accounts.deployer.s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    return calls


def test_the_deployer_hashes_the_bytes_when_s3_holds_no_checksum(accounts):
    arn = promoted(accounts, checksum=False)
    calls = _record_s3_reads(accounts)
    deployer.verify_promoted_artifact(accounts.deployer, PROD_SETTINGS, arn)
    assert calls == ["HeadObject", "GetObject"]


def test_a_stored_checksum_spares_reading_the_model(accounts):
    arn = promoted(accounts, b"served bytes")
    # What S3 answers for the sealed object (moto's server answers no checksum): its SHA-256, to
    # a HEAD that asks for it (ChecksumMode=ENABLED) and only then.
    asked: list[dict] = []
    stored = base64.b64encode(hashlib.sha256(b"served bytes").digest()).decode()
    accounts.deployer.s3.meta.events.register("provide-client-params.s3.HeadObject", lambda params, **_: asked.append(params))
    accounts.deployer.s3.meta.events.register(
        "after-call.s3.HeadObject",
        lambda parsed, **_: parsed.update(ChecksumSHA256=stored) if asked[-1].get("ChecksumMode") == "ENABLED" else None)
    calls = _record_s3_reads(accounts)
    deployer.verify_promoted_artifact(accounts.deployer, PROD_SETTINGS, arn)
    assert calls == ["HeadObject"]


def test_a_composite_checksum_is_not_taken_for_the_artifacts_digest(accounts):
    # A multipart upload's checksum is a checksum of its parts' checksums ("...-2"), not the
    # object's SHA-256: the deployer reads the bytes instead.
    arn = promoted(accounts)
    accounts.deployer.s3.meta.events.register(
        "after-call.s3.HeadObject",
        lambda parsed, **_: parsed.update(ChecksumSHA256="Ym90aCBwYXJ0cw==-2", ChecksumType="COMPOSITE"))
    calls = _record_s3_reads(accounts)
    deployer.verify_promoted_artifact(accounts.deployer, PROD_SETTINGS, arn)
    assert calls == ["HeadObject", "GetObject"]


def test_the_deployer_refuses_an_artifact_whose_stored_checksum_is_another_digest(accounts):
    source_arn = accounts.register_in_staging(accounts.seal(b"evaluated"))
    arn = promote(accounts.promoter, STAGING, PROD, version_of(source_arn)).target_arn
    # What S3 would answer for other bytes under that key (it cannot happen to a write-once key
    # whose writer sent the digest; the deployer does not take it on trust anyway).
    other = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    accounts.deployer.s3.meta.events.register(
        "after-call.s3.HeadObject", lambda parsed, **_: parsed.update(ChecksumSHA256=other))
    with pytest.raises(deployer.PermanentFailure, match=f"has SHA-256 {hashlib.sha256(b'other').hexdigest()}"):
        deployer.verify_promoted_artifact(accounts.deployer, PROD_SETTINGS, arn)


def _version_in_prod(accounts, source_arn: str, sha256: str, inference_specification: dict | None) -> str:
    """A version written straight into prod's group (not by the promotion tool), as a forger or
    an odd registration would leave it; None: registered without an InferenceSpecification."""
    extra = {} if inference_specification is None else {"InferenceSpecification": inference_specification}
    return accounts.prod_sagemaker.create_model_package(
        ModelPackageGroupName=PROD.model_package_group_name, ModelApprovalStatus="PendingManualApproval",
        CustomerMetadataProperties={"PromotedFromModelPackageArn": source_arn, "ModelArtifactSha256": sha256},
        **extra,
    )["ModelPackageArn"]


def test_the_deployer_refuses_a_version_whose_digest_is_not_its_artifacts(accounts):
    source_arn = accounts.register_in_staging(accounts.seal(b"evaluated"))
    forged = _version_in_prod(accounts, source_arn, "0" * 64, {
        **INFERENCE_SPECIFICATION,
        "Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://{SOURCE_BUCKET}/{sealed_key(b'evaluated')}"}],
    })
    with pytest.raises(deployer.PermanentFailure, match="is not the sealed artifact with SHA-256 0000"):
        deployer.verify_promoted_artifact(accounts.deployer, PROD_SETTINGS, forged)


def test_the_deployer_refuses_a_promoted_version_whose_container_names_no_artifact(accounts):
    # A container may carry its model in the image: nothing to verify, so nothing is served.
    source_arn = accounts.register_in_staging(accounts.seal(b"evaluated"))
    baked = _version_in_prod(accounts, source_arn, hashlib.sha256(b"evaluated").hexdigest(),
                             {**INFERENCE_SPECIFICATION, "Containers": [{"Image": IMAGE}]})
    with pytest.raises(deployer.PermanentFailure, match=r"artifact \[''\] is not the sealed artifact"):
        deployer.verify_promoted_artifact(accounts.deployer, PROD_SETTINGS, baked)


def test_the_deployer_refuses_a_promoted_version_without_an_inference_specification(accounts):
    # A version may be registered without one (a model card, say): no artifact to verify, none served.
    source_arn = accounts.register_in_staging(accounts.seal(b"evaluated"))
    bare = _version_in_prod(accounts, source_arn, hashlib.sha256(b"evaluated").hexdigest(), None)
    assert "InferenceSpecification" not in accounts.prod_sagemaker.describe_model_package(ModelPackageName=bare)
    with pytest.raises(deployer.PermanentFailure, match=r"artifact \[\] is not the sealed artifact"):
        deployer.verify_promoted_artifact(accounts.deployer, PROD_SETTINGS, bare)


def test_the_deployer_refuses_a_promoted_version_that_carries_no_digest(accounts):
    url = accounts.seal(b"evaluated")
    source_arn = accounts.register_in_staging(url)
    undigested = accounts.prod_sagemaker.create_model_package(
        ModelPackageGroupName=PROD.model_package_group_name, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={**INFERENCE_SPECIFICATION, "Containers": [{"Image": IMAGE, "ModelDataUrl": url}]},
        CustomerMetadataProperties={"PromotedFromModelPackageArn": source_arn},
    )["ModelPackageArn"]
    with pytest.raises(deployer.PermanentFailure, match=r"is not the sealed artifact with SHA-256 <none>$"):
        deployer.verify_promoted_artifact(accounts.deployer, PROD_SETTINGS, undigested)


def test_the_deployer_refuses_a_version_its_source_does_not_register(accounts):
    other = accounts.register_in_staging(accounts.seal(b"another model"))
    url = accounts.seal(b"evaluated")
    forged = accounts.prod_sagemaker.create_model_package(
        ModelPackageGroupName=PROD.model_package_group_name, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={**INFERENCE_SPECIFICATION, "Containers": [{"Image": IMAGE, "ModelDataUrl": url}]},
        CustomerMetadataProperties={"PromotedFromModelPackageArn": other,
                                    "ModelArtifactSha256": hashlib.sha256(b"evaluated").hexdigest()},
    )["ModelPackageArn"]
    with pytest.raises(deployer.PermanentFailure, match="its source .* registers"):
        deployer.verify_promoted_artifact(accounts.deployer, PROD_SETTINGS, forged)


def test_prods_deployer_refuses_a_version_that_is_no_promotion_from_staging(accounts):
    trained_in_prod = accounts.prod_sagemaker.create_model_package(
        ModelPackageGroupName=PROD.model_package_group_name, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={**INFERENCE_SPECIFICATION,
                                "Containers": [{"Image": IMAGE, "ModelDataUrl": accounts.seal(b"prod's own")}]},
    )["ModelPackageArn"]
    with pytest.raises(deployer.PermanentFailure,
                       match=r"is not a promotion from .*staging/.*\(promoted from: nothing\); this environment serves promotions only"):
        deployer.verify_promoted_artifact(accounts.deployer, PROD_SETTINGS, trained_in_prod)
    # An environment that trains serves its own versions unchecked.
    deployer.verify_promoted_artifact(accounts.deployer, SETTINGS, trained_in_prod)


def test_approving_in_staging_does_not_move_prods_endpoint(accounts):
    """Staging's approval events are staging's (EventBridge delivers them in staging's account);
    even handed to prod's deployer, a version of another group is ignored."""
    source_arn = accounts.register_in_staging(accounts.seal(b"approved in staging"))
    change = deployer.ApprovalChange("event", source_arn, STAGING.model_package_group_name, "Approved")
    assert deployer.reconcile(change, accounts.deployer, PROD_SETTINGS) == deployer.Outcome.IGNORED


# --- The approval path: a promoted version serves only after the check ------------------------
# The stand-in serving stack of tests/support/approval_deployer_world.py (dev's names, one account):
# the wiring of the check into the deployer's approval path.

@pytest.fixture
def world(moto_endpoint, monkeypatch) -> World:
    monkeypatch.setenv("MOTO_ACCOUNT_ID", DEV_ACCOUNT)
    ssm_parameters_resolved_on_update(monkeypatch)
    world = World(moto_endpoint)
    world.create_stack()
    world.clients.s3.create_bucket(Bucket="artifacts")
    return world


def promoted_in_world(world: World, *, stored: bytes) -> str:
    """A promoted version of the evaluated bytes whose artifact key holds `stored`."""
    data = b"promoted model"
    key = sealed_key(data)
    world.clients.s3.put_object(Bucket="artifacts", Key=key, Body=stored)
    specification = {**INFERENCE_SPECIFICATION, "Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://artifacts/{key}"}]}
    return world.clients.sagemaker.create_model_package(
        ModelPackageGroupName=SETTINGS.model_package_group_name, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification=specification,
        CustomerMetadataProperties={"PromotedFromModelPackageArn": _source_with(world, specification),
                                    "ModelArtifactSha256": hashlib.sha256(data).hexdigest()},
    )["ModelPackageArn"]


def _source_with(world: World, specification: dict) -> str:
    world.clients.sagemaker.create_model_package_group(ModelPackageGroupName="source-group")
    return world.clients.sagemaker.create_model_package(
        ModelPackageGroupName="source-group", ModelApprovalStatus="Approved", InferenceSpecification=specification,
    )["ModelPackageArn"]


def approve_promotion(world: World, arn: str) -> dict:
    """Approve as a person would. AWS keeps a version's metadata through UpdateModelPackage; moto
    5.2.5 drops what the update does not repeat, so the update repeats it."""
    metadata = world.clients.sagemaker.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    world.clients.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved",
                                                 CustomerMetadataProperties=metadata)
    return world.run(world.registry.event(arn))


def test_an_approved_promoted_version_whose_digest_holds_is_deployed(world):
    arn = promoted_in_world(world, stored=b"promoted model")
    assert approve_promotion(world, arn) == {"batchItemFailures": []}
    assert world.declared() == arn and world.served() == arn


def test_an_approved_promoted_version_whose_digest_fails_is_dead_lettered_and_not_deployed(world):
    arn = promoted_in_world(world, stored=b"tampered")
    assert approve_promotion(world, arn) == {"batchItemFailures": []}  # handled: sent to the dead-letter queue
    assert world.update_stack_calls == 0
    assert world.declared() != arn
    assert world.metric(deployer.PROMOTION_FAILURES_METRIC)["Sum"] == 1


# --- prod's whole approval: the deployer publishes staging's baselines to prod's monitoring ----------
# The stand-in serving stack in prod's account; the deployer's requests naming staging's bucket or
# versions go to staging's account, as AWS routes them.

@pytest.fixture
def prod_world(accounts, moto_endpoint, monkeypatch) -> World:
    ssm_parameters_resolved_on_update(monkeypatch)
    world = World(moto_endpoint, settings=PROD_SERVING_SETTINGS, account=PROD.account,
                  bucket_accounts={SOURCE_BUCKET: STAGING.account, PROD_BUCKET: PROD.account},
                  endpoint_name=PROD.endpoint_name)
    world.create_stack(with_group=False)  # the accounts fixture made prod's group
    world.clients.s3.create_bucket(Bucket=PROD_BUCKET)
    return world


def published_baselines(world: World) -> dict[str, bytes]:
    found = {}
    for path in BASELINE_FILES.values():
        kind, file_name = path.split("/")
        try:
            body = world.clients.s3.get_object(Bucket=PROD_BUCKET, Key=serving_baseline_key(PROD.endpoint_name, kind, file_name))
        except world.clients.s3.exceptions.NoSuchKey:
            continue
        found[path] = body["Body"].read()
    return found


def staging_object(accounts: Accounts, uri: str) -> bytes:
    return accounts.staging_s3.get_object(Bucket=SOURCE_BUCKET, Key=uri.split("/", 3)[3])["Body"].read()


def test_approving_a_promotion_in_prod_publishes_stagings_baselines_then_moves_the_endpoint(accounts, prod_world):
    quality = accounts.write_baselines("execution-7")
    source_arn = accounts.register_in_staging(accounts.seal(b"monitored model"), quality=quality)
    arn = promote(accounts.promoter, STAGING, PROD, version_of(source_arn)).target_arn

    assert approve_promotion(prod_world, arn) == {"batchItemFailures": []}

    published = published_baselines(prod_world)
    assert set(published) == set(BASELINE_FILES.values())
    for (kind, document), path in BASELINE_FILES.items():
        # Byte for byte what staging's pipeline wrote, now in prod's bucket at the schedules' keys.
        assert published[path] == staging_object(accounts, quality["DriftCheckBaselines"][kind][document]["S3Uri"]), path
    assert prod_world.update_stack_calls == 1
    assert prod_world.declared() == arn and prod_world.served() == arn


def test_a_promotion_without_baselines_serves_and_keeps_the_published_ones(accounts, prod_world, caplog):
    caplog.set_level("INFO")
    source_arn = accounts.register_in_staging(accounts.seal(b"before baselines"))
    arn = promote(accounts.promoter, STAGING, PROD, version_of(source_arn)).target_arn

    assert approve_promotion(prod_world, arn) == {"batchItemFailures": []}

    assert f"Package {arn} has no complete DriftCheckBaselines: monitoring keeps the previous baselines" in caplog.text
    assert published_baselines(prod_world) == {}
    assert prod_world.update_stack_calls == 1
    assert prod_world.declared() == arn and prod_world.served() == arn


# --- The command line -----------------------------------------------------------------------------

def test_the_command_refuses_a_pair_cdk_json_does_not_declare(capsys):
    from tools.promote_model import main

    assert main(["--from", "dev", "--to", "prod", "--version", "1"]) == 1
    assert "not promoted: prod does not promote from dev" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unknown environment 'qa'"):
        main(["--from", "qa", "--to", "prod", "--version", "1"])


def test_the_command_promotes_and_says_what_to_approve(accounts, monkeypatch, capsys, moto_endpoint):
    from tools.promote_model import main

    source_arn = accounts.register_in_staging(accounts.seal(b"from the command line"))
    # The command's own clients, routed as AWS routes them (tests/support/moto_accounts.py).
    real_client = boto3.client

    def routed_client(service, **kwargs):
        return route_to_owner(real_client(service, endpoint_url=moto_endpoint, **kwargs), PROD.account,
                              {SOURCE_BUCKET: STAGING.account})

    monkeypatch.setattr(boto3, "client", routed_client)
    assert main(["--from", "staging", "--to", "prod", "--version", str(version_of(source_arn))]) == 0
    [package] = accounts.prod_packages()
    assert f"{source_arn} (sha256 {hashlib.sha256(b'from the command line').hexdigest()}) promoted as " \
           f"{package['ModelPackageArn']}, PendingManualApproval: approve it in prod" in capsys.readouterr().out


def test_the_deployer_reads_its_promotion_source_from_its_environment():
    environ = {name.upper(): str(value) for name, value in vars(PROD_SETTINGS).items()}
    assert deployer.Settings.from_environment(environ) == PROD_SETTINGS
    del environ["PROMOTION_SOURCE_PREFIX"]  # an environment that trains
    assert deployer.Settings.from_environment(environ).promotion_source_prefix == ""
