"""Verifiable rewards in TRL's convention, and a weighted set of them.

A reward function is `fn(prompts, completions, **columns) -> list[float | None]`: `prompts` and
`completions` are N strings (a completion may also be a list of chat messages), `columns` holds
every other record field as a list of N values (`answer`, `data_source`, `metadata`, `tests`...),
and None skips a sample (it gets no reward and no advantage). Accept `**kwargs` for columns you
do not use. verl's `compute_score(data_source, solution_str, ground_truth, extra_info)` plugs in
through `verl_compute_score_adapter`.

Built-ins (`load_reward(name)`): math_accuracy, reasoning_gym, code, code_all, format.
Anything else is `module:function` or `path/to/file.py:function`.

`RewardSet` follows TRL's multi-reward handling: the total is the weighted nansum over functions
(a None counts as 0 when another function scored the sample) and NaN when no function scored it.
Departures: a function that raises (anything, SystemExit and KeyboardInterrupt included) or runs
past `timeout` seconds is logged and scores None for that batch, where TRL would stop or hang.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from labkit.registry import Registry
from llm.metrics import extract_final_answer, last_boxed
from llm.sandbox import SandboxLimits, check_mode, parse_tests, require_sandbox, run_tests

logger = logging.getLogger(__name__)

RewardFn = Callable[..., list[float | None]]
# name -> factory: a built-in may hold per-run caches (reasoning-gym scorers), so each
# load_reward call builds a fresh one
REWARDS: Registry[Callable[[], RewardFn]] = Registry("reward function", "reward_funcs")

# an extracted answer longer than this scores 0 without reaching sympy (a pathological input
# could hang it, and off the main thread math-verify has no timeout)
MAX_ANSWER_CHARS = 1000


def completion_text(completion: object) -> str:
    """The text of a completion: a string, or the last message of a chat-format list."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, list | tuple) and completion:
        return completion_text(completion[-1])
    return ""


# --- math -----------------------------------------------------------------------------------------


def _math_timeout() -> int | None:
    # math-verify's timeouts use signal.alarm, which raises off the main thread (TRL does the same);
    # RewardSet calls every function in a thread under its own deadline (data.reward_timeout_s)
    return 5 if threading.current_thread() is threading.main_thread() else None


class _NoTimeoutNotice(logging.Filter):
    """Drop math-verify's per-call 'Timeout is disabled' warning: off the main thread the
    deadline is RewardSet's, and the warning would repeat for every sample."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_NoTimeoutNotice())


def parse_gold(answer: object, timeout: int | None = None) -> list | None:
    """math-verify parse of a gold answer ("42", "\\frac{1}{2}", "#### 42", "\\boxed{...}"); None
    when it does not parse."""
    from math_verify import parse

    text = str(answer).strip()
    if "####" in text or "\\boxed" in text or "\\fbox" in text:
        text = extract_final_answer(text) or ""
    if not text:
        return None
    parsed = parse("\\boxed{" + text + "}", parsing_timeout=timeout)
    if not parsed:
        parsed = parse(text, parsing_timeout=timeout)
    return parsed or None


def math_score(completion: str, gold_parsed: list, timeout: int | None = None) -> float:
    """1.0 when the completion's final answer (`extract_final_answer`) equals the parsed gold."""
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    answer = extract_final_answer(completion)
    if answer is None or len(answer) > MAX_ANSWER_CHARS:
        return 0.0
    # the math-verify README's reward-time settings for the prediction, except
    # malformed_operators=True: the answer is already extracted, and "\frac34", "\sqrt2" are
    # valid LaTeX that models write
    config = [
        LatexExtractionConfig(
            boxed_match_priority=0,
            normalization_config=NormalizationConfig(
                basic_latex=True,
                units=True,
                malformed_operators=True,
                nits=False,
                boxed="all",
                equations=False,
            ),
        ),
        ExprExtractionConfig(),
    ]
    pred = parse("\\boxed{" + answer + "}", extraction_config=config, parsing_timeout=timeout)
    if not pred:
        return 0.0
    return 1.0 if verify(gold_parsed, pred, timeout_seconds=timeout) else 0.0


