"""Prompt datasets for the LLM path: files, reasoning-gym tasks, held-out splits, chat formatting.

A record is a dict with `prompt` (a string, or a list of chat messages {"role", "content"}),
`answer` (the gold answer / ground truth, any non-null value), and optionally `data_source` and
any metadata columns (`metadata`, `tests`, ...). Every field except `prompt` reaches the reward
functions as a column (llm/rewards.py, TRL's convention).

verl-format rows are accepted as they are: when `answer` is missing, `reward_model["ground_truth"]`
is used.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm.config import DataConfig

logger = logging.getLogger(__name__)

ON_BAD_RECORD = ("fail", "skip")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")


def _check_prompt(prompt: object) -> None:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError("'prompt' is an empty string")
        return
    if not isinstance(prompt, list) or not prompt:
        raise ValueError(
            f"'prompt' must be a string or a non-empty list of chat messages, got {type(prompt).__name__}"
        )
    for i, m in enumerate(prompt):
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("role"), str)
            or not isinstance(m.get("content"), str)
        ):
            raise ValueError(
                f"'prompt'[{i}] must be a message {{'role': str, 'content': str}}, got {m!r:.80}"
            )


def validate_record(raw: object) -> dict[str, Any]:
    """A checked copy of one record; ValueError says what is wrong (without the location)."""
    if not isinstance(raw, dict):
        raise ValueError(
            f"a record must be an object with 'prompt' and 'answer', got {type(raw).__name__}"
        )
    record = dict(raw)
    if "prompt" not in record:
        raise ValueError(f"missing required field 'prompt' (fields: {sorted(record)})")
    _check_prompt(record["prompt"])
    if record.get("answer") is None:
        rm = record.get("reward_model")
        if "answer" not in record and isinstance(rm, dict) and rm.get("ground_truth") is not None:
            record["answer"] = rm["ground_truth"]
        elif "answer" in record:
            raise ValueError("'answer' is null")
        else:
            raise ValueError(f"missing required field 'answer' (fields: {sorted(record)})")
    if "data_source" in record and not isinstance(record["data_source"], str):
        raise ValueError(f"'data_source' must be a string, got {record['data_source']!r:.80}")
    return record


def _jsonl_rows(path: Path) -> Iterator[tuple[str, object]]:
    """(location, parsed value or the exception) per non-blank line; bytes are decoded per line."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield where, ValueError(f"not UTF-8 ({e.reason} at byte {e.start})")
                continue
            if not line.strip():
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as e:
                yield where, ValueError(f"invalid JSON ({e.msg} at column {e.colno})")


def _json_array_rows(path: Path) -> Iterator[tuple[str, object]]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a JSON array of records ({e})") from e
    if not isinstance(rows, list):
        raise ValueError(f"{path}: a .json file must hold a JSON array of records (or JSON lines)")
    for i, row in enumerate(rows, start=1):
        yield f"{path}: record {i}", row


def _parquet_rows(path: Path) -> Iterator[tuple[str, object]]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several types for corrupt or non-Parquet files
        raise ValueError(f"{path}: cannot read Parquet ({type(e).__name__}: {e})") from e
    for i, row in enumerate(rows, start=1):
        yield f"{path}: row {i}", row


def load_records(path: str | Path, on_bad_record: str = "fail") -> list[dict]:
    """Records from a JSON-lines (.jsonl/.ndjson, or .json lines/array) or Parquet (.parquet) file.

    Args:
        path: the file; its suffix picks the format.
        on_bad_record: "fail" raises ValueError at the first malformed record, naming the file
            and line (row for Parquet); "skip" drops malformed records and logs one warning with
            their count. Blank lines are ignored.
    Returns:
        the records, in file order (at least one).
    """
    if on_bad_record not in ON_BAD_RECORD:
        raise ValueError(
            f"on_bad_record={on_bad_record!r} is not valid; expected one of {list(ON_BAD_RECORD)}"
        )
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset file {str(path)!r} does not exist")
    if path.is_dir():
        raise IsADirectoryError(
            f"dataset path {str(path)!r} is a directory, expected a .jsonl or .parquet file"
        )
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        rows = _parquet_rows(path)
    elif suffix == ".json" and path.read_bytes().lstrip()[:1] == b"[":
        rows = _json_array_rows(path)
    elif suffix in JSONL_SUFFIXES:
        rows = _jsonl_rows(path)
    else:
        raise ValueError(
            f"dataset file {str(path)!r} has suffix {path.suffix!r}; expected one of "
            f"{list(JSONL_SUFFIXES + PARQUET_SUFFIXES)}"
        )
    records: list[dict] = []
    skipped: list[str] = []
    for where, row in rows:
        try:
            if isinstance(row, Exception):
                raise row
            records.append(validate_record(row))
        except ValueError as e:
            if on_bad_record == "fail":
                raise ValueError(
                    f"{where}: {e} (use on_bad_record='skip' to drop malformed records)"
                ) from None
            skipped.append(f"{where}: {e}")
    if skipped:
        logger.warning(
            "skipped %d malformed record(s) of %s; first: %s", len(skipped), path, skipped[0]
        )
    if not records:
        raise ValueError(f"{path}: no valid records ({len(skipped)} malformed)")
    return records


