"""Evaluation metrics: pass@k against brute-force enumeration, the others against hand counts."""

from __future__ import annotations

import itertools
import math

import pytest

from llm.metrics import (
    avg_at_n,
    default_ks,
    distinct_correct_answers,
    distinct_n,
    extract_final_answer,
    maj_at_n,
    normalize_answer,
    pass_at_k,
    pass_at_k_mean,
    summarize,
)


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n samples (c correct) that hold at least one correct sample."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_equals_enumeration_of_all_k_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12), (
                n,
                c,
                k,
            )


def test_pass_at_k_matches_binomial_formula_for_large_n():
    for n, c, k in [(100, 3, 10), (64, 1, 32), (200, 50, 7), (32, 31, 1)]:
        expected = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12)


def test_pass_at_k_edges_and_known_values():
    assert pass_at_k(4, 1, 4) == 1.0  # verl#7240's example: best@4 (bootstrap) reports ~0.684
    assert pass_at_k(4, 1, 1) == 0.25
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 6, 5) == 1.0  # n - c < k: exactly 1
    assert pass_at_k(10, 10, 1) == 1.0
    # pass@1 is the fraction correct; large n stays stable (no huge binomials)
    assert pass_at_k(37, 11, 1) == pytest.approx(11 / 37)
    assert pass_at_k(2000, 1, 1000) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize(
    ("n", "c", "k", "word"),
    [
        (4, 1, 5, "k must be"),
        (4, 5, 2, "c must be"),
        (4, -1, 2, "c must be"),
        (4, 1, 0, "k must be"),
        (-1, 0, 1, "n must be"),
        (4, 1.0, 1, "c must be"),
        (4, True, 1, "c must be"),
    ],
)
def test_pass_at_k_rejects_bad_arguments(n, c, k, word):
    with pytest.raises(ValueError, match=word):
        pass_at_k(n, c, k)


def test_avg_and_pass_at_k_mean_by_hand():
    correct = [[True, False, False, False], [True, True, False, False], [False] * 4]
    assert avg_at_n(correct) == pytest.approx((0.25 + 0.5 + 0.0) / 3)
    assert pass_at_k_mean(correct, 1) == pytest.approx(avg_at_n(correct))
    # pass@2: 1 - C(3,2)/C(4,2) = 1/2, 1 - C(2,2)/C(4,2) = 5/6, 0
    assert pass_at_k_mean(correct, 2) == pytest.approx((0.5 + 5 / 6 + 0.0) / 3)
    assert pass_at_k_mean(correct, 4) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="at least one prompt"):
        avg_at_n([])
    with pytest.raises(ValueError, match=r"correct\[1\] has no samples"):
        avg_at_n([[True], []])


def test_maj_at_n_votes_on_normalised_answers_and_breaks_ties_by_first_occurrence():
    answers = [
        ["1/2", "0.5", "3", "\\frac{1}{2}"],  # "1/2" wins 3-1 across forms
        ["4", "5", "5", "4"],  # tie 2-2: "4" appeared first
        [None, None, "7", None],  # only one vote
        [None, None, None, None],  # no answer: 0
        ["8", "9", "10", "11"],  # all tie: the first sample's answer
    ]
    correct = [
        [True, True, False, True],
        [True, False, False, True],
        [False, False, True, False],
        [False] * 4,
        [False, True, True, True],
    ]
    assert maj_at_n(answers, correct) == pytest.approx((1 + 1 + 1 + 0 + 0) / 5)
    # swapping the tie order flips the winner
    assert maj_at_n([["5", "4", "5", "4"]], [[False, True, False, True]]) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        maj_at_n([["1"]], [[True, False]])


def test_distinct_n_pooled_by_hand():
    texts = ["a b c", "a b d"]
    assert distinct_n(texts, 1) == pytest.approx(4 / 6)  # a b c d over 6 tokens
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)  # (a b) twice, (b c), (b d)
    assert distinct_n(texts, 3) == pytest.approx(2 / 2)
    assert distinct_n(texts, 4) == 0.0  # no 4-grams at all
    assert distinct_n([], 1) == 0.0
    assert distinct_n(["aab"], 1, tokenize=list) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        distinct_n(texts, 0)


