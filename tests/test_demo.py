"""`lad llm demo`: the multi-answer task, its verifier and reward, the tokenizer, the warm-up data,
the task-aware scoring, the --quick run end to end, and the LLM figures from saved logs."""

from __future__ import annotations

import json
import math
import random
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from labkit.config_loading import load
from llm.demo_config import DemoConfig, sweep_config
from llm.tasks.multi_answer import (
    Spec,
    answer_space,
    build_tokenizer,
    default_specs,
    multi_answer_reward,
    parse_answer,
    valid_answers,
    verify,
    warmup_examples,
)
from llm.tasks.scoring import score_samples

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "tests" / "data" / "llm_demo_logs"  # a --quick demo + --quick eta sweep, trimmed


# --- the task ----------------------------------------------------------------------------------------

VERIFY_CASES = [
    ("sum:12", "3+9", True),
    ("sum:12", " 9+3\n", True),  # surrounding whitespace is ignored
    ("sum:12", "6+6", True),
    ("sum:12", "3 + 9", False),  # inner spaces are not the format
    ("sum:12", "12+0", False),  # two digits, not numbers
    ("sum:12", "3+8", False),
    ("sum:12", "3+9+0", False),
    ("sum:12", "", False),
    ("sum:0", "0+0", True),
    ("sum:18", "9+9", True),
    ("mult:4:30", "12", True),
    ("mult:4:30", "28", True),
    ("mult:4:30", "32", False),  # not below the bound
    ("mult:4:30", "30", False),
    ("mult:4:30", "0", False),  # positive multiples only
    ("mult:4:30", "04", False),  # no leading zero
    ("mult:4:30", "4", True),
    ("mult:4:30", "4.0", False),
    ("mult:4:30", "-4", False),
    ("mult:9:20", "18", True),
]


@pytest.mark.parametrize(("key", "completion", "expected"), VERIFY_CASES)
def test_verify(key, completion, expected):
    assert verify(Spec.parse(key), completion) is expected


@pytest.mark.parametrize("spec", default_specs(), ids=lambda s: s.key)
def test_valid_answers_are_exactly_the_verified_part_of_the_answer_space(spec):
    brute = [a for a in answer_space(spec) if verify(spec, a)]
    assert valid_answers(spec) == brute
    if spec.family == "sum":
        assert len(brute) == min(spec.target, 18 - spec.target) + 1
    else:
        assert len(brute) == (spec.bound - 1) // spec.divisor
    assert all(parse_answer(spec, a) == a for a in answer_space(spec))


def test_default_prompts_vary_in_difficulty():
    counts = [len(valid_answers(s)) for s in default_specs()]
    assert len(counts) == 43 and min(counts) == 1 and max(counts) == 29
    assert len({s.prompt for s in default_specs()}) == 43


def test_reward_is_trl_style_with_none_for_other_tasks():
    completions = ["3+9", " 12 ", "4+4", "x", [{"role": "assistant", "content": "5+7"}]]
    answers = ["sum:12", "mult:4:30", "sum:9", "42", "sum:12"]
    out = multi_answer_reward(["p"] * 5, completions, answer=answers, data_source=["d"] * 5)
    assert out == [1.0, 1.0, 0.0, None, 1.0]


def test_reward_errors_name_the_problem():
    with pytest.raises(ValueError, match="'answer' column"):
        multi_answer_reward(["p"], ["3+9"])
    with pytest.raises(ValueError, match="answer has 2 rows"):
        multi_answer_reward(["p"], ["3+9"], answer=["sum:12", "sum:3"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"family": "sum", "target": 19}, "sum target must be in"),
        ({"family": "mult", "divisor": 5, "bound": 5}, "mult needs"),
        ({"family": "prime"}, "family='prime' is not valid"),
    ],
)
def test_spec_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Spec(**kwargs)
    with pytest.raises(ValueError, match="not a multi-answer spec"):
        Spec.parse("sum:1:2")


