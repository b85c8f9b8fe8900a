"""Task-aware evaluation of the multi-answer task: sample with `llm.evaluate`, then score the
samples with the task's own answer parser and `llm.metrics.summarize`."""

from __future__ import annotations

import copy
import math
from collections import Counter
from typing import Any

from llm.tasks.multi_answer import Spec, parse_answer, valid_answers


def score_samples(
    samples: list[dict[str, Any]], tokenizer: Any, ks: list[int] | None = None
) -> dict[str, Any]:
    """Metrics of an evaluation's samples with the task's own answer parser.

    `llm.evaluate` extracts "the last number" as the final answer, which reads "3+9" as "9"; here
    an answer is the whole canonical completion, so distinct correct answers count "3+9" and
    "4+8" apart. distinct-n is over the model's tokens. Adds `well_formed`,
    `distinct_correct/coverage` (mean over prompts of distinct correct / number of valid answers)
    and `correct_entropy` (mean over prompts of the entropy, in nats, of the empirical
    distribution of its correct answers).
    Returns {"metrics": {...}, "answer_counts": {spec key: {answer or "<malformed>": count}}}.
    """
    from llm.metrics import summarize

    correct, answers, texts, counts = [], [], [], {}
    coverage, entropy, well_formed, total = [], [], 0, 0
    for row in samples:
        spec = Spec.parse(row["answer"])
        parsed = [parse_answer(spec, c) for c in row["completions"]]
        correct.append([bool(x) for x in row["correct"]])
        answers.append(parsed)
        texts.append([" ".join(tokenizer.tokenize(c)) for c in row["completions"]])
        counts[spec.key] = dict(Counter(a if a is not None else "<malformed>" for a in parsed))
        good = Counter(a for a, ok in zip(parsed, correct[-1], strict=True) if ok and a is not None)
        coverage.append(len(good) / len(valid_answers(spec)))
        n_good = sum(good.values())
        entropy.append(
            -sum(c / n_good * math.log(c / n_good) for c in good.values()) if n_good else 0.0
        )
        well_formed += sum(a is not None for a in parsed)
        total += len(parsed)
    metrics = summarize(correct, answers, texts, ks)
    metrics["well_formed"] = well_formed / total
    metrics["distinct_correct/coverage"] = sum(coverage) / len(coverage)
    metrics["correct_entropy"] = sum(entropy) / len(entropy)
    return {"metrics": metrics, "answer_counts": counts}


def evaluate_policy(model, tokenizer, records: list[dict], config, n: int) -> dict[str, Any]:
    """Sample n completions per record with llm.evaluate (seeded by config.eval.seed); score them."""
    from llm.evaluate import evaluate_model

    cfg = copy.deepcopy(config)
    cfg.eval.n, cfg.eval.ks, cfg.eval.max_prompts = n, None, None
    cfg.eval.batch_prompts = len(records)
    result = evaluate_model(model, tokenizer, records, cfg)
    scored = score_samples(result["samples"], tokenizer)
    scored["metrics"]["completions/mean_length"] = result["metrics"]["completions/mean_length"]
    return scored
