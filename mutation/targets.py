"""The one place that says which modules are mutated and which test files must kill them.

Each module is mutated against its own focused tests, not the whole suite: a mutant counts as
killed only when the tests written for that module notice it. `flat` marks container_code
scripts, which import each other by bare name (`import reviews`), as SageMaker runs them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MutationTarget:
    name: str
    module: str
    tests: tuple[str, ...]
    flat: bool = False
    # Slow tests are left out unless a module has no faster test of some behaviour.
    include_slow: bool = False
    # torch's thread pools deadlock in a child forked after they started: such targets fork
    # their mutants from a server process that has not run a test (mutmut's forkserver).
    fork_safe: bool = True


TARGETS: tuple[MutationTarget, ...] = (
    MutationTarget("reviews", "container_code/reviews.py", ("tests/container_code/test_reviews.py",), flat=True),
    MutationTarget(
        "inference",
        "container_code/inference.py",
        # test_inference.py trains a model and serves it over HTTP: minutes per mutant. The handler
        # tests call the same functions the toolkits call, on a random tiny model.
        ("tests/container_code/test_inference_handlers.py",),
        flat=True,
        fork_safe=False,
    ),
    MutationTarget("config", "stacks/config.py", ("tests/test_config.py",)),
    MutationTarget(
        "pipeline_upserter",
        "stacks/lambdas/pipeline_upserter/handler.py",
        ("tests/lambdas/test_pipeline_upserter_handler.py",),
    ),
    MutationTarget(
        "expressions", "local_pipeline/expressions.py", ("tests/local_pipeline/test_expressions.py",)
    ),
    MutationTarget(
        "executor",
        "local_pipeline/executor.py",
        # The full pipeline (test_pipeline_execution.py) takes minutes a run: too slow per mutant.
        ("tests/local_pipeline/test_executor.py",),
    ),
    # The definition snapshot is what AWS receives: any change of a name, default or description shows.
    MutationTarget(
        "parameters",
        "pipeline_definition/parameters.py",
        ("tests/pipeline_definition/test_definition_snapshots.py", "tests/pipeline_definition/test_dag.py"),
    ),
    MutationTarget(
        "condition_step",
        "pipeline_definition/steps/register.py",
        (
            "tests/pipeline_definition/test_definition_snapshots.py",
            *(
                f"tests/pipeline_definition/test_dag.py::{test}"
                for test in (
                    "test_steps_run_fingerprint_prepare_train_seal_evaluate_then_the_accuracy_gate",
                    "test_property_file_path_reads_the_accuracy_evaluate_py_writes",
                    "test_registration_declares_content_types_metrics_and_approval",
                    "test_the_gate_holds_the_environments_floor_whatever_min_accuracy_a_run_sets",
                    "test_each_fail_step_states_the_accuracy_and_the_threshold_it_missed",
                    "test_an_artifact_already_in_the_registry_is_not_registered_again",
                    "test_a_dev_environment_that_registers_approved_versions_gets_that_status_in_its_definition",
                )
            ),
        ),
    ),
    MutationTarget(
        "approval_deployer",
        "stacks/lambdas/approval_deployer/handler.py",
        ("tests/serving/test_approval_deployer_handler.py",),
    ),
    MutationTarget("prepare", "container_code/prepare.py", ("tests/container_code/test_prepare.py",), flat=True),
    MutationTarget(
        "evaluate", "container_code/evaluate.py", ("tests/container_code/test_evaluate.py",), flat=True
    ),
)

BY_NAME = {target.name: target for target in TARGETS}
