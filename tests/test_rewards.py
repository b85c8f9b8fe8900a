"""Rewards: math over many answer forms, reasoning-gym's own scorer, the code reward (its
sandbox against hostile programs is tests/test_sandbox.py), RewardSet's None/raise handling,
load_reward and the verl adapter."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
import torch

from llm.data import reasoning_gym_records, record_columns
from llm.rewards import (
    REWARDS,
    RewardSet,
    code_reward,
    extract_code,
    format_reward,
    load_reward,
    math_accuracy,
    verl_compute_score_adapter,
)
from llm.sandbox import SandboxLimits, TestCases, parse_tests, run_tests
from tests.test_sandbox import require_bwrap

DATA = Path(__file__).parent / "data"

# (gold answer, completion, expected reward)
MATH_TABLE = [
    # integers, negatives, thousands separators
    ("42", "blah blah\n#### 42", 1.0),
    ("42", "The answer is 42.", 1.0),
    ("42", "so we get 40 + 2 = 42", 1.0),
    ("-7", "x = -7", 1.0),
    ("-7", "5-7 = -2, so \\boxed{7}", 0.0),
    ("1000", "The total is $1,000.", 1.0),
    ("1,000,000", "#### 1000000", 1.0),
    ("1000", "\\boxed{1{,}000}", 1.0),
    ("#### 42", "\\boxed{42}", 1.0),  # a GSM8K-style gold answer
    # fractions and decimals
    ("\\frac{1}{2}", "so the answer is \\boxed{\\frac{1}{2}}", 1.0),
    ("1/2", "The answer is 0.5.", 1.0),
    ("0.5", "\\boxed{\\dfrac{1}{2}}", 1.0),
    ("\\frac{3}{4}", "\\boxed{\\tfrac34}", 1.0),
    ("-\\frac{2}{3}", "\\boxed{-\\frac{2}{3}}", 1.0),
    ("-\\frac{2}{3}", "The answer is -2/3.", 1.0),
    ("3.14", "\\boxed{3.140}", 1.0),
    ("10", "\\boxed{10.0}", 1.0),
    ("0.75", "\\boxed{\\frac{3}{5}}", 0.0),
    # nested braces, radicals, symbolic equivalence
    ("\\frac{\\sqrt{3}}{2}", "\\boxed{\\frac{\\sqrt{3}}{2}}", 1.0),
    ("2\\sqrt{2}", "\\boxed{\\sqrt{8}}", 1.0),
    ("x^2+2x+1", "\\boxed{(x+1)^2}", 1.0),
    ("\\pi/2", "\\boxed{\\frac{\\pi}{2}}", 1.0),
    # sets, tuples, intervals (math-verify)
    ("\\{1, 2\\}", "\\boxed{\\{2, 1\\}}", 1.0),
    ("(1, 2)", "\\boxed{(1,2)}", 1.0),
    ("[1, 3)", "\\boxed{[1,3)}", 1.0),
    ("[1, 3)", "\\boxed{[1,3]}", 0.0),
    # units, currency, percent
    ("18", "The answer is \\$18.", 1.0),
    ("10", "\\boxed{10 \\text{ cm}}", 1.0),
    ("50\\%", "\\boxed{50\\%}", 1.0),
    # wrong, empty, no number, the last box wins
    ("42", "\\boxed{43}", 0.0),
    ("42", "", 0.0),
    ("42", "I don't know.", 0.0),
    ("42", "first \\boxed{42}, no wait: \\boxed{41}", 0.0),
    ("42", "lorem ipsum " * 5000 + "\\boxed{42}", 1.0),
    ("42", "\\boxed{" + "1+" * 2000 + "1}", 0.0),  # an over-long answer is not sent to sympy
]


@pytest.mark.parametrize(
    ("gold", "completion", "expected"),
    MATH_TABLE,
    ids=[f"{i}:{g}" for i, (g, _, _) in enumerate(MATH_TABLE)],
)
def test_math_accuracy_table(gold, completion, expected):
    assert math_accuracy(["q"], [completion], answer=[gold]) == [expected]


def test_math_accuracy_batch_gold_none_and_chat_format():
    golds = ["5", "", "not parseable \\frac{"]
    out = math_accuracy(["q"] * 3, ["\\boxed{5}", "\\boxed{5}", "\\boxed{5}"], answer=golds)
    assert out[0] == 1.0 and out[1] is None  # an empty gold answer does not parse: skip the sample
    chat = [[{"role": "assistant", "content": "It is \\boxed{5}."}]]
    assert math_accuracy(["q"], chat, answer=["5"]) == [1.0]
    assert math_accuracy(["q"], ["\\boxed{5}"], solution=["5"]) == [1.0]  # TRL's column name
    with pytest.raises(ValueError, match="'answer'"):
        math_accuracy(["q"], ["\\boxed{5}"])


def test_math_accuracy_works_in_a_worker_thread():
    out: dict[str, object] = {}

    def work():
        try:
            out["scores"] = math_accuracy(
                ["q"] * 3, ["\\boxed{\\frac{1}{2}}", "#### 0.5", "\\boxed{2}"], answer=["0.5"] * 3
            )
        except Exception as e:  # pragma: no cover - the failure being tested for
            out["error"] = e

    t = threading.Thread(target=work)
    t.start()
    t.join(timeout=60)
    assert "error" not in out, out.get("error")
    assert out["scores"] == [1.0, 1.0, 0.0]


def test_format_reward():
    assert format_reward(["q"] * 4, ["\\boxed{3}", "3", "\\boxed{}", "\\boxed{3"]) == [
        1.0,
        0.0,
        0.0,
        0.0,
    ]


@pytest.mark.parametrize("name", ["gsm_symbolic", "basic_arithmetic", "chain_sum"])
def test_reasoning_gym_own_scorer_gives_one_for_gold(name):
    records = reasoning_gym_records(name, size=4, seed=3)
    cols = record_columns(records)
    prompts = [r["prompt"] for r in records]
    reward = load_reward("reasoning_gym")
    tagged = [f"Thinking...\n<answer>{r['answer']}</answer>" for r in records]
    assert reward(prompts, tagged, **cols) == [1.0] * 4
    boxed = [f"so \\boxed{{{r['answer']}}}" for r in records]
    assert reward(prompts, boxed, **cols) == [1.0] * 4
    wrong = reward(prompts, ["<answer>definitely wrong</answer>"] * 4, **cols)
    assert all(w < 1.0 for w in wrong)
    # a record without metadata cannot be scored by its dataset: skipped
    assert reward(prompts[:1], tagged[:1], answer=cols["answer"][:1]) == [None]


# --- code ------------------------------------------------------------------------------------------

# tight limits where every completion must fail; roomy ones where some must pass, so that a
# loaded CI machine (slow interpreter start, slow numpy import) cannot fail a correct solution
FAST = SandboxLimits(timeout_s=6.0, cpu_s=3, memory_mb=512, max_output_mb=1.0, test_timeout_s=1.0)
ROOMY = SandboxLimits(
    timeout_s=60.0, cpu_s=30, memory_mb=1024, max_output_mb=1.0, test_timeout_s=30.0
)
ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]


def fenced(code: str) -> str:
    return f"Here is my solution:\n```python\n{code}\n```\n"


def test_code_reward_scores_correct_partial_and_missing_code():
    require_bwrap()
    reward = code_reward(limits=ROOMY)
    strict = code_reward(limits=ROOMY, all_or_nothing=True)
    half = "def add(a, b):\n    return 3\n"  # passes the first test only
    completions = [fenced(ADD), fenced(half), "no code at all", fenced(ADD)]
    tests = [ADD_TESTS, ADD_TESTS, ADD_TESTS, []]
    assert reward(["q"] * 4, completions, tests=tests) == [1.0, 0.5, 0.0, None]
    assert strict(["q"] * 4, completions, tests=tests) == [1.0, 0.0, 0.0, None]
    with pytest.raises(ValueError, match="'tests' column"):
        reward(["q"], [fenced(ADD)], answer=["x"])


def test_code_reward_stdin_stdout_tests():
    require_bwrap()
    reward = code_reward(limits=ROOMY)
    program = "a, b = map(int, input().split())\nprint(a + b)"
    tests = {"inputs": ["3 4\n", "10 -2\n"], "outputs": ["7\n", "8"]}
    assert reward(
        ["q"] * 3,
        [fenced(program), fenced("print(7)"), fenced("import sys\nsys.exit(0)")],
        tests=[tests] * 3,
    ) == [
        1.0,
        0.5,
        0.0,
    ]


def test_sandbox_runs_numpy_and_limits_validate():
    require_bwrap()
    code = "import numpy as np\ndef add(a, b):\n    return int(np.add(a, b))\n"
    assert run_tests(code, TestCases(asserts=tuple(ADD_TESTS)), ROOMY) == [True, True]
    with pytest.raises(ValueError, match="memory_mb"):
        SandboxLimits(memory_mb=0)


def test_parse_tests_formats():
    assert parse_tests(["assert f()"]).asserts == ("assert f()",)
    assert parse_tests('["assert f()", "assert g()"]').asserts == ("assert f()", "assert g()")
    assert parse_tests([{"input": "1", "output": "2"}]).io == (("1", "2"),)
    assert parse_tests('{"inputs": ["1"], "outputs": ["2"]}').io == (("1", "2"),)
    assert parse_tests("assert f() == 1\nassert g() == 2").asserts == (
        "assert f() == 1\nassert g() == 2",
    )
    assert len(parse_tests(None)) == 0 and len(parse_tests([])) == 0 and len(parse_tests("  ")) == 0
    with pytest.raises(ValueError, match="2 inputs but 1 outputs"):
        parse_tests({"inputs": ["1", "2"], "outputs": ["3"]})
    with pytest.raises(ValueError, match="tests must be"):
        parse_tests([1, 2])


def test_extract_code_prefers_the_last_python_block():
    text = "```python\nold()\n```\ntext\n```\nplain()\n```\n```py\nnew()\n```"
    assert extract_code(text) == "new()\n"
    assert extract_code("```\nplain()\n```") == "plain()\n"
    assert extract_code("```js\nx()\n```") is None
    assert extract_code("```python\nunclosed()") is None


# --- RewardSet, load_reward, verl ----------------------------------------------------------------


def one(prompts, completions, **kw):
    return [1.0] * len(completions)


def some_none(prompts, completions, **kw):
    return [None, 2.0, None]


def all_none(prompts, completions, **kw):
    return [None] * len(completions)


def boom(prompts, completions, **kw):
    raise RuntimeError("reward server down")


def test_reward_set_weighted_nansum_and_none():
    rs = RewardSet([one, some_none, all_none], weights=[0.5, 2.0, 1.0])
    total, per = rs(["p"] * 3, ["a", "b", "c"], {"answer": ["1", "2", "3"]})
    assert torch.allclose(total, torch.tensor([0.5, 4.5, 0.5], dtype=torch.float64))
    assert (
        per["some_none"][1] == 2.0
        and torch.isnan(per["some_none"][0])
        and torch.isnan(per["all_none"]).all()
    )
    assert rs.names == ["one", "some_none", "all_none"]
    total, _ = RewardSet([all_none, some_none])(["p"] * 3, ["a", "b", "c"], {})
    assert torch.isnan(total[0]) and total[1] == 2.0 and torch.isnan(total[2])


def test_reward_set_logs_a_raising_function_and_keeps_going(caplog):
    rs = RewardSet([boom, one])
    with caplog.at_level(logging.WARNING, logger="llm.rewards"):
        total, per = rs(["p", "p"], ["a", "b"], {})
    assert (
        torch.equal(total, torch.tensor([1.0, 1.0], dtype=torch.float64))
        and torch.isnan(per["boom"]).all()
    )
    assert (
        "'boom'" in caplog.text
        and "RuntimeError" in caplog.text
        and "reward server down" in caplog.text
    )
    total, _ = RewardSet([boom])(["p"], ["a"], {})
    assert torch.isnan(total).all()


def test_reward_set_validates_outputs_and_inputs():
    def short(prompts, completions, **kw):
        return [1.0]

    def text(prompts, completions, **kw):
        return ["1.0"] * len(completions)

    with pytest.raises(ValueError, match="'short' must return a list of 2"):
        RewardSet([short])(["p", "p"], ["a", "b"], {})
    with pytest.raises(ValueError, match=r"'text' returned '1\.0'"):
        RewardSet([text])(["p"], ["a"], {})
    with pytest.raises(ValueError, match="reward_weights"):
        RewardSet([one, one], weights=[1.0])
    with pytest.raises(ValueError, match="column 'answer' has 1 values, expected 2"):
        RewardSet([one])(["p", "p"], ["a", "b"], {"answer": ["x"]})
    assert RewardSet([one, one]).names == ["one", "one_2"]


def test_reward_set_accepts_numpy_and_tensor_outputs_nan_as_none():
    import numpy as np

    def as_numpy(prompts, completions, **kw):
        return np.array([1.0, np.nan, 0.0])

    def as_tensor(prompts, completions, **kw):
        return torch.tensor([0.5, 0.5, 0.5])

    total, per = RewardSet([as_numpy, as_tensor])(["p"] * 3, ["a", "b", "c"], {})
    assert torch.allclose(
        total, torch.tensor([1.5, 0.5, 0.5], dtype=torch.float64)
    ) and torch.isnan(per["as_numpy"][1])


def test_reward_set_passes_columns_and_supports_async():
    seen = {}

    def spy(prompts, completions, **kw):
        seen.update(kw)
        return [0.0] * len(completions)

    async def async_one(prompts, completions, **kw):
        return [1.0] * len(completions)

    total, _ = RewardSet([spy, async_one])(
        ["p"], ["a"], {"prompt": ["p"], "answer": ["1"], "data_source": ["s"]}
    )
    assert seen == {"answer": ["1"], "data_source": ["s"]} and total.tolist() == [1.0]


def test_reward_set_on_built_ins_end_to_end():
    rs = RewardSet(["math_accuracy", "format"], weights=[1.0, 0.1])
    total, per = rs(["q"] * 3, ["\\boxed{5}", "5", "\\boxed{6}"], {"answer": ["5", "5", "5"]})
    assert torch.allclose(total, torch.tensor([1.1, 1.0, 0.1], dtype=torch.float64))
    assert per["math_accuracy"].tolist() == [1.0, 1.0, 0.0]


def test_load_reward_specs_and_errors(tmp_path):
    assert set(REWARDS.names()) >= {"math_accuracy", "reasoning_gym", "code", "code_all", "format"}
    assert load_reward("math_accuracy") is math_accuracy
    fn = load_reward("tests.data.custom_reward:length_penalty")
    assert fn(["p"], ["abcd"]) == [-0.04]
    from_file = load_reward(f"{DATA / 'custom_reward.py'}:skip_all")
    assert from_file(["p"], ["a"]) == [None]
    with pytest.raises(ValueError, match=r"not a built-in reward; expected one of \['code'"):
        load_reward("accuracy")
    with pytest.raises(ValueError, match="cannot import 'no_such_module_xyz'"):
        load_reward("no_such_module_xyz:fn")
    with pytest.raises(ValueError, match="has no attribute 'missing'"):
        load_reward("tests.data.custom_reward:missing")
    with pytest.raises(ValueError, match="not a callable"):
        load_reward("tests.data.custom_reward:NOT_CALLABLE")
    with pytest.raises(ValueError, match="cannot import"):
        load_reward(f"{tmp_path / 'nope.py'}:fn")
    with pytest.raises(ValueError, match="non-empty string"):
        load_reward("")


def test_verl_compute_score_adapter():
    calls = []

    def compute_score(data_source, solution_str, ground_truth, extra_info=None):
        calls.append((data_source, extra_info))
        ok = solution_str.strip() == ground_truth
        return {"score": 1.0 if ok else -1.0, "acc": ok} if data_source == "dict" else float(ok)

    fn = verl_compute_score_adapter(compute_score)
    assert fn.__name__ == "compute_score"
    out = fn(["p", "p"], ["4", "5"], answer=["4", "4"], data_source=["dict", "float"], level=[1, 2])
    assert out == [1.0, 0.0]
    assert calls == [("dict", {"level": 1}), ("float", {"level": 2})]
    # verl's own row layout: ground truth under reward_model, extra_info as a column
    out = fn(
        ["p"],
        ["7"],
        reward_model=[{"ground_truth": "7", "style": "rule"}],
        extra_info=[{"index": 0}],
    )
    assert out == [1.0]
    with pytest.raises(ValueError, match="without 'score'"):
        verl_compute_score_adapter(lambda **kw: {"acc": 1})(["p"], ["x"], answer=["x"])