def test_tokenizer_round_trips_the_task_and_reloads_from_a_model_dir(tmp_path):
    from llm.demo import check_tokenizer_round_trip
    from llm.models import tiny_model

    tok = build_tokenizer()
    assert (tok.pad_token_id, tok.eos_token_id, len(tok)) == (0, 2, 109)
    for spec in default_specs():
        for text in valid_answers(spec):
            ids = tok(text, add_special_tokens=False)["input_ids"]
            assert tok.unk_token_id not in ids and tok.decode(ids) == text
        assert tok.unk_token_id not in tok(spec.prompt)["input_ids"]
    assert tok.tokenize("mult 4 below 30:") == ["mult", "4", "below", "30", ":"]
    # the trainer reloads the tokenizer with AutoTokenizer from the checkpoint directory
    model = tiny_model("llama", vocab_size=len(tok))
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    check_tokenizer_round_trip(tmp_path, tok)


def test_warmup_examples_teach_the_format_not_the_answers():
    specs = default_specs()
    pairs = warmup_examples(specs, 4000, 0.5, random.Random(0))
    by_prompt = {s.prompt: s for s in specs}
    assert all(parse_answer(by_prompt[p], c) == c for p, c in pairs)  # always well-formed
    frac = np.mean([verify(by_prompt[p], c) for p, c in pairs])
    chance = np.mean([len(valid_answers(s)) / len(answer_space(s)) for s in specs])
    assert abs(frac - (0.5 + 0.5 * chance)) < 0.03
    # no preference among correct answers: the most frequent correct answer of "sum 9:" is not
    # much more frequent than the average one
    counts = Counter(c for p, c in pairs if p == "sum 9:" and verify(by_prompt[p], c))
    assert len(counts) == 10 and max(counts.values()) < 3 * np.mean(list(counts.values()))
    assert all(
        verify(by_prompt[p], c) for p, c in warmup_examples(specs, 200, 1.0, random.Random(1))
    )
    with pytest.raises(ValueError, match="correct_frac"):
        warmup_examples(specs, 10, 1.5, random.Random(0))


# --- scoring -------------------------------------------------------------------------------------------


def test_score_samples_counts_whole_answers():
    tok = build_tokenizer()
    samples = [
        {
            "answer": "sum:12",
            "completions": ["3+9", "3+9", "4+8", "5+5"],
            "correct": [True, True, True, False],
        },
        {
            "answer": "mult:9:20",
            "completions": ["9", "18", "x", "27"],
            "correct": [True, True, False, False],
        },
    ]
    out = score_samples(samples, tok)
    m = out["metrics"]
    # "3+9" and "4+8" are two answers (the last-number extractor would see "9" and "8")
    assert m["distinct_correct/mean"] == pytest.approx((2 + 2) / 2)
    assert m["distinct_correct/coverage"] == pytest.approx((2 / 7 + 2 / 2) / 2)
    h1 = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert m["correct_entropy"] == pytest.approx((h1 + math.log(2)) / 2)
    assert m["avg@4"] == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert m["well_formed"] == pytest.approx(7 / 8)
    assert out["answer_counts"]["mult:9:20"] == {"9": 1, "18": 1, "<malformed>": 1, "27": 1}


def test_demo_config_yaml_spells_out_the_defaults():
    assert load(DemoConfig, ROOT / "configs" / "llm" / "demo" / "demo.yaml") == DemoConfig()
    assert DemoConfig().seeds == list(range(10)) and list(DemoConfig().methods) == [
        "grpo",
        "lad_js",
    ]
    cfg = DemoConfig().trainer_config("lad_js", 3, Path("o"), Path("w"), Path("p.jsonl"))
    assert (cfg.algorithm.loss_mode, cfg.algorithm.divergence, cfg.trainer.seed) == ("lad", "js", 3)
    assert cfg.algorithm.num_iterations == 2 and cfg.trainer.mini_batch_size == 4
    eta = sweep_config(DemoConfig(), "eta")
    assert sorted(eta.methods) == sorted(f"lad_js_kappa{k:g}" for k in (0.5, 1, 2, 4, 8, 16))
    assert "grpo" in sweep_config(DemoConfig(), "divergence").methods


