"""The benchmark tables of the docs, written from the committed JSON in bench/results/.

Each function reads one or two results files and returns markdown with the command that wrote
them; `lad report` puts it between `<!-- report:NAME -->` markers (figures/report.py). Nothing here
measures: rerun the bench script, commit its JSON, then `lad report`.
"""

from __future__ import annotations

import re

from figures.report import command_line, fmt, load_json

LOSS_CPU = "bench/results/loss_cost.json"
LOSS_CUDA = "bench/results/h200/loss_cost_cuda.json"
BANDIT_CPU = "bench/results/bandit_speed.json"
BANDIT_CUDA = "bench/results/h200/bandit_speed_cuda.json"
TRAINER = "bench/results/trainer_speed.json"
GPU_CHECK = "bench/results/h200/gpu_check.json"
LOGPROB_MEMORY = "bench/results/h200/logprob_memory.json"
VLLM = "bench/results/vllm_rollout.json"


def _device(data: dict) -> str:
    return str(data.get("device", "?"))


def loss_cost() -> str:
    """LAD loss forward + backward against GRPO's, per divergence (and per backward, when the file
    times more than one), on the CPU and on an H200."""
    cpu, gpu = load_json(LOSS_CPU), load_json(LOSS_CUDA)
    names = sorted(set(cpu["median_ratio_vs_grpo"]) | set(gpu["median_ratio_vs_grpo"]))
    target = cpu["target_ratio"]
    shape = " × ".join(str(s) for s in cpu["shape"])
    # "-autograd" rows are the reference backward a file may time beside the one labkit uses
    used = [
        r for d in (cpu, gpu) for n, r in d["median_ratio_vs_grpo"].items() if "autograd" not in n
    ]
    worst = max(used)

    def cell(d: dict, n: str) -> str:
        r = d["median_ratio_vs_grpo"].get(n)
        return "–" if r is None else f"{r:.2f}×"

    lines = [
        f"Forward + backward on ({shape}) tokens; median of per-repeat ratios to GRPO.",
        f"Target ≤ {target:.2f}× GRPO for every divergence: "
        + (f"met (largest ratio {worst:.2f}×)." if worst <= target else f"NOT met ({worst:.2f}×)."),
        "",
        f"| objective | {_device(cpu)} | {_device(gpu)} |",
        "|---|---|---|",
        f"| grpo | {cpu['median_ms']['grpo']:.2f} ms (1.00) | {gpu['median_ms']['grpo']:.2f} ms (1.00) |",
    ]
    lines += [f"| {n} | {cell(cpu, n)} | {cell(gpu, n)} |" for n in names]
    lines += ["", command_line(cpu, LOSS_CPU), "", command_line(gpu, LOSS_CUDA)]
    return "\n".join(lines)


def loss_cost_cuda_summary() -> str:
    """One sentence: LAD-js against GRPO on the GPU, and the range over divergences."""
    gpu = load_json(LOSS_CUDA)
    ratios = gpu["median_ratio_vs_grpo"]
    ms = gpu["median_ms"]
    return (
        f"Loss alone, forward + backward on ({' × '.join(str(s) for s in gpu['shape'])}) tokens on "
        f"one {_device(gpu)}: LAD-js {ms['lad-js']:.2f} ms against GRPO {ms['grpo']:.2f} ms "
        f"({ratios['lad-js']:.2f}×); every divergence costs {min(ratios.values()):.2f}× to "
        f"{max(ratios.values()):.2f}× GRPO.\n\n" + command_line(gpu, LOSS_CUDA)
    )


RATE = re.compile(r"^(?P<kind>\w*?)_?run_steps_per_s_(?P<threads>\d+)t$")


def _threads(t: str) -> str:
    return f"{t} thread{'s' * (t != '1')}"


def _rate_columns(rows: list[dict]) -> list[tuple[str, str, str]]:
    """(key, kind, threads) of every run-steps/s column, e.g. vectorised_run_steps_per_s_2t."""
    keys = dict.fromkeys(k for r in rows for k in r)
    return [(k, m["kind"], m["threads"]) for k in keys if (m := RATE.match(k))]


