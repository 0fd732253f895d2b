"""Prepared splits (JSON Lines of already tokenized reviews) as tensors, and batches whose
padding is trimmed to the longest review in the batch: training and evaluation read the
token ids prepare wrote and never tokenize again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

import reviews


@dataclass(frozen=True)
class TokenizedSplit:
    """One split: input_ids padded to a common length, labels, and the source texts."""

    input_ids: torch.Tensor  # [rows, max_seq_length], int64
    label_ids: torch.Tensor  # [rows], int64
    review_bodies: tuple[str, ...]
    pad_token_id: int

    def __len__(self) -> int:
        return int(self.label_ids.shape[0])

    @property
    def max_seq_length(self) -> int:
        return int(self.input_ids.shape[1])


def _validated(record: dict, where: str) -> tuple[list[int], int, str]:
    input_ids, label_id = record.get("input_ids"), record.get("label_id")
    if not isinstance(input_ids, list) or not input_ids or not all(
        isinstance(token, int) and not isinstance(token, bool) for token in input_ids
    ):
        raise ValueError(f"{where}: input_ids must be a non-empty list of integers")
    if label_id not in reviews.ID2LABEL or isinstance(label_id, bool):
        raise ValueError(f"{where}: label_id must be one of {sorted(reviews.ID2LABEL)}, got {label_id!r}")
    return input_ids, label_id, str(record.get("review_body", ""))


def load_split(split_dir: Path, *, pad_token_id: int, max_rows: int | None = None) -> TokenizedSplit:
    """Every part-*.jsonl under split_dir (in a stable order), optionally only the first max_rows."""
    files = reviews.split_files(Path(split_dir))
    if not files:
        raise FileNotFoundError(f"no prepared .jsonl files under {split_dir}")
    rows: list[list[int]] = []
    labels: list[int] = []
    bodies: list[str] = []
    for path in files:
        for line_number, record in enumerate(reviews.read_jsonl(path), start=1):
            input_ids, label_id, body = _validated(record, f"{path}:{line_number}")
            rows.append(input_ids)
            labels.append(label_id)
            bodies.append(body)
            if max_rows is not None and len(rows) >= max_rows:
                break
        if max_rows is not None and len(rows) >= max_rows:
            break
    if not rows:
        raise ValueError(f"the prepared files under {split_dir} hold no reviews")
    # prepare pads every row to max_seq_length; pad again only to tolerate uneven files.
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, : len(row)] = torch.tensor(row, dtype=torch.long)
    return TokenizedSplit(input_ids, torch.tensor(labels, dtype=torch.long), tuple(bodies), pad_token_id)


class SplitRows(torch.utils.data.Dataset):
    """Row indices into a TokenizedSplit; the collator does the gathering."""

    def __init__(self, split: TokenizedSplit):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> int:
        return index


class TrimmedBatchCollator:
    """Gathers rows into a batch and, when trim_padding is on, drops the padding columns that
    no review in the batch needs (attention cost grows with the square of the length)."""

    def __init__(self, split: TokenizedSplit, *, trim_padding: bool = True):
        self.split = split
        self.trim_padding = trim_padding

    def __call__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        input_ids = self.split.input_ids.index_select(0, index)
        attention_mask = (input_ids != self.split.pad_token_id).long()
        if self.trim_padding:
            # Last real token of the longest row (padding is on the right).
            positions = torch.arange(1, input_ids.shape[1] + 1)
            width = max(int((attention_mask * positions).max()), 1)
            input_ids, attention_mask = input_ids[:, :width], attention_mask[:, :width]
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "labels": self.split.label_ids.index_select(0, index),
        }