def test_mu_sweep_sets_the_updates_per_rollout():
    mu = sweep_config(DemoConfig(), "mu")
    assert len(mu.methods) == 10
    for name in mu.methods:
        cfg = mu.trainer_config(name, 0, Path("o"), Path("w"), Path("p.jsonl"))
        t, a = cfg.trainer, cfg.algorithm
        # the same budget: B prompts x G completions per rollout, max_steps rollouts
        assert (t.max_steps, t.train_batch_size, cfg.rollout.num_generations) == (60, 16, 8)
        assert a.num_iterations * t.train_batch_size // t.mini_batch_size == int(
            name.split("_mu")[1]
        )
        assert a.loss_mode == ("grpo" if name.startswith("grpo") else "lad")


def test_heldout_prompts_are_disjoint_from_training_prompts():
    from llm.tasks.multi_answer import split_specs

    train, heldout = split_specs(default_specs())
    assert len(train) == 29 and len(heldout) == 14
    assert not {s.key for s in train} & {s.key for s in heldout}
    assert sorted(s.key for s in train + heldout) == sorted(s.key for s in default_specs())
    # every held-out prompt has trained neighbours of its family
    for s in heldout:
        if s.family == "sum":
            assert {s.target - 1, s.target + 1} <= {t.target for t in train if t.family == "sum"}
        else:
            assert {(s.divisor, 20), (s.divisor, 60)} <= {(t.divisor, t.bound) for t in train}


# --- paired statistics -----------------------------------------------------------------------------


def test_paired_bootstrap_ci_against_hand_computed_cases():
    from labkit.stats import paired_bootstrap_ci

    rng = np.random.default_rng(0)
    # differences (0, 0, 0, 3): a resampled mean is 3k/4 with k ~ Binomial(4, 1/4); P(k = 0) = 0.32
    # > 0.025 and P(k <= 2) = 0.949 < 0.975 <= P(k <= 3) = 0.996, so the 95% interval is [0, 2.25]
    a, b = np.asarray([1.0, 2.0, 5.0, 7.0]), np.asarray([1.0, 2.0, 5.0, 4.0])
    assert paired_bootstrap_ci(a, b, rng) == pytest.approx((0.75, 0.0, 2.25))
    # pairs, not two samples: a shift shared by both runs of a seed cancels
    base = np.asarray([0.1, 0.5, 0.9, 0.3, 0.7])
    assert paired_bootstrap_ci(base + 0.02, base, rng) == pytest.approx((0.02, 0.02, 0.02))
    # two seeds (0, 1): resampled means 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4
    assert paired_bootstrap_ci(np.asarray([1.0, 2.0]), np.ones(2), rng) == pytest.approx(
        (0.5, 0.0, 1.0)
    )
    assert paired_bootstrap_ci(np.asarray([3.0]), np.asarray([1.0]), rng) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="one value per seed"):
        paired_bootstrap_ci(np.ones(3), np.ones(4), rng)


def _fake_run(method, objective, seed, acc, div, mu=8):
    curve = [
        {"step": 10 * i, "avg@4": x, "distinct_correct/mean": d}
        for i, (x, d) in enumerate(zip(acc, div, strict=True))
    ]
    final = {"avg@4": acc[-1], "pass@4": min(1.0, 2 * acc[-1]), "distinct_correct/mean": div[-1]}
    return {
        "method": method,
        "objective": objective,
        "divergence": "js" if objective == "lad" else "",
        "seed": seed,
        "mu": mu,
        "final": final,
        "final_train": final,
        "curve": curve,
        "curve_train": curve,
    }