def math_accuracy(
    prompts: list[str], completions: list, answer: list | None = None, **columns: Any
) -> list[float | None]:
    """1.0 if the final answer equals the gold `answer` under math-verify, else 0.0.

    The final answer comes from `extract_final_answer` (\\boxed{}, "#### N", "the answer is",
    last number); equivalence is math-verify's (fractions, decimals, LaTeX, sets, intervals...).
    A gold answer that does not parse gives None (the sample is skipped), as in TRL. Off the
    main thread math-verify runs without its signal-based timeout. TRL's column name `solution`
    is accepted when there is no `answer`.
    """
    gold = answer if answer is not None else columns.get("solution")
    if gold is None:
        raise ValueError("math_accuracy needs an 'answer' (or 'solution') column")
    timeout = _math_timeout()
    cache: dict[str, list | None] = {}
    out: list[float | None] = []
    for completion, g in zip(completions, gold, strict=True):
        key = str(g)
        if key not in cache:
            cache[key] = parse_gold(g, timeout)
        parsed = cache[key]
        out.append(
            None if parsed is None else math_score(completion_text(completion), parsed, timeout)
        )
    return out


def format_reward(prompts: list[str], completions: list, **columns: Any) -> list[float | None]:
    """1.0 when the completion puts a non-empty answer in a complete \\boxed{...}, else 0.0."""
    return [1.0 if last_boxed(completion_text(c)) else 0.0 for c in completions]


# --- reasoning-gym ----------------------------------------------------------------------------------


class ReasoningGymReward:
    """The reasoning-gym dataset's own `score_answer` for each record.

    The dataset comes from `metadata["source_dataset"]` (else `data_source` "reasoning_gym/NAME").
    The answer scored is the last <answer>...</answer> of the completion (reasoning-gym's format),
    else `extract_final_answer`. A record without metadata or with an unknown dataset is None.
    """

    __name__ = "reasoning_gym"

    def __init__(self) -> None:
        self._scorers: dict[str, Callable[..., float]] = {}

    def _scorer(self, name: str) -> Callable[..., float] | None:
        if name not in self._scorers:
            import reasoning_gym

            try:
                self._scorers[name] = reasoning_gym.get_score_answer_fn(name)
            except ValueError:
                return None
        return self._scorers[name]

    def __call__(
        self,
        prompts: list[str],
        completions: list,
        answer: list,
        metadata: list | None = None,
        data_source: list | None = None,
        **columns: Any,
    ) -> list[float | None]:
        from reasoning_gym.utils import extract_answer

        n = len(completions)
        metadata = metadata if metadata is not None else [None] * n
        data_source = data_source if data_source is not None else [None] * n
        out: list[float | None] = []
        for prompt, completion, gold, meta, source in zip(
            prompts, completions, answer, metadata, data_source, strict=True
        ):
            name = (meta or {}).get("source_dataset") or str(source or "").removeprefix(
                "reasoning_gym/"
            )
            scorer = self._scorer(name) if meta and name else None
            if scorer is None:
                out.append(None)
                continue
            text = completion_text(completion)
            pred = extract_answer(text)
            pred = pred if pred is not None else extract_final_answer(text)
            entry = {"question": prompt, "answer": gold, "metadata": meta}
            out.append(0.0 if pred is None else float(scorer(pred, entry)))
        return out


# --- code ---------------------------------------------------------------------------------------------

_FENCE = re.compile(r"```([\w+.-]*)[^\n]*\n(.*?)```", re.DOTALL)


