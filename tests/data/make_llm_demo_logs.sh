#!/usr/bin/env bash
# Rebuild tests/data/llm_demo_logs: the logs of a --quick demo and a --quick eta sweep (real runs),
# without the model weights and checkpoints (the figure tests read logs only).
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
.venv/bin/lad llm demo --quick --no-figures --out "$tmp"
.venv/bin/lad llm demo --quick --no-figures --sweep eta --out "$tmp"
dest=tests/data/llm_demo_logs
rm -rf "$dest" && mkdir -p "$dest"
cp "$tmp/results.json" "$dest/"
for run in "$tmp"/runs/*/seed_*; do
    rel=${run#"$tmp"/}
    mkdir -p "$dest/$rel"
    cp "$run"/{config.json,metrics.jsonl,eval_curve.json,eval_final.json,demo_run.json} "$dest/$rel/"
done
rm -rf "$tmp"
du -sh "$dest"
