"""Evaluation metrics over n sampled completions per prompt, plus final-answer extraction.

Pure python/numpy. A run's samples are given per prompt: `correct[i][j]` is whether sample j of
prompt i is correct, `answers[i][j]` its extracted final answer (or None), `texts[i][j]` its text.

- avg@n: mean over prompts of the fraction of correct samples (verl's mean@n; "pass@1 from n").
- pass@k: the unbiased estimator of Chen et al. 2021, 1 - C(n-c, k) / C(n, k), per prompt, then
  averaged. verl's best@k (bootstrap with replacement) is biased low against it.
- maj@n: the majority-voted final answer of each prompt is correct (self-consistency).
- distinct-n: unique n-grams / total n-grams over all samples pooled (Li et al. 2016).
- distinct_correct: the number of different correct final answers of a prompt, after
  `normalize_answer` (answers the math reward accepts may still differ in form, e.g. "0.5" and
  "1/2" count once, "x=2" and "2" twice).

`extract_final_answer` is the one implementation shared with the math reward (llm/rewards.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from fractions import Fraction

import numpy as np

# --- final answers ------------------------------------------------------------------------------

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_HASHES = re.compile(r"####\s*([^\n]*)")
_ANSWER_IS = re.compile(r"(?i)\banswer\s*(?:is|:)\s*:?\s*([^\n]*)")
# a number: optional thousands separators, decimals, a simple fraction a/b
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|\.\d+"
_NUMBER = re.compile(_NUM)
_LEADING_NUMBER = re.compile(rf"^(-?(?:{_NUM}))(?:\s+[A-Za-z][\w ]*)?$")


_BRACE = re.compile(r"(?<!\\)[{}]")


def last_boxed(text: str) -> str | None:
    """Content of the last complete \\boxed{...} (nested braces; escaped \\{ \\} not counted).

    One pass matches all braces from the first box on (linear time: a degenerate completion
    that repeats "\\boxed{" thousands of times must not cost a quadratic scan).
    """
    opens = [m.end() - 1 for m in _BOXED.finditer(text)]
    if not opens:
        return None
    closing: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE.finditer(text, opens[0]):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            closing[stack.pop()] = m.start()
    # an unclosed box (a truncated completion) falls back to an earlier, complete one
    for i in reversed(opens):
        if i in closing:
            return text[i + 1 : closing[i]].strip()
    return None


def _clean_span(span: str) -> str:
    """Cut a free-text answer at the end of its sentence and drop math delimiters."""
    span = re.split(r"\.(?:\s|$)", span, maxsplit=1)[0]
    span = span.strip().strip("$").strip()
    span = re.sub(r"^\\\(|\\\)$|^\\\[|\\\]$", "", span).strip()
    span = span.rstrip(".,;:!").strip()
    m = _LEADING_NUMBER.match(span)
    # "42 apples" -> "42"; "x = 3" or "\frac{1}{2}" stay as they are
    return m.group(1) if m else span


def _last_number(text: str) -> str | None:
    last = None
    for m in _NUMBER.finditer(text):
        last = m
    if last is None:
        return None
    start = last.start()
    # a minus sign is a sign only when it does not follow an operand ("5-3" is a difference)
    if (
        start > 0
        and text[start - 1] == "-"
        and (start < 2 or not (text[start - 2].isalnum() or text[start - 2] in ")]}"))
    ):
        return "-" + last.group(0)
    return last.group(0)


def extract_final_answer(text: str) -> str | None:
    """The final answer of a completion, as a string, or None when it has none.

    Priority: the last complete \\boxed{...} (nested braces, also \\fbox); else the last of
    "#### N" (GSM8K; N must start like a number or LaTeX) and "answer is X" / "answer: X" (up to
    the end of that sentence; "42 apples" -> "42"); else the last number in the text (thousands
    separators, decimals, a/b fractions, a leading minus that does not follow an operand).
    """
    if not text:
        return None
    boxed = last_boxed(text)
    if boxed:
        return boxed
    spans = [(m.start(), _clean_span(m.group(1))) for m in _HASHES.finditer(text)]
    # "#### Step 2" is a markdown heading, not a GSM8K answer
    spans = [(pos, s) for pos, s in spans if re.match(r"[-$\\(\d.]", s)]
    spans += [(m.start(), _clean_span(m.group(1))) for m in _ANSWER_IS.finditer(text)]
    spans = [(pos, s) for pos, s in spans if s]
    if spans:
        return max(spans)[1]
    return _last_number(text)


def _as_fraction(s: str) -> Fraction | None:
    m = re.fullmatch(r"(-?)\\frac\{(-?\d+)\}\{(\d+)\}", s)
    try:
        if m:
            value = Fraction(int(m.group(2)), int(m.group(3)))
            return -value if m.group(1) else value
        if re.fullmatch(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+", s):
            return Fraction(s.replace(",", ""))
        if re.fullmatch(r"-?\d+/\d+", s):
            return Fraction(s)
    except ZeroDivisionError:
        return None
    return None


def normalize_answer(answer: str | None) -> str | None:
    """A canonical string for voting and counting distinct answers (not an equivalence check).

    Drops $ \\( \\) delimiters, \\text{}/\\mathrm{} wrappers, \\left/\\right, LaTeX spacing and all
    whitespace, maps \\dfrac/\\tfrac to \\frac, lower-cases, and writes plain numbers (integers,
    decimals, thousands separators, a/b, \\frac{a}{b}) as reduced fractions: "0.50" -> "1/2".
    """
    if answer is None:
        return None
    s = answer.strip().strip("$")
    s = re.sub(r"^\\\(|\\\)$", "", s)
    s = re.sub(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\left", "").replace("\\right", "").replace("{,}", ",").replace("\\$", "")
    s = re.sub(r"\\[,;:! ]", "", s)
    s = re.sub(r"\s+", "", s).rstrip(".")
    value = _as_fraction(s)
    if value is not None:
        return str(value)
    return s.lower() or None


# --- pass@k and friends ---------------------------------------------------------------------------


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one prompt from n samples of which c are correct (Chen et al. 2021).

    1 - C(n-c, k) / C(n, k), evaluated as 1 - prod_{i=n-c+1}^{n} (1 - k/i) (no large binomials);
    exactly 1.0 when n - c < k (every k-subset holds a correct sample).
    """
    n, c, k = _check_int("n", n), _check_int("c", c), _check_int("k", k)
    if k < 1 or k > n:
        raise ValueError(f"k must be in [1, n={n}], got k={k}")
    if c > n:
        raise ValueError(f"c must be <= n={n}, got c={c}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def _check_rows(name: str, rows: Sequence[Sequence[object]]) -> None:
    if len(rows) == 0:
        raise ValueError(f"{name} must hold at least one prompt, got an empty list")
    for i, row in enumerate(rows):
        if len(row) == 0:
            raise ValueError(f"{name}[{i}] has no samples; every prompt needs n >= 1")


def avg_at_n(correct: Sequence[Sequence[bool]]) -> float:
    """Mean over prompts of the fraction of correct samples (avg@n, verl's mean@n)."""
    _check_rows("correct", correct)
    return float(np.mean([np.mean(np.asarray(row, dtype=np.float64)) for row in correct]))


def pass_at_k_mean(correct: Sequence[Sequence[bool]], k: int) -> float:
    """Mean over prompts of the unbiased pass@k; each prompt needs at least k samples."""
    _check_rows("correct", correct)
    return float(
        np.mean([pass_at_k(len(row), int(sum(bool(x) for x in row)), k) for row in correct])
    )


def _majority(answers: Sequence[str | None]) -> int | None:
    """Index of the first sample of the most frequent normalised answer (None when all are None)."""
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for j, a in enumerate(answers):
        key = normalize_answer(a)
        if key is None:
            continue
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, j)
    if not counts:
        return None
    # ties: the answer that appeared first in sample order wins (deterministic, order-aware)
    best = max(counts, key=lambda key: (counts[key], -first[key]))
    return first[best]