def extract_code(text: str) -> str | None:
    """The last ```python (or ```py/```python3) block, else the last untagged ``` block."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(text)]
    python = [b for lang, b in blocks if lang in ("python", "py", "python3")]
    if python:
        return python[-1]
    plain = [b for lang, b in blocks if lang == ""]
    return plain[-1] if plain else None


def code_reward(
    tests_column: str = "tests",
    all_or_nothing: bool = False,
    limits: SandboxLimits | None = None,
    max_workers: int | None = None,
    sandbox: str = "bwrap",
) -> RewardFn:
    """A reward that runs each completion's code against the record's tests (llm/sandbox.py).

    Args:
        tests_column: the column holding the tests (see `llm.sandbox.parse_tests` for formats).
        all_or_nothing: 1.0 only when every test passes; else the fraction of tests passed.
        limits: per-process time/memory/output limits.
        max_workers: completions run in parallel threads (default: the number of CPUs); each
            thread waits on its own bwrap process, so the GIL is free while programs run.
        sandbox: "bwrap" (OS isolation; refuses to run without bwrap) or "unsafe-subprocess"
            (explicit opt-in to no isolation, warned once; docs/sandbox.md).
    Returns 0.0 when the completion has no code block or the code fails in any way, None when
    the record has no tests.
    """
    limits = limits or SandboxLimits()
    require_sandbox(sandbox)  # no bwrap and no opt-in: refuse now, not with every score 0

    def score(completion: object, tests_value: object) -> float | None:
        tests = parse_tests(tests_value)
        if len(tests) == 0:
            return None
        code = extract_code(completion_text(completion))
        if code is None:
            return 0.0
        passed = run_tests(code, tests, limits, sandbox)
        if all_or_nothing:
            return float(all(passed))
        return sum(passed) / len(passed)

    def reward(prompts: list[str], completions: list, **columns: Any) -> list[float | None]:
        if tests_column not in columns:
            raise ValueError(
                f"the code reward needs a {tests_column!r} column, got {sorted(columns)}"
            )
        tests = columns[tests_column]
        workers = max(1, min(len(completions), max_workers or os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(score, completions, tests))

    reward.__name__ = "code_all" if all_or_nothing else "code"
    return reward


REWARDS.add("math_accuracy", lambda: math_accuracy)
REWARDS.add("format", lambda: format_reward)
REWARDS.add("reasoning_gym", ReasoningGymReward)
REWARDS.add("code", lambda: code_reward())
REWARDS.add("code_all", lambda: code_reward(all_or_nothing=True))


def with_code_sandbox(specs: Sequence[str | RewardFn], sandbox: str) -> list[str | RewardFn]:
    """`specs` with the built-in code rewards built for `sandbox` (config `data.code_sandbox`)."""
    check_mode(sandbox)
    built = {"code": False, "code_all": True}
    return [
        code_reward(all_or_nothing=built[s], sandbox=sandbox)
        if isinstance(s, str) and s in built
        else s
        for s in specs
    ]


# --- loading and combining ----------------------------------------------------------------------------


def load_reward(spec: str) -> RewardFn:
    """A built-in reward by name, or `module:function` / `path/to/file.py:function`."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"reward spec must be a non-empty string, got {spec!r}")
    if spec in REWARDS:
        return REWARDS.get(spec)()
    if ":" not in spec:
        raise ValueError(
            f"reward_funcs={spec!r} is not a built-in reward; expected one of {REWARDS.names()} "
            "or an import path 'module:function' (or 'path/to/file.py:function')"
        )
    module_name, _, attr = spec.rpartition(":")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise FileNotFoundError(f"no file {str(path)!r}")
            loader_spec = importlib.util.spec_from_file_location(path.stem, path)
            assert loader_spec is not None and loader_spec.loader is not None
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except Exception as e:
        raise ValueError(
            f"reward_funcs={spec!r}: cannot import {module_name!r} ({type(e).__name__}: {e})"
        ) from e
    fn = getattr(module, attr, None)
    if fn is None:
        raise ValueError(f"reward_funcs={spec!r}: module {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise ValueError(
            f"reward_funcs={spec!r}: {attr!r} is a {type(fn).__name__}, not a callable"
        )
    return fn


# the loss sees advantages in float32: a reward beyond this overflows there (1e39 -> inf)
FLOAT32_MAX = torch.finfo(torch.float32).max


class RewardError(RuntimeError):
    """Reward functions keep failing in a way training cannot go on from (too many stuck calls,
    too many steps without a single scored sample)."""


def _as_scores(name: str, values: object, n: int) -> list[float]:
    if isinstance(values, torch.Tensor) or type(values).__module__ == "numpy":
        values = values.tolist()  # type: ignore[union-attr]
    if not isinstance(values, list | tuple) or len(values) != n:
        got = f"length {len(values)}" if isinstance(values, list | tuple) else type(values).__name__
        raise ValueError(
            f"reward function {name!r} must return a list of {n} floats or None, got {got}"
        )
    out = []
    for v in values:
        if v is None:
            out.append(math.nan)
            continue
        if isinstance(v, str | bytes) or not hasattr(v, "__float__"):
            raise ValueError(f"reward function {name!r} returned {v!r}; expected a float or None")
        x = float(v)
        if math.isinf(x) or abs(x) > FLOAT32_MAX:
            raise ValueError(
                f"reward function {name!r} returned {x:g}, which is not finite in float32 (the "
                f"dtype of the loss; largest {FLOAT32_MAX:.3g}); return finite rewards, or None "
                "to skip a sample"
            )
        out.append(x)  # NaN stays NaN: treated like None
    return out


