"""SageMaker training entry point: fine-tunes a BERT-family encoder on the prepared splits to
classify reviews as negative / neutral / positive, and saves a deployable artifact.

Runs as `python train.py --hyperparameter value ...` with SageMaker's SM_* variables (or the
same paths given as arguments), in one process, or with DistributedDataParallel when the job
has more than one host or GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.distributed as dist

import model_io
import reviews
import split_dataset

CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "training_metrics.json"
DEFAULT_MASTER_PORT = 29500


# ---------------------------------------------------------------------------- arguments


CLASS_WEIGHTINGS = ("balanced", "none")


def class_weights(label_ids: torch.Tensor, num_labels: int, weighting: str) -> torch.Tensor | None:
    """The loss's per-class weights: `balanced` gives rows / (classes x rows of the class), as
    scikit-learn's compute_class_weight does; a class without rows gets 0 (it has no loss terms)."""
    if weighting == "none":
        return None
    counts = torch.bincount(label_ids.flatten(), minlength=num_labels).double()
    weights = torch.where(counts > 0, counts.sum() / (num_labels * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights.float()


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return number


def _default_checkpoint_dir() -> str:
    # SageMaker syncs /opt/ml/checkpoints with S3 for spot training; outside SageMaker the
    # training toolkit's SAGEMAKER_BASE_DIR stands in for /opt/ml.
    return os.path.join(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"), "checkpoints")


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    model = parser.add_argument_group("model")
    model.add_argument("--model-name-or-path", default="roberta-base",
                       help="Hugging Face model id or a local directory with a BERT-family model")
    model.add_argument("--tokenizer-name-or-path", default=None,
                       help="tokenizer to save with the model; must be the one prepare used (default: the model)")
    hp = parser.add_argument_group("hyperparameters")
    hp.add_argument("--epochs", type=_positive_int, default=1)
    hp.add_argument("--train-batch-size", type=_positive_int, default=32, help="per process")
    hp.add_argument("--eval-batch-size", type=_positive_int, default=64, help="per process")
    hp.add_argument("--learning-rate", type=float, default=3e-5)
    hp.add_argument("--weight-decay", type=float, default=0.01)
    hp.add_argument("--warmup-ratio", type=float, default=0.1, help="share of all steps spent warming up")
    hp.add_argument("--max-grad-norm", type=float, default=1.0)
    hp.add_argument("--seed", type=int, default=42)
    hp.add_argument("--class-weighting", choices=CLASS_WEIGHTINGS, default="balanced",
                    help="balanced: weigh each class's loss by rows / (classes x its rows), so a minority class "
                         "(the neutral fifth of reviews) counts as much as the others without down-sampling; none: plain loss")
    hp.add_argument("--trim-padding", type=reviews.bool_argument, default=True,
                    help="cut each batch to its longest review instead of max_seq_length")
    hp.add_argument("--mixed-precision", choices=("auto", "no", "fp16", "bf16"), default="auto",
                    help="auto: bf16 where the GPU has it, else fp16; never on CPU")
    limits = parser.add_argument_group("limits (small runs, CI)")
    limits.add_argument("--max-steps", type=int, default=0, help="stop after this many optimizer steps (0: no limit)")
    limits.add_argument("--max-train-samples", type=int, default=0, help="use only the first N training rows (0: all)")
    limits.add_argument("--max-eval-samples", type=int, default=0, help="use only the first N validation rows (0: all)")
    ops = parser.add_argument_group("operations")
    ops.add_argument("--checkpoint-dir", default=_default_checkpoint_dir())
    ops.add_argument("--checkpoint-every-steps", type=int, default=500,
                     help="also checkpoint within an epoch every N steps (0: only at epoch ends)")
    ops.add_argument("--progress-every-seconds", type=float, default=30.0)
    ops.add_argument("--master-port", type=int, default=DEFAULT_MASTER_PORT)
    sm = parser.add_argument_group("SageMaker paths (default from SM_* variables)")
    sm.add_argument("--train-dir", default=env.get("SM_CHANNEL_TRAIN"))
    sm.add_argument("--validation-dir", default=env.get("SM_CHANNEL_VALIDATION"))
    sm.add_argument("--model-dir", default=env.get("SM_MODEL_DIR", "/opt/ml/model"))
    sm.add_argument("--output-data-dir", default=env.get("SM_OUTPUT_DATA_DIR"))
    sm.add_argument("--hosts", type=json.loads, default=env.get("SM_HOSTS", '["localhost"]'),
                    help="JSON list of host names")
    sm.add_argument("--current-host", default=env.get("SM_CURRENT_HOST", "localhost"))
    sm.add_argument("--num-gpus", type=int, default=int(env.get("SM_NUM_GPUS", torch.cuda.device_count())))
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.train_dir or not args.validation_dir:
        parser.error("set --train-dir and --validation-dir (or SM_CHANNEL_TRAIN and SM_CHANNEL_VALIDATION)")
    if not 0.0 <= args.warmup_ratio < 1.0:
        parser.error(f"--warmup-ratio must be in [0, 1), got {args.warmup_ratio}")
    if args.learning_rate <= 0:
        parser.error(f"--learning-rate must be > 0, got {args.learning_rate}")
    if not isinstance(args.hosts, list) or not args.hosts or args.current_host not in args.hosts:
        parser.error(f"--current-host {args.current_host!r} must be one of --hosts {args.hosts!r}")
    for name in ("max_steps", "max_train_samples", "max_eval_samples", "checkpoint_every_steps"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    args.tokenizer_name_or_path = args.tokenizer_name_or_path or args.model_name_or_path
    return args


# ---------------------------------------------------------------------------- distribution


@dataclass(frozen=True)
class DistributedPlan:
    """How many processes train together and where this host's processes sit among them."""

    world_size: int
    processes_per_host: int
    node_rank: int
    master_addr: str
    master_port: int
    backend: str
    launched_by_torchrun: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def global_rank(self, local_rank: int) -> int:
        return self.node_rank * self.processes_per_host + local_rank


def plan_distributed(
    hosts: Sequence[str],
    current_host: str,
    num_gpus: int,
    *,
    master_port: int = DEFAULT_MASTER_PORT,
    environ: Mapping[str, str] | None = None,
) -> DistributedPlan:
    """One process per GPU on every host (one per host without GPUs); the first host is the
    rendezvous. If torchrun already started the processes, follow what it says."""
    environ = os.environ if environ is None else environ
    backend = "nccl" if num_gpus > 0 else "gloo"
    if "WORLD_SIZE" in environ and "RANK" in environ and "LOCAL_WORLD_SIZE" in environ:
        local_world = int(environ["LOCAL_WORLD_SIZE"])
        return DistributedPlan(
            world_size=int(environ["WORLD_SIZE"]),
            processes_per_host=local_world,
            node_rank=int(environ["RANK"]) // local_world,
            master_addr=environ.get("MASTER_ADDR", hosts[0]),
            master_port=int(environ.get("MASTER_PORT", master_port)),
            backend=backend,
            launched_by_torchrun=True,
        )
    processes_per_host = max(num_gpus, 1)
    ordered_hosts = list(hosts)
    return DistributedPlan(
        world_size=len(ordered_hosts) * processes_per_host,
        processes_per_host=processes_per_host,
        node_rank=ordered_hosts.index(current_host),
        master_addr=ordered_hosts[0],
        master_port=master_port,
        backend=backend,
    )


@dataclass(frozen=True)
class Worker:
    """This process's place in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def log(worker: Worker, message: str) -> None:
    # Only rank 0 talks, so each metric appears once in the job's log.
    if worker.is_main:
        print(message, flush=True)


def all_reduce_sums(worker: Worker, *values: float) -> list[float]:
    if not worker.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=worker.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


# ---------------------------------------------------------------------------- training pieces


@dataclass
class TrainingState:
    """Where training stands; saved in every checkpoint so a restarted spot job resumes."""

    epoch: int = 0  # completed epochs
    batches_done_in_epoch: int = 0
    global_step: int = 0
    epoch_loss_sum: float = 0.0
    epoch_examples: int = 0
    history: list[dict] = field(default_factory=list)


def checkpoint_fingerprint(args: argparse.Namespace, train_rows: int) -> dict:
    """What must match for a checkpoint to be resumable by this run."""
    return {
        "model_name_or_path": str(args.model_name_or_path),
        "train_rows": train_rows,
        "train_batch_size": args.train_batch_size,
        "epochs": args.epochs,
        "seed": args.seed,
        "max_steps": args.max_steps,
        "class_weighting": args.class_weighting,
    }


def save_checkpoint(path: Path, model, optimizer, scheduler, scaler, state: TrainingState, fingerprint: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": getattr(model, "module", model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "state": asdict(state),
        "fingerprint": fingerprint,
        # Dropout draws from the global generator: restoring it makes a resumed run repeat
        # the uninterrupted one exactly.
        "rng": {
            "cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
    }
    partial = path.with_suffix(".partial")
    torch.save(payload, partial)
    # A spot interruption mid-write must never leave a truncated checkpoint behind.
    os.replace(partial, path)


def load_checkpoint(path: Path, model, optimizer, scheduler, scaler, fingerprint: dict, device) -> TrainingState:
    payload = torch.load(path, map_location=device, weights_only=True)
    if payload["fingerprint"] != fingerprint:
        raise RuntimeError(
            f"checkpoint {path} was written by a different run ({payload['fingerprint']}, this run: "
            f"{fingerprint}); delete it or point --checkpoint-dir elsewhere"
        )
    getattr(model, "module", model).load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    if scaler is not None and payload["scaler"] is not None:
        scaler.load_state_dict(payload["scaler"])
    torch.set_rng_state(payload["rng"]["cpu"].cpu())
    if torch.cuda.is_available() and payload["rng"]["cuda"]:
        torch.cuda.set_rng_state_all([state.cpu() for state in payload["rng"]["cuda"]])
    return TrainingState(**payload["state"])


def linear_warmup_schedule(optimizer, warmup_steps: int, total_steps: int):
    """Learning rate rises linearly for warmup_steps, then falls linearly to 0 at total_steps."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(warmup_steps, 1)
        return max(0.0, (total_steps - step) / max(total_steps - warmup_steps, 1))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def build_optimizer(model, learning_rate: float, weight_decay: float) -> torch.optim.Optimizer:
    # No decay on biases and normalisation weights (the usual BERT recipe).
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=learning_rate,
    )


def autocast_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or mode == "no":
        return None
    if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def make_grad_scaler(dtype: torch.dtype | None):
    if dtype is not torch.float16:
        return None
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()  # pragma: no cover - torch < 2.3 (older DLCs)


class ProgressReporter:
    """A line every few seconds during long epochs: step, loss, throughput and time left."""

    def __init__(self, worker: Worker, epoch: int, epochs: int, steps_in_epoch: int, every_seconds: float):
        self.worker, self.epoch, self.epochs = worker, epoch, epochs
        self.steps_in_epoch, self.every_seconds = steps_in_epoch, every_seconds
        self.started = self.last = time.monotonic()
        self.samples = 0

    def update(self, step_in_epoch: int, batch_size: int, running_loss: float) -> None:
        self.samples += batch_size * self.worker.world_size
        now = time.monotonic()
        if now - self.last < self.every_seconds and step_in_epoch not in (1, self.steps_in_epoch):
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        rate = self.samples / elapsed
        done = step_in_epoch / self.steps_in_epoch
        left = elapsed / max(done, 1e-9) * (1 - done) if done else float("nan")
        log(
            self.worker,
            f"epoch {self.epoch}/{self.epochs} step {step_in_epoch}/{self.steps_in_epoch} ({done:.0%}) "
            f"loss {running_loss:.4f} {rate:.1f} samples/s, about {left:.0f}s left in the epoch",
        )


def evaluate_split(model, loader, worker: Worker, dtype) -> tuple[float, float]:
    """(mean loss, accuracy) over this rank's shard, summed across every rank."""
    model.eval()
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")
    loss_sum = correct = count = 0.0
    with torch.inference_mode():
        for batch in loader:
            labels = batch["labels"].to(worker.device)
            with torch.autocast(worker.device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(
                    input_ids=batch["input_ids"].to(worker.device),
                    attention_mask=batch["attention_mask"].to(worker.device),
                ).logits
            loss_sum += float(loss_fn(logits.float(), labels))
            correct += float((logits.argmax(dim=-1) == labels).sum())
            count += labels.numel()
    loss_sum, correct, count = all_reduce_sums(worker, loss_sum, correct, count)
    model.train()
    return loss_sum / max(count, 1), correct / max(count, 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


# ---------------------------------------------------------------------------- the recipe


def train(args: argparse.Namespace, worker: Worker) -> TrainingState:
    seed_everything(args.seed)
    tokenizer = model_io.load_tokenizer(args.tokenizer_name_or_path)
    if tokenizer.pad_token_id is None:
        raise ValueError(f"tokenizer {args.tokenizer_name_or_path} has no padding token")
    train_split = split_dataset.load_split(
        Path(args.train_dir), pad_token_id=tokenizer.pad_token_id, max_rows=args.max_train_samples or None
    )
    validation_split = split_dataset.load_split(
        Path(args.validation_dir), pad_token_id=tokenizer.pad_token_id, max_rows=args.max_eval_samples or None
    )
    log(worker, f"train rows {len(train_split)}, validation rows {len(validation_split)}, "
                f"max_seq_length {train_split.max_seq_length}, device {worker.device}, world size {worker.world_size}")

    model = model_io.load_classifier_for_training(args.model_name_or_path)
    largest_token_id = int(max(train_split.input_ids.max(), validation_split.input_ids.max()))
    if largest_token_id >= model.config.vocab_size:
        raise ValueError(
            f"the prepared splits hold token id {largest_token_id} but {args.model_name_or_path} has a "
            f"vocabulary of {model.config.vocab_size}: were they tokenized with another tokenizer?"
        )
    model.to(worker.device)
    if worker.distributed:
        device_ids = [worker.local_rank] if worker.device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    train_sampler = torch.utils.data.distributed.DistributedSampler(
        split_dataset.SplitRows(train_split), num_replicas=worker.world_size, rank=worker.rank,
        shuffle=True, seed=args.seed,
    )
    pin = worker.device.type == "cuda"
    train_loader = torch.utils.data.DataLoader(
        split_dataset.SplitRows(train_split), batch_size=args.train_batch_size, sampler=train_sampler,
        collate_fn=split_dataset.TrimmedBatchCollator(train_split, trim_padding=args.trim_padding), pin_memory=pin,
        # Its own generator: starting an epoch must not draw from the global one (see checkpoints).
        generator=torch.Generator().manual_seed(args.seed),
    )
    # Each rank validates its own rows (no padding duplicates), then the sums are combined.
    validation_rows = torch.utils.data.Subset(
        split_dataset.SplitRows(validation_split), range(worker.rank, len(validation_split), worker.world_size)
    )
    validation_loader = torch.utils.data.DataLoader(
        validation_rows, batch_size=args.eval_batch_size, shuffle=False,
        collate_fn=split_dataset.TrimmedBatchCollator(validation_split, trim_padding=args.trim_padding),
        pin_memory=pin,
    )

    steps_per_epoch = len(train_loader)
    total_steps = steps_per_epoch * args.epochs
    if args.max_steps:
        total_steps = min(total_steps, args.max_steps)
    optimizer = build_optimizer(model, args.learning_rate, args.weight_decay)
    scheduler = linear_warmup_schedule(optimizer, round(args.warmup_ratio * total_steps), total_steps)
    dtype = autocast_dtype(args.mixed_precision, worker.device)
    scaler = make_grad_scaler(dtype)
    weights = class_weights(train_split.label_ids, len(reviews.LABEL_NAMES), args.class_weighting)
    if weights is not None:
        log(worker, "class weights " + ", ".join(f"{reviews.ID2LABEL[i]} {w:.3f}" for i, w in enumerate(weights.tolist())))
        weights = weights.to(worker.device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)

    checkpoint_path = Path(args.checkpoint_dir) / CHECKPOINT_FILE
    fingerprint = checkpoint_fingerprint(args, len(train_split))
    state = TrainingState()
    if checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path, model, optimizer, scheduler, scaler, fingerprint, worker.device)
        log(worker, f"resuming from {checkpoint_path}: {state.epoch} epochs and "
                    f"{state.batches_done_in_epoch} batches done, step {state.global_step}")

    def checkpoint() -> None:
        if worker.is_main:
            save_checkpoint(checkpoint_path, model, optimizer, scheduler, scaler, state, fingerprint)
        if worker.distributed:
            dist.barrier()

    model.train()
    while state.epoch < args.epochs and state.global_step < total_steps:
        epoch_number = state.epoch + 1
        train_sampler.set_epoch(state.epoch)
        progress = ProgressReporter(worker, epoch_number, args.epochs, steps_per_epoch, args.progress_every_seconds)
        for batch_index, batch in enumerate(train_loader):
            # After a restart, replay the same shuffled order and skip what is already done.
            if batch_index < state.batches_done_in_epoch:
                continue
            labels = batch["labels"].to(worker.device, non_blocking=True)
            with torch.autocast(worker.device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(
                    input_ids=batch["input_ids"].to(worker.device, non_blocking=True),
                    attention_mask=batch["attention_mask"].to(worker.device, non_blocking=True),
                ).logits
            loss = loss_fn(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
            scheduler.step()

            state.global_step += 1
            state.batches_done_in_epoch = batch_index + 1
            state.epoch_loss_sum += loss.item() * labels.numel()
            state.epoch_examples += labels.numel()
            progress.update(batch_index + 1, labels.numel(), state.epoch_loss_sum / state.epoch_examples)
            if state.global_step >= total_steps:
                break
            if args.checkpoint_every_steps and state.global_step % args.checkpoint_every_steps == 0:
                checkpoint()

        loss_sum, examples = all_reduce_sums(worker, state.epoch_loss_sum, state.epoch_examples)
        validation_loss, validation_accuracy = evaluate_split(model, validation_loader, worker, dtype)
        epoch_metrics = {
            "train_loss": loss_sum / max(examples, 1),
            "validation_loss": validation_loss,
            "validation_accuracy": validation_accuracy,
        }
        for name, value in epoch_metrics.items():
            log(worker, reviews.format_metric_line(name, value, epoch=epoch_number, step=state.global_step))
        state.history.append({"epoch": epoch_number, "step": state.global_step, **epoch_metrics})
        state.epoch += 1
        state.batches_done_in_epoch, state.epoch_loss_sum, state.epoch_examples = 0, 0.0, 0
        checkpoint()

    if worker.is_main:
        metadata = model_io.ArtifactMetadata(
            max_seq_length=train_split.max_seq_length, base_model=str(args.model_name_or_path)
        )
        model_io.save_artifact(model, tokenizer, Path(args.model_dir), metadata)
        if args.output_data_dir:
            output = Path(args.output_data_dir)
            output.mkdir(parents=True, exist_ok=True)
            (output / METRICS_FILE).write_text(json.dumps({"epochs": state.history}, indent=2) + "\n")
        log(worker, f"saved the model, tokenizer and serving code to {args.model_dir}")
    return state


def run_worker(local_rank: int, args: argparse.Namespace, plan: DistributedPlan) -> None:
    """One training process: join the process group when there is one, then train."""
    rank = plan.global_rank(local_rank)
    device = model_io.pick_device(local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if plan.enabled:
        os.environ.setdefault("MASTER_ADDR", plan.master_addr)
        os.environ.setdefault("MASTER_PORT", str(plan.master_port))
        dist.init_process_group(plan.backend, init_method="env://", rank=rank, world_size=plan.world_size)
    try:
        train(args, Worker(rank=rank, world_size=plan.world_size, local_rank=local_rank, device=device))
    finally:
        if plan.enabled:
            dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    plan = plan_distributed(args.hosts, args.current_host, args.num_gpus, master_port=args.master_port)
    if plan.launched_by_torchrun:
        run_worker(int(os.environ.get("LOCAL_RANK", 0)), args, plan)
    elif plan.processes_per_host > 1:
        torch.multiprocessing.spawn(run_worker, args=(args, plan), nprocs=plan.processes_per_host, join=True)
    else:
        run_worker(0, args, plan)


if __name__ == "__main__":
    main(sys.argv[1:])