def test_distinct_correct_answers_counts_normalised_correct_answers_only():
    answers = [["2", "2.0", "3", "x=2", None], ["1", "1", "1", "1", "1"], ["9", "8", "7", "6", "5"]]
    correct = [[True, True, True, True, True], [True] * 5, [False] * 5]
    # "2" and "2.0" are one answer; "3" and "x=2" are two more; None is not an answer
    assert distinct_correct_answers(answers, correct) == [3, 1, 0]


def test_summarize_keys_and_values():
    correct = [[True, False, False, False, True, False], [False] * 6]
    answers = [["1", "2", "2", "3", "1", None], ["5", "5", "6", None, None, None]]
    texts = [["one two", "two three", "a", "b", "c", "d"], ["x"] * 6]
    out = summarize(correct, answers, texts)
    n_keys = {"avg@6", "pass@1", "pass@2", "pass@4", "pass@6", "maj@6", "distinct_correct/mean"}
    assert n_keys | {f"distinct-{m}" for m in range(1, 5)} | {"n_prompts", "n_samples"} == set(out)
    assert out["avg@6"] == pytest.approx(1 / 6)
    assert out["pass@6"] == pytest.approx(0.5)
    assert out["pass@2"] == pytest.approx((1 - math.comb(4, 2) / math.comb(6, 2)) / 2)
    assert out["maj@6"] == pytest.approx(
        0.5
    )  # prompt 0: "1" and "2" tie 2-2, "1" first and correct
    assert out["distinct_correct/mean"] == pytest.approx(0.5)
    assert out["distinct-4"] == 0.0
    assert (
        default_ks(12) == [1, 2, 4, 8, 12]
        and default_ks(1) == [1]
        and default_ks(16) == [1, 2, 4, 8, 16]
    )
    with pytest.raises(ValueError, match="same number of samples"):
        summarize([[True], [True, False]])


def test_summarize_maj_counts_the_first_tied_class():
    out = summarize([[True, False, True, False]], [["1", "2", "1", "2"]], ks=[1])
    assert out["maj@4"] == 1.0 and set(out) == {
        "avg@4",
        "pass@1",
        "maj@4",
        "distinct_correct/mean",
        "n_prompts",
        "n_samples",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so \boxed{\frac{1}{\sqrt{2}}} done", r"\frac{1}{\sqrt{2}}"),
        (r"\boxed{\{1,2\}}", r"\{1,2\}"),
        (r"first \boxed{3} then \boxed{4}", "4"),
        (r"\boxed{5} and then a truncated \boxed{6", "5"),
        (r"\fbox{7}", "7"),
        ("reasoning...\n#### 1,234", "1,234"),
        ("#### Step 2\nthe answer is 12.5.", "12.5"),
        ("The answer is 42 apples.", "42"),
        ("The final answer is $x = 3$. I hope it is correct.", "x = 3"),
        ("Answer: -3", "-3"),
        ("we get 5-3 = 2 and then x = -7", "-7"),
        ("5-3", "3"),
        ("costs $1,000,000 in total", "1,000,000"),
        ("ratio 3/4", "3/4"),
        ("about .5 of it", ".5"),
        ("no digits here", None),
        ("\\boxed{" * 5000, None),  # degenerate repetition: linear-time scan, no answer
        ("", None),
    ],
)
def test_extract_final_answer(text, expected):
    assert extract_final_answer(text) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("0.50", "1/2"),
        ("1/2", "1/2"),
        ("\\dfrac{1}{2}", "1/2"),
        ("-\\frac{3}{6}", "-1/2"),
        ("1,000", "1000"),
        ("$42$", "42"),
        ("7.", "7"),
        ("\\text{Yes}", "yes"),
        ("x = 2", "x=2"),
        ("\\left( 1, 2 \\right)", "(1,2)"),
        ("1/0", "1/0"),
        ("   ", None),
        (None, None),
    ],
)
def test_normalize_answer(answer, expected):
    assert normalize_answer(answer) == expected
