"""train.py: a training job through the sagemaker-training toolkit, its artifact and metric
lines, resuming from a checkpoint, the distribution plan and real two-process DDP."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import model_io
import reviews
import split_dataset
import train

METRIC_LINE = re.compile(r"^\[metric\] (train_loss|validation_loss|validation_accuracy)=(\d+\.\d{6}) epoch=(\d+) step=(\d+)$")


def metric_lines(log: str) -> list[tuple[str, float, int, int]]:
    found = []
    for line in log.splitlines():
        match = METRIC_LINE.match(line)
        if match:
            name, value, epoch, step = match.groups()
            found.append((name, float(value), int(epoch), int(step)))
    return found


def train_args(tiny_model_dir: Path, prepared_dir: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--model-name-or-path", str(tiny_model_dir),
        "--train-dir", str(prepared_dir / "train"),
        "--validation-dir", str(prepared_dir / "validation"),
        "--model-dir", str(tmp_path / "model"),
        "--checkpoint-dir", str(tmp_path / "checkpoints"),
        "--output-data-dir", str(tmp_path / "output"),
        "--hosts", '["algo-1"]', "--current-host", "algo-1", "--num-gpus", "0",
        "--learning-rate", "0.003", "--warmup-ratio", "0", "--train-batch-size", "16",
        *extra,
    ]


# ---------------------------------------------------------------------------- the toolkit run


def test_training_job_saves_a_deployable_artifact(training_run):
    model_dir = training_run.job.model
    config = json.loads((model_dir / "config.json").read_text())
    assert {int(k): v for k, v in config["id2label"].items()} == reviews.ID2LABEL
    assert config["label2id"] == reviews.LABEL2ID
    assert (model_dir / "tokenizer.json").is_file()
    assert model_io.read_metadata(model_dir).max_seq_length == 32  # the prepared rows' width
    # The serving code travels inside the artifact, so it deploys without a repack step.
    for name in model_io.SERVING_CODE_FILES:
        assert (model_dir / "code" / name).read_bytes() == (Path(model_io.__file__).parent / name).read_bytes()
    assert not (model_dir / "code" / "requirements.txt").exists()
    assert (training_run.job.base / "output" / "success").exists()


def test_toolkit_passes_hyperparameters_and_sagemaker_variables(training_run):
    # The toolkit ran `python train.py --epochs 8 ...` with SM_CHANNEL_* and SM_MODEL_DIR set.
    log = training_run.log
    assert "train rows 96, validation rows 48" in log
    assert len(metric_lines(log)) == 3 * 8


def test_metric_lines_have_the_fixed_format_once_per_metric_and_epoch(training_run):
    lines = metric_lines(training_run.log)
    names_by_epoch = {}
    for name, _, epoch, step in lines:
        names_by_epoch.setdefault(epoch, []).append(name)
        assert step == epoch * 6  # 96 rows / batch 16
    assert names_by_epoch == {epoch: ["train_loss", "validation_loss", "validation_accuracy"] for epoch in range(1, 9)}
    history = json.loads((training_run.job.output_data / train.METRICS_FILE).read_text())["epochs"]
    last = {name: value for name, value, epoch, _ in lines if epoch == 8}
    assert last["validation_accuracy"] == pytest.approx(history[-1]["validation_accuracy"], abs=1e-6)


def test_the_tiny_model_learns_the_synthetic_reviews(training_run):
    lines = metric_lines(training_run.log)
    train_losses = [value for name, value, _, _ in lines if name == "train_loss"]
    final_accuracy = [value for name, value, _, _ in lines if name == "validation_accuracy"][-1]
    assert train_losses[-1] < train_losses[0] - 0.2
    assert final_accuracy > 0.55  # chance is 1/3


# ---------------------------------------------------------------------------- checkpoints


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(
    tiny_model_dir, prepared_dir, tmp_path, capsys, monkeypatch
):
    common = ("--epochs", "2", "--checkpoint-every-steps", "4", "--progress-every-seconds", "1000")
    train.main(train_args(tiny_model_dir, prepared_dir, tmp_path / "reference", *common))
    reference_log = capsys.readouterr().out

    class SpotInterruption(Exception):
        pass

    real_save = train.save_checkpoint

    def save_then_stop(*args, **kwargs):
        real_save(*args, **kwargs)
        raise SpotInterruption

    monkeypatch.setattr(train, "save_checkpoint", save_then_stop)
    interrupted = train_args(tiny_model_dir, prepared_dir, tmp_path / "interrupted", *common)
    with pytest.raises(SpotInterruption):
        train.main(interrupted)  # stops right after the checkpoint at step 4 of epoch 1
    capsys.readouterr()
    monkeypatch.setattr(train, "save_checkpoint", real_save)

    train.main(interrupted)
    resumed_log = capsys.readouterr().out
    assert "resuming from" in resumed_log and "0 epochs and 4 batches done, step 4" in resumed_log
    assert metric_lines(resumed_log) == metric_lines(reference_log)
    reference = model_io.load_for_inference(tmp_path / "reference" / "model")[0].state_dict()
    resumed = model_io.load_for_inference(tmp_path / "interrupted" / "model")[0].state_dict()
    assert reference.keys() == resumed.keys()
    for name in reference:
        torch.testing.assert_close(resumed[name], reference[name], rtol=0, atol=1e-6, msg=name)


def test_a_checkpoint_from_another_run_is_refused(tiny_model_dir, prepared_dir, tmp_path, capsys):
    train.main(train_args(tiny_model_dir, prepared_dir, tmp_path, "--max-steps", "2"))
    with pytest.raises(RuntimeError, match="written by a different run"):
        train.main(train_args(tiny_model_dir, prepared_dir, tmp_path, "--max-steps", "3"))


def test_max_steps_stops_early_and_still_validates_and_saves(tiny_model_dir, prepared_dir, tmp_path, capsys):
    train.main(train_args(tiny_model_dir, prepared_dir, tmp_path, "--epochs", "3", "--max-steps", "2"))
    lines = metric_lines(capsys.readouterr().out)
    assert [(name, epoch, step) for name, _, epoch, step in lines] == [
        ("train_loss", 1, 2), ("validation_loss", 1, 2), ("validation_accuracy", 1, 2)
    ]
    assert (tmp_path / "model" / "model.safetensors").is_file()


# ---------------------------------------------------------------------------- arguments and data


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("False", False), ("1", True), ("no", False)])
def test_boolean_hyperparameters_arrive_as_strings(text, expected):
    assert train.build_parser().parse_args(["--trim-padding", text]).trim_padding is expected


def test_bad_hyperparameters_are_refused_with_the_argument_name(tmp_path, capsys):
    base = ["--train-dir", str(tmp_path), "--validation-dir", str(tmp_path)]
    for bad, fragment in [
        (["--trim-padding", "maybe"], "--trim-padding"),
        (["--epochs", "0"], "--epochs"),
        (["--warmup-ratio", "1.5"], "--warmup-ratio"),
        (["--hosts", '["algo-1"]', "--current-host", "algo-9"], "--current-host"),
    ]:
        with pytest.raises(SystemExit):
            train.parse_args(base + bad)
        assert fragment in capsys.readouterr().err


def test_channels_default_to_the_sagemaker_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "train"))
    monkeypatch.setenv("SM_CHANNEL_VALIDATION", str(tmp_path / "validation"))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("SM_HOSTS", '["algo-1", "algo-2"]')
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-2")
    monkeypatch.setenv("SM_NUM_GPUS", "4")
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "opt-ml"))
    args = train.parse_args([])
    assert (args.train_dir, args.validation_dir, args.model_dir) == (
        str(tmp_path / "train"), str(tmp_path / "validation"), str(tmp_path / "model"))
    assert (args.hosts, args.current_host, args.num_gpus) == (["algo-1", "algo-2"], "algo-2", 4)
    assert args.checkpoint_dir == str(tmp_path / "opt-ml" / "checkpoints")
    assert args.tokenizer_name_or_path == args.model_name_or_path == "roberta-base"


def test_batches_are_trimmed_to_their_longest_review(prepared_dir):
    split = split_dataset.load_split(prepared_dir / "train", pad_token_id=1)
    lengths = (split.input_ids != 1).sum(dim=1)
    rows = [int(lengths.argmin()), int(lengths.argmax())]
    trimmed = split_dataset.TrimmedBatchCollator(split, trim_padding=True)(rows[:1])
    assert trimmed["input_ids"].shape == (1, int(lengths.min()))
    assert trimmed["attention_mask"].all()
    both = split_dataset.TrimmedBatchCollator(split, trim_padding=True)(rows)
    assert both["input_ids"].shape == (2, int(lengths.max()))
    assert both["attention_mask"].sum(dim=1).tolist() == [int(lengths.min()), int(lengths.max())]
    untrimmed = split_dataset.TrimmedBatchCollator(split, trim_padding=False)(rows)
    assert untrimmed["input_ids"].shape == (2, 32)
    assert both["labels"].tolist() == [int(split.label_ids[i]) for i in rows]


def test_a_malformed_prepared_record_is_reported_with_its_file_and_line(tmp_path):
    good = {"input_ids": [0, 5, 2], "label_id": 1, "review_body": "ok"}
    reviews.write_jsonl(tmp_path / "part-algo-1.jsonl", [good, {**good, "label_id": 7}])
    with pytest.raises(ValueError, match=r"part-algo-1\.jsonl:2: label_id must be one of \[0, 1, 2\]"):
        split_dataset.load_split(tmp_path, pad_token_id=1)
    with pytest.raises(FileNotFoundError, match="no prepared .jsonl files"):
        split_dataset.load_split(tmp_path / "missing", pad_token_id=1)


def test_splits_tokenized_with_another_tokenizer_are_refused(tiny_model_dir, tmp_path):
    record = {"input_ids": [0, 50000, 2], "label_id": 1, "review_body": "x"}
    for split in ("train", "validation"):
        reviews.write_jsonl(tmp_path / "prepared" / split / "part-algo-1.jsonl", [record] * 4)
    with pytest.raises(ValueError, match="another tokenizer"):
        train.main(train_args(tiny_model_dir, tmp_path / "prepared", tmp_path))


# ---------------------------------------------------------------------------- distribution


def test_one_host_without_gpus_trains_in_one_process():
    plan = train.plan_distributed(["algo-1"], "algo-1", 0, environ={})
    assert not plan.enabled
    assert (plan.world_size, plan.processes_per_host, plan.backend) == (1, 1, "gloo")


def test_one_host_with_several_gpus_gets_a_process_per_gpu():
    plan = train.plan_distributed(["algo-1"], "algo-1", 4, environ={})
    assert plan.enabled
    assert (plan.world_size, plan.processes_per_host, plan.backend) == (4, 4, "nccl")
    assert [plan.global_rank(local) for local in range(4)] == [0, 1, 2, 3]


def test_several_hosts_rendezvous_at_the_first_host():
    plan = train.plan_distributed(["algo-1", "algo-2", "algo-3"], "algo-3", 8, master_port=1234, environ={})
    assert (plan.world_size, plan.node_rank, plan.master_addr, plan.master_port) == (24, 2, "algo-1", 1234)
    assert plan.global_rank(0) == 16 and plan.global_rank(7) == 23
    cpu_hosts = train.plan_distributed(["algo-1", "algo-2"], "algo-2", 0, environ={})
    assert (cpu_hosts.world_size, cpu_hosts.node_rank, cpu_hosts.backend) == (2, 1, "gloo")


def test_processes_started_by_torchrun_follow_its_environment():
    environ = {"WORLD_SIZE": "8", "RANK": "5", "LOCAL_WORLD_SIZE": "4", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "7777"}
    plan = train.plan_distributed(["algo-1", "algo-2"], "algo-2", 4, environ=environ)
    assert plan.launched_by_torchrun
    assert (plan.world_size, plan.processes_per_host, plan.node_rank, plan.master_addr, plan.master_port) == (
        8, 4, 1, "10.0.0.1", 7777)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_hosts_train_together_with_ddp_and_only_rank_0_reports(tiny_model_dir, prepared_dir, tmp_path):
    """Two CPU 'hosts' on this machine (127.0.0.1 is the first, the rendezvous) with gloo."""
    hosts = ["127.0.0.1", "localhost"]
    port = str(_free_port())
    environment = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    processes = []
    for host in hosts:
        args = train_args(tiny_model_dir, prepared_dir, tmp_path / host, "--epochs", "2",
                          "--progress-every-seconds", "1000")
        args[args.index("--hosts") + 1] = json.dumps(hosts)
        args[args.index("--current-host") + 1] = host
        processes.append(subprocess.Popen(
            [sys.executable, "train.py", *args, "--master-port", port],
            cwd=Path(train.__file__).parent, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    logs = [process.communicate(timeout=300)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], logs
    rank0, rank1 = logs
    assert "world size 2" in rank0
    # 96 rows over 2 ranks, batch 16: 3 steps per epoch.
    assert [(n, e, s) for n, _, e, s in metric_lines(rank0)] == [
        (name, epoch, 3 * epoch) for epoch in (1, 2) for name in ("train_loss", "validation_loss", "validation_accuracy")
    ]
    assert metric_lines(rank1) == []
    assert (tmp_path / hosts[0] / "model" / "model.safetensors").is_file()
    assert not (tmp_path / hosts[1] / "model").exists()


def test_a_checkpoint_with_another_label_set_gets_a_fresh_three_class_head(tiny_model_dir, tmp_path):
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(tiny_model_dir, num_labels=2, id2label={0: "bad", 1: "good"},
                                        label2id={"bad": 0, "good": 1})
    AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path / "binary")
    model = model_io.load_classifier_for_training(str(tmp_path / "binary"))
    assert model.config.id2label == reviews.ID2LABEL
    assert model.classifier.out_proj.out_features == 3


def test_balanced_class_weights_make_every_class_weigh_the_same_in_the_loss():
    import torch

    import train

    # 6 negative, 3 neutral, 1 positive: 10 / (3 x count).
    labels = torch.tensor([0] * 6 + [1] * 3 + [2])
    weights = train.class_weights(labels, 3, "balanced")
    assert weights.tolist() == pytest.approx([10 / 18, 10 / 9, 10 / 3])
    assert (weights * torch.bincount(labels)).tolist() == pytest.approx([10 / 3] * 3)
    assert train.class_weights(torch.tensor([0, 0, 2]), 3, "balanced").tolist() == pytest.approx([0.5, 0.0, 1.0])
    assert train.class_weights(labels, 3, "none") is None