class _Call:
    """One reward function's call on one batch, in a daemon thread, with a deadline.

    Why a thread that is abandoned on timeout, and not a worker process that can be killed: a
    reward function is any Python callable (closures, objects holding per-run caches or a model,
    async functions), which a process would need to pickle or re-import, and forking a trainer
    that holds CUDA contexts and vLLM's threads is unsafe. TRL and verl also call rewards in the
    trainer's process. A thread cannot be killed, so a call past its deadline is left running
    (daemon: it does not keep the process alive at exit) and counted; `RewardSet` stops training
    once `max_stuck` of them are alive, before they eat the machine. Code rewards never hang
    here: each program runs in a subprocess with its own wall-clock limit (llm/sandbox.py).
    """

    def __init__(self, name: str, fn: RewardFn, kwargs: dict[str, Any]) -> None:
        self.value: object = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, args=(fn, kwargs), name=f"reward-{name}", daemon=True
        )
        self.thread.start()

    def _run(self, fn: RewardFn, kwargs: dict[str, Any]) -> None:
        try:
            value = fn(**kwargs)
            if inspect.isawaitable(value):
                value = asyncio.run(value)  # TRL allows async reward functions
            self.value = value
        except (
            BaseException
        ) as e:  # SystemExit, KeyboardInterrupt raised by a reward are its errors
            self.error = e


