"""Prompt data: JSONL/Parquet loading and its errors, reasoning-gym records, splits, chat formatting."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from llm.data import (
    format_prompt,
    load_records,
    reasoning_gym_records,
    record_columns,
    split_records,
    to_messages,
)

DATA = Path(__file__).parent / "data"
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_tokenizer(chat_template: str | None) -> PreTrainedTokenizerFast:
    vocab = {"<unk>": 0, "<|end|>": 1, "hello": 2}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    out = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|end|>")
    out.chat_template = chat_template
    return out


def test_load_jsonl_fixture():
    records = load_records(DATA / "prompts.jsonl")
    assert len(records) == 3  # the blank line is ignored
    assert records[0] == {"prompt": "What is 2 + 3?", "answer": "5", "data_source": "toy/arith"}
    assert records[1]["prompt"][1] == {"role": "user", "content": "What is half of 1?"}
    assert records[1]["level"] == 2 and records[2]["tests"][0] == "assert add(1, 2) == 3"


def test_malformed_jsonl_names_file_and_line():
    path = DATA / "bad.jsonl"
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}:3: invalid JSON") as info:
        load_records(path)
    assert "on_bad_record='skip'" in str(info.value)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"prompt": "no answer here"}', "missing required field 'answer'"),
        ('["not", "an", "object"]', "a record must be an object"),
        ('{"prompt": "", "answer": "7"}', "'prompt' is an empty string"),
        ('{"prompt": [{"role": "user"}], "answer": "8"}', r"'prompt'\[0\] must be a message"),
        ('{"prompt": "q", "answer": null}', "'answer' is null"),
        ('{"prompt": 3, "answer": "1"}', "'prompt' must be a string or a non-empty list"),
        ('{"prompt": "q", "answer": "1", "data_source": 5}', "'data_source' must be a string"),
        ('{"answer": "1"}', "missing required field 'prompt'"),
    ],
)
def test_each_kind_of_bad_record_names_its_line(tmp_path, line, reason):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "ok", "answer": "1"}\n\n' + line + "\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}:3: {reason}"):
        load_records(path)


def test_non_utf8_line_names_its_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"prompt": "ok", "answer": "1"}\n{"prompt": "\xff", "answer": "1"}\n')
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}:2: not UTF-8"):
        load_records(path)


def test_skip_mode_drops_bad_records_and_warns_once(caplog):
    with caplog.at_level(logging.WARNING, logger="llm.data"):
        records = load_records(DATA / "bad.jsonl", on_bad_record="skip")
    assert [r["answer"] for r in records] == ["1", "2", "4", "9"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 5 malformed record(s)" in warnings[0].getMessage()
    assert "bad.jsonl:3" in warnings[0].getMessage()


def test_bad_arguments_and_files(tmp_path):
    with pytest.raises(ValueError, match="on_bad_record='ignore' is not valid; expected one of"):
        load_records(DATA / "prompts.jsonl", on_bad_record="ignore")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_records(tmp_path / "missing.jsonl")
    (tmp_path / "d.csv").write_text("prompt,answer\n")
    with pytest.raises(ValueError, match=r"suffix '\.csv'"):
        load_records(tmp_path / "d.csv")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(ValueError, match="no valid records"):
        load_records(tmp_path / "empty.jsonl")
    (tmp_path / "all_bad.jsonl").write_text("{\n")
    with pytest.raises(ValueError, match=r"no valid records \(1 malformed\)"):
        load_records(tmp_path / "all_bad.jsonl", on_bad_record="skip")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="cannot read Parquet"):
        load_records(tmp_path / "broken.parquet")


def test_parquet_round_trip_with_chat_prompts_and_metadata(tmp_path):
    rows = [
        {
            "prompt": [{"role": "user", "content": "1+1?"}],
            "answer": "2",
            "data_source": "toy",
            "metadata": {"k": 1},
        },
        {
            "prompt": [{"role": "user", "content": "2+2?"}],
            "answer": "4",
            "data_source": "toy",
            "metadata": {"k": 2},
        },
    ]
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert load_records(path) == rows


def test_parquet_bad_row_is_named(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"prompt": ["a", "b", "c"], "answer": ["1", None, "3"]}), path)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: row 2: 'answer' is null"):
        load_records(path)
    assert len(load_records(path, on_bad_record="skip")) == 2


def test_verl_rows_and_json_array(tmp_path):
    verl_row = {
        "data_source": "openai/gsm8k",
        "prompt": [{"role": "user", "content": "q"}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": "72"},
        "extra_info": {"index": 0},
    }
    path = tmp_path / "verl.parquet"
    pq.write_table(pa.Table.from_pylist([verl_row]), path)
    (record,) = load_records(path)
    assert record["answer"] == "72" and record["reward_model"]["ground_truth"] == "72"
    array = tmp_path / "d.json"
    array.write_text(json.dumps([{"prompt": "a", "answer": 1}, {"prompt": "b"}]))
    with pytest.raises(
        ValueError, match=rf"{re.escape(str(array))}: record 2: missing required field 'answer'"
    ):
        load_records(array)


def test_reasoning_gym_records_are_deterministic_and_scoreable():
    import reasoning_gym

    for name in ("gsm_symbolic", "basic_arithmetic", "chain_sum"):
        records = reasoning_gym_records(name, size=5, seed=7)
        assert len(records) == 5
        assert all(r["data_source"] == f"reasoning_gym/{name}" for r in records)
        assert all(isinstance(r["prompt"], str) and r["prompt"] for r in records)
        assert records == reasoning_gym_records(name, size=5, seed=7)
        assert records != reasoning_gym_records(name, size=5, seed=8)
        score = reasoning_gym.get_score_answer_fn(name)
        for r in records:
            entry = {"question": r["prompt"], "answer": r["answer"], "metadata": r["metadata"]}
            assert score(r["answer"], entry) == 1.0
    with pytest.raises(ValueError, match="'no_such_task' is not known"):
        reasoning_gym_records("no_such_task", size=3, seed=0)
    with pytest.raises(ValueError, match="size must be a positive integer"):
        reasoning_gym_records("chain_sum", size=0, seed=0)


def test_split_records_is_deterministic_disjoint_and_complete():
    records = [{"prompt": f"p{i}", "answer": str(i)} for i in range(50)]
    train, evals = split_records(records, eval_fraction=0.2, seed=1)
    assert len(train) == 40 and len(evals) == 10
    assert split_records(records, 0.2, seed=1) == (train, evals)
    assert split_records(records, 0.2, seed=2)[1] != evals
    ids = sorted(int(r["answer"]) for r in train + evals)
    assert ids == list(range(50))
    assert [int(r["answer"]) for r in evals] == sorted(
        int(r["answer"]) for r in evals
    )  # input order kept
    assert split_records(records[:3], 0.1, seed=0)[1] != []  # at least one held out
    assert split_records(records, 0.0, seed=0) == (records, [])
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="eval_fraction must be in"):
            split_records(records, bad, seed=0)
    with pytest.raises(ValueError, match="leaves no training records"):
        split_records(records[:1], 0.5, seed=0)


def test_format_prompt_with_a_chat_template():
    tok = tiny_tokenizer(TEMPLATE)
    record = {"prompt": "What is 2+3?", "answer": "5"}
    text = format_prompt(
        record, tok, system_prompt="Be brief.", instruction="Put the final answer in \\boxed{}."
    )
    assert text == (
        "<|system|>Be brief.<|end|>\n"
        "<|user|>What is 2+3?\n\nPut the final answer in \\boxed{}.<|end|>\n"
        "<|assistant|>"
    )
    chat = {
        "prompt": [{"role": "system", "content": "old"}, {"role": "user", "content": "hi"}],
        "answer": "x",
    }
    assert format_prompt(chat, tok) == "<|system|>old<|end|>\n<|user|>hi<|end|>\n<|assistant|>"
    assert format_prompt(chat, tok, system_prompt="new").startswith(
        "<|system|>new<|end|>\n<|user|>hi"
    )


def test_format_prompt_without_a_chat_template():
    record = {"prompt": "What is 2+3?", "answer": "5"}
    assert (
        format_prompt(record, tiny_tokenizer(None), system_prompt="Be brief.")
        == "Be brief.\n\nWhat is 2+3?"
    )
    assert (
        format_prompt(record, None, instruction="Answer in \\boxed{}.")
        == "What is 2+3?\n\nAnswer in \\boxed{}."
    )
    assert format_prompt(record, None) == "What is 2+3?"
    with pytest.raises(ValueError, match="no 'prompt' field"):
        format_prompt({"answer": "5"}, None)
    with pytest.raises(ValueError, match="no user message"):
        to_messages([{"role": "system", "content": "s"}], instruction="x")


def test_record_columns_hold_every_field_but_prompt():
    records = load_records(DATA / "prompts.jsonl")
    cols = record_columns(records)
    assert set(cols) == {"answer", "data_source", "level", "tests"}
    assert cols["answer"] == ["5", "\\frac{1}{2}", ""] and cols["level"] == [None, 2, None]