def maj_at_n(
    answers: Sequence[Sequence[str | None]], gold_correct: Sequence[Sequence[bool]]
) -> float:
    """Fraction of prompts whose majority-voted final answer is correct (maj@n).

    Votes go to `normalize_answer` classes; None answers do not vote, and a prompt with no answer
    scores 0. Ties go to the class whose first sample comes earliest in sample order, and a class
    is correct when its first sample is (samples of a class share a normalised answer, so the
    grader agrees on them except for pathological forms).
    """
    _check_rows("answers", answers)
    if [len(r) for r in answers] != [len(r) for r in gold_correct]:
        raise ValueError("answers and gold_correct must have the same shape (prompts x samples)")
    hits = []
    for ans, cor in zip(answers, gold_correct, strict=True):
        j = _majority(ans)
        hits.append(0.0 if j is None else float(bool(cor[j])))
    return float(np.mean(hits))


def distinct_n(
    texts: Sequence[str], n: int, tokenize: Callable[[str], list[str]] = str.split
) -> float:
    """Unique n-grams / total n-grams over all texts pooled; 0.0 when there are no n-grams."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        tokens = tokenize(text)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def distinct_correct_answers(
    answers: Sequence[Sequence[str | None]], correct: Sequence[Sequence[bool]]
) -> list[int]:
    """Per prompt, the number of different normalised final answers among its correct samples."""
    if [len(r) for r in answers] != [len(r) for r in correct]:
        raise ValueError("answers and correct must have the same shape (prompts x samples)")
    out = []
    for ans, cor in zip(answers, correct, strict=True):
        keys = {normalize_answer(a) for a, ok in zip(ans, cor, strict=True) if ok}
        keys.discard(None)
        out.append(len(keys))
    return out


def default_ks(n: int) -> list[int]:
    """k = 1, 2, 4, ... up to n, and n itself."""
    ks = [2**i for i in range(n.bit_length()) if 2**i <= n]
    return ks if ks[-1] == n else [*ks, n]


def summarize(
    correct: Sequence[Sequence[bool]],
    answers: Sequence[Sequence[str | None]] | None = None,
    texts: Sequence[Sequence[str]] | None = None,
    ks: Sequence[int] | None = None,
) -> dict[str, float]:
    """All evaluation metrics of one run, keyed as in verl/papers (n = samples per prompt).

    Args:
        correct: prompts x n booleans; every prompt must have the same n.
        answers: prompts x n extracted final answers (None when absent): adds maj@n and
            distinct_correct/mean.
        texts: prompts x n completion texts: adds distinct-1 .. distinct-4 (whitespace tokens).
        ks: the k of pass@k (default 1, 2, 4, ..., n).
    Returns:
        {"avg@n", "pass@k"..., "maj@n", "distinct-1".."distinct-4", "distinct_correct/mean",
         "n_prompts", "n_samples"} with n and k written out, e.g. "avg@32", "pass@32".
    """
    _check_rows("correct", correct)
    n = len(correct[0])
    if any(len(row) != n for row in correct):
        raise ValueError(
            f"every prompt needs the same number of samples, got {sorted({len(r) for r in correct})}"
        )
    ks = default_ks(n) if ks is None else list(ks)
    out: dict[str, float] = {"n_prompts": float(len(correct)), "n_samples": float(n)}
    out[f"avg@{n}"] = avg_at_n(correct)
    for k in ks:
        out[f"pass@{k}"] = pass_at_k_mean(correct, k)
    if answers is not None:
        out[f"maj@{n}"] = maj_at_n(answers, correct)
        out["distinct_correct/mean"] = float(np.mean(distinct_correct_answers(answers, correct)))
    if texts is not None:
        pooled = [t for row in texts for t in row]
        for m in range(1, 5):
            out[f"distinct-{m}"] = distinct_n(pooled, m)
    return out