def bandit_speed() -> str:
    """Vectorised bandit against a per-run loop on the CPU, per thread count and gradient path,
    with the target at R = 4096 and the one-off first step (the compile) of each path."""
    data = load_json(BANDIT_CPU)
    rows = data["rows"]
    cols = _rate_columns(rows)
    loop = rows[0]["loop_run_steps_per_s"]
    diff = max(r.get("max_abs_diff_vs_loop", 0.0) for r in rows)
    big = max(rows, key=lambda r: r["R"])
    header = " | ".join(f"{kind.replace('_', ' ')}, {_threads(t)}" for _, kind, t in cols)
    paths = ", ".join(
        f"{k} {v:.1e}" for k, v in big.items() if k.startswith("max_abs_diff_closed_vs_")
    ).replace("max_abs_diff_closed_vs_", "")
    lines = [
        f"{data['machine']['cpus']} CPU cores, {data['setup']['steps']} steps per timing, "
        f"steady state (steps 2 on), best of {data['setup']['repeats']}; the loop's final policies "
        f"match the vectorised runs of the same seeds to {diff:.1e}"
        + (f", the other paths match closed to {paths} (R = {big['R']})" if paths else "")
        + ". Run-steps per second:",
        "",
        f"| R | {header} | speed-up vs loop ({fmt(loop, 0)} run-steps/s) |",
        "|---:|" + "---:|" * (len(cols) + 1),
    ]
    for r in rows:
        rates = " | ".join(fmt(r[k], 0) if k in r else "–" for k, _, _ in cols)
        fastest = max(r[k] for k, _, _ in cols if k in r)
        lines.append(f"| {r['R']} | {rates} | {fastest / r['loop_run_steps_per_s']:.0f}× |")
    key, kind, t = max(((k, kd, t) for k, kd, t in cols if k in big), key=lambda c: big[c[0]])
    target = data["setup"].get("target_run_steps_per_s_at_4096")
    lines += [
        "",
        f"At R = {big['R']}: {big[key] / 1e6:.2f}M run-steps/s on the CPU (`gradient: {kind}`, {_threads(t)})",
    ]
    if target is not None and big["R"] == 4096:
        two = [big[k] for k, _, th in cols if th == "2" and k in big]
        best_two = max(two) if two else 0.0
        verdict = "met" if best_two >= target else "NOT met"
        lines[-1] += (
            f"; target ≥ {target / 1e6:.0f}M on 2 cores: {verdict} ({best_two / 1e6:.2f}M)."
        )
    else:
        lines[-1] += "."
    cold = ", ".join(
        f"{big[f'compiled_first_step_s_{t}t']:.0f} s with {_threads(t)}"
        for _, kind, t in cols
        if kind == "compiled" and f"compiled_first_step_s_{t}t" in big
    )
    if cold:
        lines += [
            "",
            f"The first compiled step at R = {big['R']}, from an empty inductor cache (the cold compile): {cold}; "
            "later sweeps of the same shape reuse the graph (in the same process) or load it from the on-disk cache.",
        ]
    lines += ["", command_line(data, BANDIT_CPU)]
    return "\n".join(lines)


def bandit_speed_cuda() -> str:
    """The same benchmark on a GPU."""
    data = load_json(BANDIT_CUDA)
    rows = data["rows"]
    lines = [
        f"| R ({data['machine'].get('gpu')}) | " + " | ".join(fmt(r["R"], 0) for r in rows) + " |",
        "|---|" + "---:|" * len(rows),
        "| run-steps/s | "
        + " | ".join(fmt(r["vectorised_run_steps_per_s_1t"], 0) for r in rows)
        + " |",
        "",
        command_line(data, BANDIT_CUDA),
    ]
    return "\n".join(lines)