def test_demo_summary_pairs_by_seed_at_matched_accuracy():
    from figures.llm_demo import MATCHED, demo_summary

    runs = []
    for seed in range(5):
        # GRPO reaches 0.6 and has 1 distinct correct answer there; LAD reaches 0.8 and has 3 at
        # 0.6 (halfway between its 0.4 and 0.8 evaluations: (2 + 4) / 2)
        runs.append(_fake_run("grpo", "grpo", seed, [0.2, 0.4, 0.6], [2.0, 1.5, 1.0 + seed]))
    for seed in reversed(range(5)):  # a different order: pairs are matched by seed
        runs.append(_fake_run("lad_js", "lad", seed, [0.2, 0.4, 0.8], [2.0, 2.0, 4.0 + seed]))
    out = demo_summary({"eval_n": 4, "runs": runs})
    (pair,) = out["pairs"]
    assert (pair["lad"], pair["base"], pair["mu"], pair["lad_label"]) == (
        "lad_js",
        "grpo",
        8,
        "LAD-JS",
    )
    v = pair["views"]["heldout"]
    assert v["seeds"] == [0, 1, 2, 3, 4] and v["matched_accuracy"] == pytest.approx(0.6)
    m = v["metrics"][MATCHED]
    assert m["lad"]["values"] == pytest.approx([3.0 + s / 2 for s in range(5)])
    assert m["base"]["values"] == pytest.approx([1.0 + s for s in range(5)])
    assert m["diff"]["values"] == pytest.approx([2.0 - s / 2 for s in range(5)])
    assert m["significant"] and m["diff"]["low"] > 0
    acc = v["metrics"]["avg@4"]
    assert acc["diff"]["mean"] == pytest.approx(0.2) and acc["significant"]
    # fewer than 5 seeds: intervals are reported, no verdict is drawn
    few = demo_summary({"eval_n": 4, "runs": [r for r in runs if r["seed"] < 2]})
    assert not any(
        m["significant"] for m in few["pairs"][0]["views"]["heldout"]["metrics"].values()
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seeds": []}, r"seeds=\[\] is not valid"),
        ({"warmup_correct_frac": 2.0}, "warmup_correct_frac"),
        ({"train": ["trainer.max_steps=0"]}, "trainer.max_steps"),
        ({"methods": {"x": ["algorithm.divergence=nope"]}}, "nope"),
    ],
)
def test_demo_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DemoConfig(**kwargs)