def reasoning_gym_records(name: str, size: int, seed: int) -> list[dict]:
    """`size` procedural records of the reasoning-gym dataset `name` (offline, deterministic).

    Each record: prompt = the question, answer = the gold answer, data_source =
    "reasoning_gym/<name>", metadata = the entry's metadata (what the dataset's own scorer
    reads; the `reasoning_gym` reward passes it back).
    """
    import reasoning_gym
    from reasoning_gym.factory import DATASETS

    if name not in DATASETS:
        raise ValueError(
            f"reasoning-gym dataset {name!r} is not known; expected one of {sorted(DATASETS)}"
        )
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    dataset = reasoning_gym.create_dataset(name, size=size, seed=seed)
    return [
        {
            "prompt": entry["question"],
            "answer": entry["answer"],
            "data_source": f"reasoning_gym/{name}",
            "metadata": entry["metadata"],
        }
        for entry in dataset
    ]


def split_records(
    records: Sequence[dict], eval_fraction: float, seed: int
) -> tuple[list[dict], list[dict]]:
    """A deterministic (train, eval) split: round(eval_fraction * len) records held out (at least
    one when eval_fraction > 0), chosen by a seeded shuffle; both parts keep the input order."""
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction!r}")
    n = len(records)
    n_eval = round(eval_fraction * n)
    if eval_fraction > 0:
        n_eval = max(n_eval, 1)
    if n_eval >= n and n > 0:
        raise ValueError(f"eval_fraction={eval_fraction} leaves no training records out of {n}")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    train = [r for i, r in enumerate(records) if i not in held]
    evals = [r for i, r in enumerate(records) if i in held]
    return train, evals


def _records(spec: str, cfg: DataConfig) -> list[dict]:
    if spec.startswith("reasoning_gym:"):
        return reasoning_gym_records(
            spec.removeprefix("reasoning_gym:"), cfg.dataset_size, cfg.seed
        )
    return load_records(spec, on_bad_record=cfg.on_bad_record)


def load_datasets(cfg: DataConfig) -> tuple[list[dict], list[dict]]:
    """(train, eval) records for a DataConfig: eval_dataset, or eval_fraction split off dataset."""
    records = _records(cfg.dataset, cfg)
    if cfg.eval_dataset is not None:
        return records, _records(cfg.eval_dataset, cfg)
    if cfg.eval_fraction == 0:
        return records, []
    return split_records(records, cfg.eval_fraction, cfg.seed)


def to_messages(
    prompt: str | list[dict], system_prompt: str | None = None, instruction: str | None = None
) -> list[dict[str, str]]:
    """Chat messages for a prompt: `system_prompt` replaces any system message of the record, and
    `instruction` is appended to the last user message after a blank line."""
    _check_prompt(prompt)
    messages = (
        [{"role": "user", "content": prompt}]
        if isinstance(prompt, str)
        else [dict(m) for m in prompt]
    )
    if system_prompt is not None:
        messages = [{"role": "system", "content": system_prompt}] + [
            m for m in messages if m["role"] != "system"
        ]
    if instruction:
        users = [i for i, m in enumerate(messages) if m["role"] == "user"]
        if not users:
            raise ValueError("instruction given but the prompt has no user message to append it to")
        last = messages[users[-1]]
        last["content"] = f"{last['content']}\n\n{instruction}"
    return messages


def format_prompt(
    record: dict, tokenizer: Any, system_prompt: str | None = None, instruction: str | None = None
) -> str:
    """The text the policy is prompted with.

    With a tokenizer that has a chat template: `apply_chat_template(messages, tokenize=False,
    add_generation_prompt=True)`. Otherwise (no template, or tokenizer None) the message
    contents joined by blank lines: "system\\n\\nprompt".
    """
    if "prompt" not in record:
        raise ValueError(f"record has no 'prompt' field (fields: {sorted(record)})")
    messages = to_messages(record["prompt"], system_prompt, instruction)
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if not isinstance(text, str):
            raise ValueError(
                f"the tokenizer's chat template returned {type(text).__name__}, expected a string"
            )
        return text
    return "\n\n".join(m["content"] for m in messages)


def record_columns(records: Sequence[dict]) -> dict[str, list]:
    """Every field except `prompt` as a list over `records` (None where a record lacks it): the
    `columns` argument of `RewardSet`."""
    keys: dict[str, None] = {}
    for r in records:
        keys.update(dict.fromkeys(k for k in r if k != "prompt"))
    return {k: [r.get(k) for r in records] for k in keys}