def trainer_speed() -> str:
    """labkit's trainer against TRL's GRPOTrainer, and LAD against GRPO step time, on the CPU."""
    data = load_json(TRAINER)
    vs, lg = data["vs_trl"], data["lad_vs_grpo"]
    lines = [
        "| measure | result | goal |",
        "| --- | --- | --- |",
        f"| labkit / TRL tokens per second (median of {len(vs['rounds'])} paired rounds, min–max) | "
        f"{vs['ratio_median']:.2f}× ({vs['ratio_min']:.2f}–{vs['ratio_max']:.2f}×); "
        f"{fmt(vs['labkit_tokens_per_s'], 0)} vs {fmt(vs['trl_tokens_per_s'], 0)} tokens/s | ≥ 1.0 |",
        f"| LAD / GRPO step time, labkit trainer (median of {len(lg['step_time_ratios'])} pairs) | "
        f"{lg['step_time_ratio_median']:.2f}× | ≤ 1.05 |",
        f"| LAD / GRPO update time per token (median) | "
        f"{lg['update_time_per_token_ratio_median']:.3f}× | — |",
        "",
        f"Versions: {', '.join(f'{k} {v}' for k, v in data.get('versions', {}).items())}; "
        f"{data['machine'].get('threads')} thread.",
        "",
        command_line(data, TRAINER),
    ]
    return "\n".join(lines)


def gpu_check() -> str:
    """labkit's trainer, LAD and GRPO side by side on a 0.5B-shaped model on one GPU."""
    data = load_json(GPU_CHECK)
    lad, grpo, cfg = data["lad"], data["grpo"], data["config"]
    ratios = data["lad_vs_grpo_update_time_per_token"]
    mb = data["largest_micro_batch_rows"]
    lines = [
        f"{data['device']}, torch {data['torch']}, transformers {data['transformers']}; "
        f"{data['parameters'] / 1e6:.0f}M parameters, {cfg['prompts']} prompts × "
        f"{cfg['num_generations']} completions × {cfg['completion_length']} tokens, "
        f"{cfg['steps']} measured steps.",
        "",
        "| measure | LAD | GRPO |",
        "|---|---|---|",
        f"| rollout tokens/s (HF generate) | {fmt(lad['rollout_tokens_per_s'], 0)} | "
        f"{fmt(grpo['rollout_tokens_per_s'], 0)} |",
        f"| update tokens/s | {fmt(lad['update_tokens_per_s'], 0)} | "
        f"{fmt(grpo['update_tokens_per_s'], 0)} |",
        f"| update time per token, LAD / GRPO (median of {len(ratios)} pairs, "
        f"{min(ratios):.3f}–{max(ratios):.3f}) | **{data['lad_vs_grpo_update_ratio_median']:.3f}×** "
        "(goal ≤ 1.05) | |",
        f"| whole step, LAD / GRPO (rollouts do identical work; their timing varies) | "
        f"{data['lad_vs_grpo_step_ratio_median']:.2f}× | |",
        f"| peak GPU memory, both trainers resident | "
        f"{data['peak_memory_gib_two_trainers']:.1f} GiB | |",
        f"| largest update micro-batch that fits ({mb['seq_len']} tokens, no checkpointing) | "
        f"{mb['rows']} rows | |",
        "",
        command_line(data, GPU_CHECK)
        + " (written by `bench/gpu_check.py`, which `bash bench/gpu_check.sh` runs)",
    ]
    return "\n".join(lines)


def gpu_update_summary() -> str:
    """One sentence: LAD's update cost per token against GRPO's on a GPU."""
    data = load_json(GPU_CHECK)
    r = data["lad_vs_grpo_update_time_per_token"]
    return (
        f"Whole update on a {data['parameters'] / 1e9:.1f}B-parameter Qwen2-shaped model, one "
        f"{data['device']}: LAD over GRPO update time per token, median "
        f"{data['lad_vs_grpo_update_ratio_median']:.2f}× ({len(r)} steps: {min(r):.2f} to "
        f"{max(r):.2f}); whole step {data['lad_vs_grpo_step_ratio_median']:.2f}× (the rollouts do "
        "the same work, and their timing varies from step to step).\n\n"
        + command_line(data, GPU_CHECK)
        + " (written by `bench/gpu_check.py`, which `bash bench/gpu_check.sh` runs)"
    )