def test_demo_cli_bad_input_is_one_line_exit_2(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["llm", "demo", "--quick", "--seeds", "a,b", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "seeds='a,b' is not valid; expected a list of int" in r.output
    r = runner.invoke(app, ["llm", "demo", "--quick", "--sweep", "nope", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "sweep='nope'" in r.output
    r = runner.invoke(app, ["llm", "demo", "--summarize", "--out", str(tmp_path / "none")])
    assert r.exit_code == 2 and "results.json' does not exist" in r.output
    assert not (tmp_path / "none").exists()


# --- the --quick run end to end --------------------------------------------------------------------------


@pytest.mark.slow  # trains the tiny model end to end (~10-15 s)
def test_quick_demo_end_to_end(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    args = ["llm", "demo", "--quick", "--out", str(out)]
    monkeypatch.setattr("sys.argv", ["lad", *args])  # what the shell gives `lad`
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    results = json.loads((out / "results.json").read_text())
    assert [(x["method"], x["seed"]) for x in results["runs"]] == [
        ("grpo", 0),
        ("lad_js", 0),
        ("grpo", 1),
        ("lad_js", 1),
    ]
    assert results["config"]["seeds"] == [0, 1] and results["eval_n"] == 8
    # every results file says what made it and where
    for prov in (
        results["provenance"],
        json.loads((out / "summary.json").read_text())["provenance"],
    ):
        assert prov["command"] == f"lad llm demo --quick --out {out}"
        assert len(prov["commit"]) >= 40 and prov["machine"]["cpu"] and prov["versions"]["torch"]
        assert prov["machine"]["torch_threads"] >= 1
    # held-out prompts are evaluated, never trained on
    train = [
        json.loads(line)["answer"] for line in (out / "prompts.jsonl").read_text().splitlines()
    ]
    heldout = [
        json.loads(line)["answer"] for line in (out / "heldout.jsonl").read_text().splitlines()
    ]
    assert results["views"] == {"heldout": heldout, "train": train}
    assert len(heldout) == 14 and not set(train) & set(heldout)
    warm = results["warmup"]["metrics"]
    assert warm["well_formed"] > 0.5 and 0 < warm["avg@8"] < 1  # the format is learnt, not the task
    assert warm["n_prompts"] == 14 and results["warmup"]["metrics_train"]["n_prompts"] == 29
    assert results["warmup"]["timing"]["cpu_s"] > 0
    for run in results["runs"]:
        d = out / run["dir"]
        cfg = json.loads((d / "config.json").read_text())["config"]
        assert cfg["algorithm"]["loss_mode"] == run["objective"] and run["mu"] == 2
        assert cfg["model"]["path"] == str(out / "warmup")
        assert cfg["data"]["dataset"] == str(out / "prompts.jsonl")
        steps = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        assert [s["step"] for s in steps] == [1, 2, 3, 4]
        assert all(0 <= s["reward"] <= 1 and s["entropy"] >= 0 for s in steps)
        curves = json.loads((d / "eval_curve.json").read_text())
        for key, view in (("curve", "metrics"), ("curve_train", "metrics_train")):
            assert [c["step"] for c in curves[key]] == [0, 2, 4]
            assert curves[key][0]["avg@8"] == results["warmup"][view]["avg@8"]  # shared start
            assert [c["step"] for c in run[key]] == [0, 2, 4]
        final = json.loads((d / "eval_final.json").read_text())
        assert final["metrics"] == {k: v for k, v in curves["curve"][-1].items() if k != "step"}
        assert final["metrics"]["n_prompts"] == 14 and final["metrics_train"]["n_prompts"] == 29
        counts = final["answer_counts"]
        assert set(counts) == set(results["valid_answers"]) and all(
            sum(c.values()) == 8 for c in counts.values()
        )
        # the final checkpoint only
        assert [p.name for p in (d / "checkpoints").iterdir()] == ["step_00000004"]
    s = results["summary"]["lad_js"]["distinct_correct/mean"]
    assert s["values"] == [x["final"]["distinct_correct/mean"] for x in results["runs"][1::2]]
    summary = json.loads((out / "summary.json").read_text())
    (pair,) = summary["pairs"]
    diff = pair["views"]["heldout"]["metrics"]["avg@8"]["diff"]
    grpo, lad = results["runs"][0::2], results["runs"][1::2]
    assert diff["values"] == pytest.approx(
        [b["final"]["avg@8"] - a["final"]["avg@8"] for a, b in zip(grpo, lad, strict=True)]
    )
    assert diff["low"] <= diff["mean"] <= diff["high"]
    for stem in ("llm_demo", "llm_answers", "llm_cost"):
        assert (out / "figures" / f"{stem}.png").stat().st_size > 10_000
    assert "LAD-JS − GRPO (clip)" in r.output and "summary.json" in r.output


# --- figures from the saved log fixture ------------------------------------------------------------------


def test_fixture_is_complete():
    results = json.loads((LOGS / "results.json").read_text())
    for run in results["runs"]:
        assert (LOGS / run["dir"] / "metrics.jsonl").is_file()


def test_figure_demo_draws_what_the_logs_hold():
    from figures import llm as fl

    results, groups = fl.load_demo(LOGS)
    fig = fl.figure_demo(LOGS)
    axes = fig.axes
    assert len(axes) == 6
    # panel (e): bar heights are the mean over seeds of the logged final values
    heights = [p.get_height() for p in axes[4].patches]
    expected = [
        np.mean([r.final["distinct_correct/mean"] for r in runs]) for runs in groups.values()
    ]
    assert heights == pytest.approx(expected)
    # panel (d): each method's last point is its mean final (accuracy, distinct correct)
    n = results["eval_n"]
    lines = axes[3].get_lines()  # per method its curve and its end marker, then the matched level
    assert len(lines) == 2 * len(groups) + 1
    assert lines[-1].get_xdata()[0] == pytest.approx(fl.matched_accuracy(groups))
    for line, runs in zip(lines[:-1:2], groups.values(), strict=True):
        x, y = line.get_data()
        assert x[-1] == pytest.approx(np.mean([r.curve[-1][f"avg@{n}"] for r in runs]))
        assert y[-1] == pytest.approx(np.mean([r.curve[-1]["distinct_correct/mean"] for r in runs]))


def test_answer_histogram_shares_sum_to_one():
    from figures import llm as fl

    results = json.loads((LOGS / "results.json").read_text())
    ax = fl.draw_answer_histogram(results, "sum:9")
    n_series = 1 + len(results["answer_counts"])
    n_columns = len(results["valid_answers"]["sum:9"]) + 2
    heights = np.asarray([p.get_height() for p in ax.patches]).reshape(n_series, n_columns)
    assert heights.sum(1) == pytest.approx(np.ones(n_series))
    with pytest.raises(ValueError, match=r"not in results\.json"):
        fl.draw_answer_histogram(results, "sum:99")


def test_paper_figures_from_run_logs():
    from figures import llm as fl

    runs = fl.find_runs([LOGS])
    assert {r.method for r in runs} >= {"grpo", "lad_js", "lad_kl", "lad_js_kappa0.5"}
    assert fl.sweep_divergences(runs) == ["js"]
    fig = fl.figure_eta_sweep(runs)
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("LAD"))
    etas = sorted({r.eta for r in runs if r.divergence == "js"})
    assert list(line.get_xdata()) == pytest.approx(etas)
    assert fl.common_eta(runs) == pytest.approx(0.25)
    fig = fl.figure_divergences(runs)
    assert len(fig.axes[0].patches) == 2  # js and kl at eta = 0.25
    cost = fl.figure_cost(runs)
    assert len(cost.axes) == 2
    assert all(t > 0 for r in runs for t in fl.time_per_token(r))


@pytest.mark.slow  # trains the tiny model end to end (~10-15 s)
def test_figures_cli_writes_files_and_rejects_missing_logs(tmp_path):
    runner = CliRunner()
    for cmd, stems in (
        ("llm", ("llm_demo", "llm_answers")),
        ("eta-sweep", ("llm_eta",)),
        ("divergences", ("llm_divergences",)),
        ("cost", ("llm_cost",)),
    ):
        r = runner.invoke(app, ["figures", cmd, "--runs", str(LOGS), "--out", str(tmp_path)])
        assert r.exit_code == 0, r.output
        for stem in stems:
            assert (tmp_path / f"{stem}.png").is_file() and (tmp_path / f"{stem}.pdf").is_file()
    r = runner.invoke(
        app, ["figures", "llm", "--runs", str(tmp_path / "nope"), "--out", str(tmp_path)]
    )
    assert r.exit_code == 2 and "does not exist" in r.output
    only_main = tmp_path / "main"
    shutil.copytree(LOGS, only_main, ignore=shutil.ignore_patterns("lad_js_kappa*"))
    r = runner.invoke(
        app, ["figures", "eta-sweep", "--runs", str(only_main), "--out", str(tmp_path)]
    )
    assert r.exit_code == 2 and "--sweep eta" in r.output


@pytest.mark.slow  # trains the tiny model end to end (~10-15 s)
def test_figures_all_redraws_llm_figures_only_when_demo_logs_exist(tmp_path, monkeypatch):
    from figures import llm as fl

    monkeypatch.setattr(fl, "DEMO_ROOT", tmp_path / "no_demo")
    assert fl.draw_saved_demo(tmp_path / "out") == []
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(fl, "DEMO_ROOT", LOGS)
    fl.draw_saved_demo(tmp_path / "out")
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {
        "llm_demo.png",
        "llm_answers.png",
        "llm_eta.png",
        "llm_divergences.png",
        "llm_cost.pdf",
    } <= names


def _write_fake_summaries(root: Path) -> None:
    from figures.llm_demo import demo_summary

    def results(mus: tuple[int, ...], shift: float) -> dict:
        runs = []
        for mu in mus:
            for seed in range(5):
                runs.append(_fake_run(f"grpo_mu{mu}", "grpo", seed, [0.2, 0.6], [2.0, 1.0], mu))
                lad = [2.0, 1.0 + shift * mu + 0.1 * seed]
                runs.append(_fake_run(f"lad_js_mu{mu}", "lad", seed, [0.2, 0.6], lad, mu))
        return {"eval_n": 4, "runs": runs}

    prov = {"command": "lad llm demo", "commit": "abc", "machine": {"cpu": "test cpu"}}
    source = {"provenance": prov, "timing": {"workers": 2}}
    for name, res in (
        ("summary.json", results((8,), 0.1)),
        ("summary_mu.json", results((1, 16), 0.1)),
    ):
        s = {"provenance": {**prov, "command": "x"}, "source": source, **demo_summary(res)}
        (root / name).write_text(json.dumps(s))


def test_mu_block_takes_the_missing_mu_from_the_main_run(tmp_path):
    from figures.llm_demo import block_mu

    _write_fake_summaries(tmp_path)
    md = block_mu(tmp_path)
    heldout, train = md.split("**Training prompts**")
    rows = [line for line in heldout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [r.split("|")[1].strip() for r in rows] == ["1", "8 (main run)", "16"]
    assert train.count("| 8 (main run) |") == 1
    # LAD - GRPO at matched accuracy 0.6 is 0.1 mu + 0.1 seed, mean 0.1 mu + 0.2
    assert "+1.80 [" in rows[2] and "LAD higher" in rows[2]
    assert "at mu = 1, 8, 16" in md and md.count("command:") == 2


def test_report_blocks_render_from_committed_results():
    from figures.llm_demo import MATCHED, REPORT_BLOCKS, RESULTS, fmt_diff

    summary = json.loads((RESULTS / "summary.json").read_text())
    results = json.loads((RESULTS / "results.json").read_text())
    assert summary["source"]["provenance"] == results["provenance"]
    assert len(results["config"]["seeds"]) >= 10
    pair = summary["pairs"][0]
    headline = REPORT_BLOCKS["demo-headline"]()
    for m in pair["views"]["heldout"]["metrics"].values():
        assert fmt_diff(m["diff"]) in headline
    # the per-seed differences are those of the per-seed results
    by = {(r["method"], r["seed"]): r for r in results["runs"]}
    diffs = [
        by[(pair["lad"], s)]["final"]["avg@32"] - by[(pair["base"], s)]["final"]["avg@32"]
        for s in pair["views"]["heldout"]["seeds"]
    ]
    assert pair["views"]["heldout"]["metrics"]["avg@32"]["diff"]["values"] == pytest.approx(diffs)
    assert MATCHED in pair["views"]["train"]["metrics"]
    # docs/llm-demo.md holds every block as rendered from the committed results
    page = (ROOT / "docs" / "llm-demo.md").read_text()
    for name in ("demo-table", "demo-mu", "demo-cost"):
        body = REPORT_BLOCKS[name]().strip("\n")
        assert f"<!-- report:{name} -->\n{body}\n<!-- /report:{name} -->" in page