class RewardSet:
    """Several reward functions with weights, called once per batch, each under a time limit.

    Args:
        specs: reward specs for `load_reward` (or callables already loaded).
        weights: one float per function (default all 1.0), TRL's `reward_weights`.
        timeout: seconds one function may take on one batch (data.reward_timeout_s).
        max_stuck: calls left running past their timeout before `RewardError` (data.reward_max_stuck).
    Attributes:
        names: one name per function (its spec, or the callable's __name__; repeats get "_2", ...).
        failures: name -> "ErrorType: message" of the functions that failed on the last batch.
    """

    def __init__(
        self,
        specs: Sequence[str | RewardFn],
        weights: Sequence[float] | None = None,
        *,
        timeout: float = 300.0,
        max_stuck: int = 4,
    ) -> None:
        if isinstance(specs, str) or len(specs) == 0:
            raise ValueError(
                f"reward_funcs must be a non-empty list of reward specs, got {specs!r}"
            )
        self.fns: list[RewardFn] = [load_reward(s) if isinstance(s, str) else s for s in specs]
        for s, fn in zip(specs, self.fns, strict=True):
            if not callable(fn):
                raise ValueError(f"reward_funcs entry {s!r} is not callable")
        names: list[str] = []
        for s in specs:
            base = s if isinstance(s, str) else getattr(s, "__name__", type(s).__name__)
            name, i = base, 1
            while name in names:
                i += 1
                name = f"{base}_{i}"
            names.append(name)
        self.names = names
        if weights is None:
            weights = [1.0] * len(self.fns)
        if len(weights) != len(self.fns) or not all(math.isfinite(float(w)) for w in weights):
            raise ValueError(
                f"reward_weights must be {len(self.fns)} finite floats (one per reward function), got {list(weights)!r}"
            )
        self.weights = [float(w) for w in weights]
        self.timeout = timeout
        self.max_stuck = max_stuck
        self.stuck: list[_Call] = []
        self.failures: dict[str, str] = {}

    def _call(self, name: str, fn: RewardFn, kwargs: dict[str, Any], n: int) -> object:
        """fn's values, or [None] * n when it raises (anything) or times out (logged)."""
        call = _Call(name, fn, kwargs)
        call.thread.join(self.timeout)
        if call.thread.is_alive():
            self.stuck.append(call)
            error = f"TimeoutError: no result after {self.timeout:g} s (data.reward_timeout_s)"
        elif call.error is not None:
            error = f"{type(call.error).__name__}: {call.error}"
        else:
            return call.value
        self.failures[name] = error
        logger.warning("reward function %r failed: %s; it scores None for this batch", name, error)
        return [None] * n

    def __call__(
        self, prompts: list[str], completions: list, columns: dict[str, list]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Score N completions.

        Args:
            prompts, completions: N each (a prompt repeated G times for its group).
            columns: record fields as lists of N values; a "prompt" key is ignored.
        Returns:
            total: (N,) float64, sum_i w_i r_i over the functions that scored the sample, NaN when
                none did; per_function: name -> (N,) float64 scores, NaN for None.
        Raises:
            ValueError: a function returned something other than N floats/None, or a reward
                that is not finite in float32.
            RewardError: too many calls are stuck past their timeout.
        """
        n = len(completions)
        if len(prompts) != n:
            raise ValueError(
                f"prompts and completions must have the same length, got {len(prompts)} and {n}"
            )
        kwargs = {k: v for k, v in columns.items() if k != "prompt"}
        for k, v in kwargs.items():
            if k in ("prompts", "completions"):
                raise ValueError(f"columns must not contain {k!r} (it is passed as an argument)")
            if len(v) != n:
                raise ValueError(
                    f"column {k!r} has {len(v)} values, expected {n} (one per completion)"
                )
        self.stuck = [c for c in self.stuck if c.thread.is_alive()]
        if len(self.stuck) >= self.max_stuck:
            raise RewardError(
                f"{len(self.stuck)} reward calls are still running past their "
                f"{self.timeout:g} s timeout ({', '.join(c.thread.name for c in self.stuck)}); "
                "stopping (raise data.reward_timeout_s if they are only slow, or fix the hang)"
            )
        self.failures = {}
        per: dict[str, torch.Tensor] = {}
        for name, fn in zip(self.names, self.fns, strict=True):
            args = {"prompts": prompts, "completions": completions, **kwargs}
            values = self._call(name, fn, args, n)
            per[name] = torch.tensor(_as_scores(name, values, n), dtype=torch.float64)
        if n == 0:
            return torch.zeros(0, dtype=torch.float64), per
        stacked = torch.stack(list(per.values()), dim=1)  # (N, F)
        weights = torch.tensor(self.weights, dtype=torch.float64)
        total = torch.nansum(stacked * weights, dim=1)
        total[torch.isnan(stacked).all(dim=1)] = math.nan
        if bool((total.abs() > FLOAT32_MAX).any()):
            raise ValueError(
                f"the weighted sum of rewards reaches {float(total.nan_to_num(0.0).abs().max()):g}, which is not "
                f"finite in float32 (the dtype of the loss); scale the rewards or reward_weights"
            )
        return total, per


def verl_compute_score_adapter(
    compute_score: Callable[..., float | dict], ground_truth_column: str = "answer"
) -> RewardFn:
    """Wrap verl's `compute_score(data_source, solution_str, ground_truth, extra_info)` (a float,
    or a dict with "score") into TRL style.

    ground_truth comes from `ground_truth_column`, else from verl's `reward_model["ground_truth"]`;
    extra_info is the `extra_info` column when present, else a dict of the row's other columns.
    """

    def reward(prompts: list[str], completions: list, **columns: Any) -> list[float | None]:
        n = len(completions)
        if ground_truth_column in columns:
            truths = columns[ground_truth_column]
        elif "reward_model" in columns:
            truths = [
                rm.get("ground_truth") if isinstance(rm, dict) else None
                for rm in columns["reward_model"]
            ]
        else:
            raise ValueError(
                f"verl compute_score needs a {ground_truth_column!r} or 'reward_model' column"
            )
        sources = columns.get("data_source", [None] * n)
        if "extra_info" in columns:
            extras = columns["extra_info"]
        else:
            others = {
                k: v for k, v in columns.items() if k not in (ground_truth_column, "data_source")
            }
            extras = [{k: v[i] for k, v in others.items()} for i in range(n)]
        out: list[float | None] = []
        for i in range(n):
            r = compute_score(
                data_source=sources[i],
                solution_str=completion_text(completions[i]),
                ground_truth=truths[i],
                extra_info=extras[i],
            )
            if isinstance(r, dict):
                if "score" not in r:
                    raise ValueError(
                        f"compute_score returned a dict without 'score': keys {sorted(r)}"
                    )
                r = r["score"]
            out.append(None if r is None else float(r))
        return out

    reward.__name__ = getattr(compute_score, "__name__", "compute_score")
    return reward
