"""Loading and saving the review classifier: the Auto-class calls, the artifact layout in a
SageMaker model directory (weights, tokenizer, label names, serving code) and the shared
forward pass, so that training, evaluation and serving treat the model the same way."""

from __future__ import annotations

import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import torch

import reviews

# Written beside config.json; what serving needs to tokenize exactly as training did.
ARTIFACT_METADATA_FILE = "review_classifier.json"
# The serving container imports <model dir>/code/inference.py (SAGEMAKER_PROGRAM defaults to
# inference.py), so shipping it inside the artifact means it deploys without a repack step.
SERVING_CODE_DIR = "code"
SERVING_CODE_FILES: tuple[str, ...] = ("inference.py", "reviews.py", "model_io.py")
MODEL_ARCHIVE_NAME = "model.tar.gz"


@dataclass(frozen=True)
class ArtifactMetadata:
    """What the artifact records about how it was trained, beyond the Hugging Face files."""

    max_seq_length: int
    label_names: tuple[str, ...] = reviews.LABEL_NAMES
    base_model: str = ""
    # How prepare cut long texts (reviews.TRUNCATIONS): serving must cut them the same way.
    truncation: str = reviews.DEFAULT_TRUNCATION

    def to_json(self) -> dict:
        return {
            "max_seq_length": self.max_seq_length,
            "label_names": list(self.label_names),
            "base_model": self.base_model,
            "truncation": self.truncation,
        }

    @classmethod
    def from_json(cls, data: dict) -> "ArtifactMetadata":
        return cls(
            max_seq_length=int(data["max_seq_length"]),
            label_names=tuple(data.get("label_names", reviews.LABEL_NAMES)),
            base_model=str(data.get("base_model", "")),
            # Artifacts from before head_tail were trained on the head of long texts.
            truncation=str(data.get("truncation", "head")),
        )


def pick_device(local_rank: int | None = None) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank or 0)
    return torch.device("cpu")


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name_or_path)


def load_classifier_for_training(model_name_or_path: str):
    """The pretrained encoder with a 3-class head (a fresh one if the checkpoint has none)."""
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        model_name_or_path,
        num_labels=len(reviews.LABEL_NAMES),
        id2label=dict(reviews.ID2LABEL),
        label2id=dict(reviews.LABEL2ID),
        # A checkpoint fine-tuned for another label set gets a fresh 3-class head too.
        ignore_mismatched_sizes=True,
    )


def save_artifact(model, tokenizer, model_dir: Path, metadata: ArtifactMetadata) -> None:
    """save_pretrained the model and tokenizer, record the metadata and copy the serving code
    into model_dir/code."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    # Unwrap DistributedDataParallel so the saved keys carry no "module." prefix.
    getattr(model, "module", model).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    (model_dir / ARTIFACT_METADATA_FILE).write_text(json.dumps(metadata.to_json(), indent=2) + "\n")
    copy_serving_code(model_dir)


def copy_serving_code(model_dir: Path, source_dir: Path | None = None) -> Path:
    source_dir = Path(source_dir or Path(__file__).resolve().parent)
    code_dir = Path(model_dir) / SERVING_CODE_DIR
    code_dir.mkdir(parents=True, exist_ok=True)
    for name in SERVING_CODE_FILES:
        shutil.copy2(source_dir / name, code_dir / name)
    return code_dir


def read_metadata(model_dir: Path) -> ArtifactMetadata:
    path = Path(model_dir) / ARTIFACT_METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {model_dir} is not a review classifier artifact")
    return ArtifactMetadata.from_json(json.loads(path.read_text()))


def load_for_inference(model_dir: Path, device: torch.device | None = None):
    """(model in eval mode on device, tokenizer, metadata) from a saved artifact directory."""
    from transformers import AutoModelForSequenceClassification

    model_dir = Path(model_dir)
    metadata = read_metadata(model_dir)
    device = device or pick_device()
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    saved_labels = tuple(model.config.id2label[i] for i in range(model.config.num_labels))
    if saved_labels != reviews.LABEL_NAMES:
        raise ValueError(f"{model_dir}: the model's labels {saved_labels} are not {reviews.LABEL_NAMES}")
    model.to(device).eval()
    return model, load_tokenizer(str(model_dir)), metadata


def class_probabilities(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the three classes for one batch, without autograd bookkeeping."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
    return torch.softmax(logits.float(), dim=-1).cpu()


def pack_model_archive(model_dir: Path, archive_path: Path) -> Path:
    """model.tar.gz as SageMaker packs SM_MODEL_DIR: its contents at the archive root."""
    model_dir, archive_path = Path(model_dir), Path(archive_path)
    archive_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive_path, "w:gz") as archive:
        for entry in sorted(model_dir.iterdir()):
            archive.add(entry, arcname=entry.name)
    return archive_path


def unpack_model_archive(archive_path: Path, destination: Path) -> Path:
    """Extract model.tar.gz (or accept a directory that already holds the artifact)."""
    archive_path, destination = Path(archive_path), Path(destination)
    if archive_path.is_dir():
        if (archive_path / ARTIFACT_METADATA_FILE).is_file():
            return archive_path
        archive_path = archive_path / MODEL_ARCHIVE_NAME
    if not archive_path.is_file():
        raise FileNotFoundError(f"model archive {archive_path} does not exist")
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive_path, "r:gz") as archive:
        # The "data" filter refuses absolute paths, links outside and device files (PEP 706).
        if hasattr(tarfile, "data_filter"):
            archive.extractall(destination, filter="data")
        else:  # pragma: no cover - Python < 3.11.4
            archive.extractall(destination)
    return destination