def logprob_memory() -> str:
    """Peak memory and throughput of the update with the LM head computed per chunk of tokens."""
    data = load_json(LOGPROB_MEMORY)
    rows = data["rows"]
    base = rows[0]["tokens_per_s"]
    lines = [
        f"{data['device']}, vocabulary {fmt(data['vocab_size'], 0)}, {rows[0]['rows']} rows × "
        f"{data['seq_len']} tokens, forward + backward of the LAD loss.",
        "",
        "| `model.logprob_chunk_size` | peak memory | update tokens/s | largest micro-batch |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        size = "null (all at once)" if r["chunk_size"] is None else f"{r['chunk_size']} tokens"
        ratio = "" if r is rows[0] else f" ({r['tokens_per_s'] / base:.2f}×)"
        lines.append(
            f"| {size} | {r['peak_gib']:.1f} GiB | {fmt(r['tokens_per_s'], 0)}{ratio} | "
            f"{r['largest_rows']} rows |"
        )
    lines += ["", command_line(data, LOGPROB_MEMORY)]
    return "\n".join(lines)


def vllm_rollout() -> str:
    """HF generate against vLLM (compiled and eager) rollouts on the CPU, and weight-sync time."""
    data = load_json(VLLM)
    cfg = data["config"]
    lines = [
        f"{data['machine']['cpus']} CPU cores, vLLM {data['versions'].get('vllm')}, fp32, "
        f"{cfg['prompts']} prompts × {cfg['num_generations']} × {cfg['max_tokens']} tokens, "
        f"median of {cfg['repeats']} interleaved repeats.",
        "",
        "| model | HF backend | vLLM | vLLM eager | weight sync | engine build |",
        "|---|---|---|---|---|---|",
    ]
    builds = []
    for name, r in data["results"].items():
        tps, ratio = r["tokens_per_s_median"], r["ratio_to_hf_median"]
        builds.append(r["engine_build_s"]["vllm"])
        lines.append(
            f"| {name} ({r['params'] / 1e6:.2f} M) | {fmt(tps['hf'], 0)} tok/s | "
            f"{fmt(tps['vllm'], 0)} ({ratio['vllm']:.2f}×) | "
            f"{fmt(tps['vllm_eager'], 0)} ({ratio['vllm_eager']:.2f}×) | "
            f"{r['sync_weights_s_median']['vllm'] * 1e3:.0f} ms | "
            f"{r['engine_build_s']['vllm']:.0f} s |"
        )
    eager_slower = all(
        r["tokens_per_s_median"]["vllm_eager"] < r["tokens_per_s_median"]["vllm"]
        for r in data["results"].values()
    )
    lines += [
        "",
        f"The compiled engine costs {min(builds):.0f}–{max(builds):.0f} s to build; eager mode "
        f"skips that and is {'slower' if eager_slower else 'not always slower'} per token here.",
        "",
        command_line(data, VLLM)
        + " (run as `OMP_WAIT_POLICY=PASSIVE .venv-vllm/bin/python bench/vllm_rollout.py`)",
    ]
    return "\n".join(lines)


REPORT_BLOCKS = {
    "bench-loss-cost": loss_cost,
    "bench-loss-cost-gpu-summary": loss_cost_cuda_summary,
    "bench-bandit-speed": bandit_speed,
    "bench-bandit-speed-cuda": bandit_speed_cuda,
    "bench-trainer-speed": trainer_speed,
    "bench-gpu-check": gpu_check,
    "bench-gpu-update-summary": gpu_update_summary,
    "bench-logprob-memory": logprob_memory,
    "bench-vllm-rollout": vllm_rollout,
}
