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
    MutationTarget(
        "config",
        "stacks/config.py",
        # Where each environment's models come from (issue 13) is validated in its own file.
        ("tests/test_config.py", "tests/test_promotion_config.py"),
    ),
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
                    "test_steps_run_fingerprint_prepare_train_seal_evaluate_then_the_quality_gate",
                    "test_property_file_path_reads_the_accuracy_evaluate_py_writes",
                    "test_registration_declares_content_types_metrics_and_approval",
                    "test_the_gate_requires_accuracy_macro_f1_and_every_class_recall_at_floor_and_parameter",
                    "test_the_definitions_class_names_and_domain_wildcard_are_the_container_codes",
                    "test_a_class_recall_fail_step_names_the_class_its_recall_and_both_thresholds",
                    "test_the_gate_holds_the_environments_floor_whatever_min_accuracy_a_run_sets",
                    "test_each_fail_step_states_the_accuracy_and_the_threshold_it_missed",
                    "test_an_artifact_already_in_the_registry_is_not_registered_again",
                    "test_a_dev_environment_that_registers_approved_versions_gets_that_status_in_its_definition",
                    "test_an_environment_serving_on_a_gpu_registers_the_gpu_build_of_the_inference_image",
                )
            ),
        ),
    ),
    MutationTarget(
        "approval_deployer",
        "stacks/lambdas/approval_deployer/handler.py",
        # The promotion check (issue 13) and the serving baselines (issue 11) are tested in their
        # own files, all against moto in seconds.
        (
            "tests/serving/test_approval_deployer_handler.py",
            "tests/serving/test_model_promotion.py",
            "tests/serving/test_serving_baselines.py",
        ),
    ),
    MutationTarget("prepare", "container_code/prepare.py", ("tests/container_code/test_prepare.py",), flat=True),
    MutationTarget(
        "evaluate",
        "container_code/evaluate.py",
        # test_processing_step_scores_the_test_split_from_model_tar_gz trains a model first (about
        # 35 s a mutant of `main`); the in-process tests of `main` score an untrained one.
        tuple(
            f"tests/container_code/test_evaluate.py::{test}"
            for test in (
                "test_model_quality_report_on_a_known_prediction_set",
                "test_report_has_exactly_the_contract_shape_and_is_json",
                "test_a_class_never_predicted_counts_as_zero_precision_not_an_error",
                "test_a_class_missing_from_the_test_split_is_reported_and_counts_as_zero_recall",
                "test_a_model_that_ignores_a_class_scores_well_on_accuracy_but_not_on_macro_f1_or_its_recall",
                "test_expected_calibration_error_on_known_probabilities",
                "test_the_two_most_confident_bins_are_kept_apart",
                "test_mismatched_or_empty_predictions_are_refused",
                "test_per_class_report_and_picture",
                "test_the_reports_are_indented_json_files_in_a_folder_made_for_them",
                "test_the_confusion_matrix_picture_shows_each_count_in_its_cell",
                "test_without_matplotlib_the_metrics_are_still_written",
                "test_the_step_scores_each_review_once_and_reports_what_it_wrote",
                "test_scoring_shows_its_progress_every_30_seconds_and_at_the_end",
                "test_the_data_quality_baseline_counts_truncation_at_the_models_sequence_length",
                "test_help_says_what_the_step_does_and_what_its_options_default_to",
                "test_a_batch_size_below_one_or_a_negative_sample_count_is_refused",
                "test_without_arguments_the_step_reads_and_writes_sagemakers_processing_paths",
            )
        ),
        flat=True,
        fork_safe=False,  # main runs torch, as inference does
    ),
)

BY_NAME = {target.name: target for target in TARGETS}
