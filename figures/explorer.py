"""The bandit explorer: one self-contained interactive HTML page from a built grid (bandit/explore.py).

Plotly draws every chart (plotly.js is inlined, so the page opens from disk with no network); the
page's own script is glue only: it decodes the saved arrays, picks the configuration the controls
name, and hands plotly new trace data. Panels:
- pi_t against P_A over the arms for configurations A and B, at the step of a slider that a
  play button animates; mean over seeds with the min-max band, or one seed;
- learning curves (TV(pi_t, P_A), expected reward, modes covered, entropy) with the step marked;
- the divergence of A (or B): f(x), f'(x), the on-policy advantage transform w(a) = -f'(e^-a)
  beside GRPO's weight a, and the push on log r against r beside GRPO's clipped one;
- Figure 2: the 3-arm practical loss surface with the trajectories for that divergence.
Policies are stored as float16 (3 significant digits, about 9 MB for the default grid), metrics
as float32, both base64 in one JSON blob.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch
from plotly.subplots import make_subplots

from bandit import results
from bandit.explore import GRID_FILE, result_dirs
from figures.io import read_csv
from labkit.divergences import get_divergence
from labkit.io import atomic_write

METRICS = (
    ("tv_pi", "TV(π_t, P_A)"),
    ("expected_reward", "expected reward"),
    ("modes_covered", "modes covered"),
    ("entropy", "entropy H(π_t)"),
)
SIDES = ("A", "B")
COLORS = {"A": "#1f77b4", "B": "#d62728", "target": "#555555"}
GRPO_EPS = 0.2
# the paper's Figure 1 setting where the grid has it: A = GRPO clipped, B = LAD-JS
DEFAULTS = {
    "A": {"objective": "grpo", "eta": "1", "mu": "0", "sampling": "G64"},
    "B": {"objective": "lad:js", "eta": "1", "mu": "0", "sampling": "G64"},
}


def objective_id(objective: str, divergence: str) -> str:
    return f"{objective}:{divergence}" if divergence else objective


def objective_label(oid: str) -> str:
    obj, _, div = oid.partition(":")
    names = {
        "grpo": "GRPO clipped",
        "reinforce": "GRPO unclipped",
        "lad_theory": f"LAD theoretical ({div})",
        "lad": f"LAD practical ({div})",
        "kl_cov": "KL-Cov",
    }
    return names.get(obj, oid)


def _num(x: float) -> str:
    """The key form of a float axis value (as JS's String(Number) writes it)."""
    return json.dumps(float(x)).removesuffix(".0")


def point_key(land: str, oid: str, eta: float, lr: float, mu: int, sampling: str) -> str:
    return f"{land}|{oid}|{_num(eta)}|{_num(lr)}|{mu}|{sampling}"


def _b64(a: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode()


def collect(grid_dir: str | Path) -> dict[str, Any]:
    """The page's data from a built grid: every configuration's per-seed policies (n_seeds, S, K)
    and metrics (n_seeds, L, 4), the landscapes with P_A per eta, and the theory panels."""
    grid_dir = Path(grid_dir)
    if not (grid_dir / GRID_FILE).is_file():
        raise ValueError(f"{str(grid_dir)!r} is not a built explorer grid (no {GRID_FILE})")
    data: dict[str, Any] = {"landscapes": {}, "points": {}}
    axes: dict[str, set] = {k: set() for k in ("objective", "eta", "lr", "mu", "sampling", "seed")}
    steps = log_steps = None
    divergences: set[str] = set()
    for name, path in result_dirs(grid_dir).items():
        land, mu_s, sampling = name.split("__")
        res = results.load(path)
        lands = data["landscapes"].setdefault(
            land,
            {
                "name": res.landscape.name,
                "rewards": list(res.landscape.rewards),
                "n_modes": len(res.landscape.modes),
                "pa": {},
            },
        )
        steps = steps or list(res.snapshot_steps)
        log_steps = log_steps or [int(s) for s in res.log_steps]
        if list(res.snapshot_steps) != steps or [int(s) for s in res.log_steps] != log_steps:
            raise ValueError(f"{path}: saved steps differ from the rest of the grid")
        cols = [results.METRICS.index(m) for m, _ in METRICS]
        groups: dict[tuple, list[dict]] = {}
        for r in res.runs:
            groups.setdefault((r["objective"], r["divergence"], r["eta"], r["lr"]), []).append(r)
        for (obj, div, eta, lr), runs in groups.items():
            runs = sorted(runs, key=lambda r: r["seed"])
            idx = [r["run"] for r in runs]
            oid = objective_id(obj, div)
            key = point_key(land, oid, eta, lr, int(mu_s[2:]), sampling)
            data["points"][key] = {
                "pol": _b64(res.policies[:, idx].transpose(1, 0, 2), "<f2"),
                "met": _b64(res.metrics[:, idx][:, :, cols].transpose(1, 0, 2), "<f4"),
            }
            lands["pa"][_num(eta)] = [float(p) for p in res.landscape.target(eta)]
            axes["objective"].add(oid)
            axes["eta"].add(eta)
            axes["lr"].add(lr)
            axes["mu"].add(int(mu_s[2:]))
            axes["sampling"].add(sampling)
            axes["seed"].update(r["seed"] for r in runs)
            if div:
                divergences.add(div)
    order = {"grpo": 0, "reinforce": 1, "lad_theory": 2, "lad": 3}
    objectives = sorted(
        axes["objective"], key=lambda o: (order.get(o.split(":")[0], 9), o.split(":")[-1])
    )
    data["objectives"] = [{"id": o, "label": objective_label(o)} for o in objectives]
    # axis values as the strings the keys use (the page never formats a number into a key)
    data["etas"] = [_num(e) for e in sorted(axes["eta"])]
    data["lrs"] = [_num(x) for x in sorted(axes["lr"])]
    data["mus"] = sorted(axes["mu"])
    data["samplings"] = sorted(axes["sampling"], key=lambda s: (s != "exact", len(s), s))
    data["seeds"] = sorted(axes["seed"])
    data["steps"], data["log_steps"] = steps, log_steps
    data["metrics"] = [{"id": m, "label": label} for m, label in METRICS]
    divs = sorted(divergences) or ["js"]
    data["divergences"] = divs
    data["theory"] = {d: divergence_curves(d) for d in divs}
    data["grpo_push"] = grpo_push()
    data["dynamics"] = dynamics(grid_dir / "dynamics", divs)
    return data


def divergence_curves(name: str) -> dict[str, list[float]]:
    """f(x) and f'(x) on x in (0, 4]; w(a) = -f'(e^-a) on a in [-3, 3]; the push on log r,
    -r f'(r e^-a) for a = 1, on r in (0, 3]."""
    div = get_divergence(name)
    x = torch.linspace(0.02, 4.0, 200, dtype=torch.float64)
    a = torch.linspace(-3.0, 3.0, 121, dtype=torch.float64)
    r = torch.linspace(0.02, 3.0, 150, dtype=torch.float64)
    f = div.f(x.log())
    fp = div.weight(x.log())
    w = -div.weight(-a)
    push = -div.weighted_grad(r.log(), torch.ones_like(r))
    return {
        "x": x.tolist(),
        "f": f.tolist(),
        "fp": fp.tolist(),
        "a": a.tolist(),
        "w": w.tolist(),
        "r": r.tolist(),
        "push": push.tolist(),
    }


def grpo_push() -> dict[str, list[float]]:
    """GRPO's weight on grad log pi for one sample with advantage 1: on-policy it is the
    advantage itself (w(a) = a); off-policy the clipped surrogate pushes A·r while
    r <= 1 + epsilon and nothing past it."""
    r = np.linspace(0.02, 3.0, 150)
    return {"r": r.tolist(), "push": np.where(r <= 1 + GRPO_EPS, r, 0.0).tolist()}


def dynamics(path: Path, divergences: list[str]) -> dict[str, Any]:
    """Figure 2 per divergence: the loss surface (log10 of loss - min + 1e-3) and the (u, v)
    trajectories of GRPO unclipped, theoretical and practical LAD."""
    if not (path / "runs" / "config.json").is_file():
        return {}
    res = results.load(path / "runs")
    grid = read_csv(path / "loss_grid.csv", keep_str=("divergence",))
    out: dict[str, Any] = {}
    for div in divergences:
        g = grid.where(divergence=div)
        if not len(g):
            continue
        u, v = np.unique(g["u"]), np.unique(g["v"])
        z = np.zeros((len(v), len(u)))
        z[np.searchsorted(v, g["v"]), np.searchsorted(u, g["u"])] = g["loss"]
        traj = {}
        for r in res.runs:
            if r["objective"] == "reinforce" or r["divergence"] == div:
                logp = np.log(np.clip(res.policies[:, r["run"]], 1e-300, None))
                oid = objective_id(r["objective"], r["divergence"])
                traj[oid] = {
                    "label": objective_label(oid),
                    "u": (logp[:, 1] - logp[:, 0]).round(5).tolist(),
                    "v": (logp[:, 2] - logp[:, 0]).round(5).tolist(),
                }
        out[div] = {
            "u": u.tolist(),
            "v": v.tolist(),
            "z": np.log10(z - z.min() + 1e-3).round(4).tolist(),
            "traj": traj,
        }
    return out


def _figures() -> dict[str, go.Figure]:
    """The four plotly figures, with empty traces the page's glue fills (their order is the
    glue's contract: see the trace indices in _SCRIPT)."""
    pol = make_subplots(rows=1, cols=2, subplot_titles=("A", "B"), shared_yaxes=True)
    for i, side in enumerate(SIDES, start=1):
        c = COLORS[side]
        pol.add_trace(
            go.Scatter(
                name="P_A",
                mode="lines",
                line={"color": COLORS["target"], "dash": "dash"},
                showlegend=i == 1,  # the same curve in both panels: one legend entry
            ),
            1,
            i,
        )
        pol.add_trace(
            go.Scatter(name=f"{side} min", mode="lines", line={"width": 0}, showlegend=False),
            1,
            i,
        )
        pol.add_trace(
            go.Scatter(
                name=f"{side} min-max over seeds",
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor=_alpha(c, 0.25),
            ),
            1,
            i,
        )
        pol.add_trace(go.Scatter(name=f"{side} π_t", mode="lines+markers", line={"color": c}), 1, i)
    pol.update_xaxes(title_text="arm")
    pol.update_yaxes(title_text="probability", row=1, col=1)
    # the horizontal legend goes below the "arm" axis titles, not over them
    pol.update_layout(
        height=400, margin={"t": 40, "b": 60}, legend={"orientation": "h", "y": -0.22}
    )

    cur = make_subplots(rows=1, cols=4, subplot_titles=[label for _, label in METRICS])
    for j in range(1, 5):
        for side in SIDES:
            c = COLORS[side]
            cur.add_trace(
                go.Scatter(name=f"{side} min", mode="lines", line={"width": 0}, showlegend=False),
                1,
                j,
            )
            cur.add_trace(
                go.Scatter(
                    name=f"{side} band",
                    mode="lines",
                    line={"width": 0},
                    fill="tonexty",
                    fillcolor=_alpha(c, 0.2),
                    showlegend=False,
                ),
                1,
                j,
            )
            cur.add_trace(
                go.Scatter(name=side, mode="lines", line={"color": c}, showlegend=j == 1), 1, j
            )
        cur.add_vline(x=0, line={"color": "#888", "dash": "dot"}, row=1, col=j)
    cur.update_xaxes(title_text="step")
    cur.update_layout(height=300, margin={"t": 40, "b": 40})

    div = make_subplots(
        rows=1,
        cols=4,
        subplot_titles=(
            "f(x)",
            "weight f'(x)",
            "on-policy weight w(a) = -f'(e^-a)",
            "push on log r against r (a = 1)",
        ),
    )
    div.add_trace(go.Scatter(name="f", mode="lines"), 1, 1)
    div.add_trace(go.Scatter(name="f'", mode="lines"), 1, 2)
    div.add_trace(go.Scatter(name="LAD w(a)", mode="lines"), 1, 3)
    div.add_trace(go.Scatter(name="GRPO: a", mode="lines", line={"dash": "dash"}), 1, 3)
    div.add_trace(go.Scatter(name="LAD -r f'(x)", mode="lines"), 1, 4)
    div.add_trace(
        go.Scatter(name=f"GRPO clipped (ε = {GRPO_EPS})", mode="lines", line={"dash": "dash"}),
        1,
        4,
    )
    div.update_xaxes(title_text="x = r e^-a", row=1, col=1)
    div.update_xaxes(title_text="x", row=1, col=2)
    div.update_xaxes(title_text="a = A / η", row=1, col=3)
    div.update_xaxes(title_text="r = π / π_old", row=1, col=4)
    div.update_yaxes(range=[-3, 3], row=1, col=2)
    div.update_layout(height=300, margin={"t": 40, "b": 40})

    fig2 = go.Figure()
    fig2.add_trace(
        go.Contour(name="practical LAD loss", colorscale="Blues_r", showscale=False, ncontours=16)
    )
    for name, color in (
        ("GRPO unclipped", "#ff7f0e"),
        ("theoretical", "#2ca02c"),
        ("practical", "#9467bd"),
    ):
        fig2.add_trace(go.Scatter(name=name, mode="lines", line={"color": color, "width": 2.5}))
    fig2.add_trace(
        go.Scatter(
            name="target π*", mode="markers", marker={"symbol": "star", "size": 14, "color": "#000"}
        )
    )
    fig2.update_layout(
        height=460,
        width=760,
        margin={"t": 30},
        xaxis_title="u = θ1 - θ0",
        yaxis_title="v = θ2 - θ0",
    )
    return {"policy": pol, "curves": cur, "theory": div, "fig2": fig2}


def _alpha(hex_color: str, a: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{a})"


def render(data: dict[str, Any]) -> str:
    """The whole page as one HTML string (plotly.js inline)."""
    figs = _figures()
    divs = []
    for i, (name, fig) in enumerate(figs.items()):
        divs.append(
            pio.to_html(
                fig,
                full_html=False,
                include_plotlyjs=i == 0,  # inline once, first
                div_id=name,
                config={"displaylogo": False, "responsive": True},
            )
        )
    page = _TEMPLATE
    for k, v in {
        "__POLICY__": divs[0],
        "__CURVES__": divs[1],
        "__DIVERGENCE__": divs[2],
        "__FIG2__": divs[3],
        "__DATA__": json.dumps(data, separators=(",", ":")).replace("</", "<\\/"),
        "__DEFAULTS__": json.dumps(DEFAULTS),
        "__SCRIPT__": _SCRIPT,
    }.items():
        page = page.replace(k, v)
    return page


def write_page(grid_dir: str | Path, out: str | Path) -> Path:
    """Read a built grid and write the page to `out` (a file path) atomically."""
    page = render(collect(grid_dir))
    return atomic_write(Path(out), page)


def size_mb(path: Path) -> float:
    return math.ceil(path.stat().st_size / 1e5) / 10


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>labkit bandit explorer</title>
<style>
body{font-family:system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:18px 0 4px}
.controls{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
fieldset{border:1px solid #ccc;border-radius:6px;padding:6px 10px}
legend{font-weight:600} label{display:inline-block;margin:2px 8px 2px 0;font-size:13px}
select{font-size:13px} #step-label{font-variant-numeric:tabular-nums;min-width:90px;display:inline-block}
.note{font-size:12px;color:#666}
</style></head><body>
<h1>labkit bandit explorer</h1>
<div class="note">Every number on this page was computed by <code>lad bandit explore</code> and saved with the page: it works offline.</div>
<div class="controls">
<fieldset><legend>shared</legend>
<label>landscape <select id="landscape"></select></label><br>
<button id="play">play</button>
<input id="step" type="range" min="0" value="0" step="1" style="width:260px">
<span id="step-label"></span>
</fieldset>
<fieldset id="ctl-A"><legend style="color:#1f77b4">A</legend></fieldset>
<fieldset id="ctl-B"><legend style="color:#d62728">B</legend></fieldset>
</div>
<h2>policy π_t against P_A</h2>
__POLICY__
<h2>learning curves</h2>
__CURVES__
<h2>divergence <select id="divergence"></select></h2>
__DIVERGENCE__
<h2>Figure 2: three arms, practical LAD loss and trajectories (exact gradients, SGD)</h2>
__FIG2__
<script>const DATA = __DATA__; const DEFAULTS = __DEFAULTS__;</script>
<script>__SCRIPT__</script>
</body></html>
"""

# Glue only: decode arrays, read controls, hand plotly the selected data.
_SCRIPT = r"""
(function () {
  const S = DATA.steps, L = DATA.log_steps, NM = DATA.metrics.length;
  const cache = {};
  function bytes(b64) { const s = atob(b64), u = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i); return u; }
  function f32(b64) { return new Float32Array(bytes(b64).buffer); }
  function f16(b64) { const u = new Uint16Array(bytes(b64).buffer), out = new Float32Array(u.length);
    for (let i = 0; i < u.length; i++) { const h = u[i], s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
      out[i] = e === 0 ? s * m * 5.960464477539063e-8 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * Math.pow(2, e - 15); }
    return out; }
  const state = { step: 0, playing: null, landscape: Object.keys(DATA.landscapes)[0] };
  const AXES = [["objective", DATA.objectives.map(o => [o.id, o.label])],
    ["eta", DATA.etas.map(v => [v, "η = " + v + "  (κ = " + (+(1 / +v).toPrecision(3)) + ")"])],
    ["lr", DATA.lrs.map(v => [v, "lr " + v])],
    ["mu", DATA.mus.map(v => [String(v), v === 0 ? "π_old fixed" : "μ = " + v + " (refresh every " + v + ")"])],
    ["sampling", DATA.samplings.map(v => [v, v === "exact" ? "exact expectation" : v.replace("G", "G = ") + " samples"])],
    ["seed", [["all", "all seeds: mean, min-max"]].concat(DATA.seeds.map(v => [String(v), "seed " + v]))]];
  function select(id, options, value) { const el = document.createElement("select"); el.id = id;
    for (const [v, t] of options) { const o = document.createElement("option"); o.value = v; o.textContent = t; el.appendChild(o); }
    if (value !== undefined && options.some(o => o[0] === String(value))) el.value = String(value);
    el.addEventListener("change", update); return el; }
  for (const side of ["A", "B"]) { const box = document.getElementById("ctl-" + side);
    for (const [ax, opts] of AXES) { const lab = document.createElement("label"); lab.textContent = ax + " ";
      lab.appendChild(select(side + "-" + ax, opts, DEFAULTS[side][ax])); box.appendChild(lab); box.appendChild(document.createElement("br")); } }
  const land = document.getElementById("landscape");
  for (const k of Object.keys(DATA.landscapes)) { const o = document.createElement("option"); o.value = k; o.textContent = DATA.landscapes[k].name; land.appendChild(o); }
  land.addEventListener("change", update);
  const divSel = document.getElementById("divergence");
  for (const d of DATA.divergences) { const o = document.createElement("option"); o.value = d; o.textContent = d; divSel.appendChild(o); }
  divSel.addEventListener("change", drawTheory);
  const slider = document.getElementById("step"); slider.max = S.length - 1;
  slider.addEventListener("input", () => { state.step = +slider.value; drawStep(); });
  document.getElementById("play").addEventListener("click", () => {
    const btn = document.getElementById("play");
    if (state.playing) { clearInterval(state.playing); state.playing = null; btn.textContent = "play"; return; }
    btn.textContent = "pause";
    state.playing = setInterval(() => { state.step = (state.step + 1) % S.length; slider.value = state.step; drawStep(); }, 250);
  });
  function val(side, ax) { return document.getElementById(side + "-" + ax).value; }
  function key(side) { return [land.value, val(side, "objective"), val(side, "eta"), val(side, "lr"), val(side, "mu"), val(side, "sampling")].join("|"); }
  function point(side) { const k = key(side), p = DATA.points[k]; if (!p) return null;
    if (!cache[k]) { const pol = f16(p.pol), met = f32(p.met), n = met.length / (L.length * NM);
      cache[k] = { pol: pol, met: met, n: n, K: pol.length / (n * S.length) }; }
    return cache[k]; }
  function seeds(side, n) { const s = val(side, "seed"); if (s === "all") return [...Array(n).keys()];
    const i = DATA.seeds.indexOf(+s); return i >= 0 && i < n ? [i] : [0]; }
  function stats(get, idx, len) { const mean = [], lo = [], hi = [];
    for (let j = 0; j < len; j++) { let s = 0, a = Infinity, b = -Infinity;
      for (const i of idx) { const v = get(i, j); s += v; a = Math.min(a, v); b = Math.max(b, v); }
      mean.push(s / idx.length); lo.push(a); hi.push(b); }
    return { mean: mean, lo: lo, hi: hi }; }
  function policyStats(side) { const p = point(side); if (!p) return null; const t = state.step, K = p.K;
    return stats((i, j) => p.pol[(i * S.length + t) * K + j], seeds(side, p.n), K); }
  function metricStats(side, m) { const p = point(side); if (!p) return null;
    return stats((i, j) => p.met[(i * L.length + j) * NM + m], seeds(side, p.n), L.length); }
  function drawStep() {
    document.getElementById("step-label").textContent = "step " + S[state.step];
    const xs = [], ys = [], idx = [];
    ["A", "B"].forEach((side, k) => { const st = policyStats(side), pa = DATA.landscapes[land.value].pa[val(side, "eta")] || [];
      const arms = [...Array((st ? st.mean : pa).length).keys()];
      xs.push(arms.slice(0, pa.length), arms, arms, arms);
      ys.push(pa, st ? st.lo : [], st ? st.hi : [], st ? st.mean : []);
      idx.push(4 * k, 4 * k + 1, 4 * k + 2, 4 * k + 3); });
    Plotly.restyle("policy", { x: xs, y: ys }, idx);
    const shapes = DATA.metrics.map((_, m) => ({ type: "line", xref: m ? "x" + (m + 1) : "x", yref: (m ? "y" + (m + 1) : "y") + " domain",
      x0: S[state.step], x1: S[state.step], y0: 0, y1: 1, line: { color: "#888", dash: "dot" } }));
    Plotly.relayout("curves", { shapes: shapes });
  }
  function drawCurves() { const xs = [], ys = [], idx = [];
    for (let m = 0; m < NM; m++) ["A", "B"].forEach((side, k) => { const st = metricStats(side, m);
      const base = 6 * m + 3 * k; xs.push(L, L, L); ys.push(st ? st.lo : [], st ? st.hi : [], st ? st.mean : []);
      idx.push(base, base + 1, base + 2); });
    Plotly.restyle("curves", { x: xs, y: ys }, idx); }
  function drawTheory() { const d = divSel.value, t = DATA.theory[d], g = DATA.grpo_push;
    Plotly.restyle("theory", { x: [t.x, t.x, t.a, t.a, t.r, g.r], y: [t.f, t.fp, t.w, t.a, t.push, g.push],
      name: ["f (" + d + ")", "f' (" + d + ")", "LAD w(a), " + d, "GRPO: a", "LAD -r f'(x), " + d, "GRPO clipped (ε = 0.2)"] }, [0, 1, 2, 3, 4, 5]);
    const dyn = DATA.dynamics[d]; if (!dyn) return;
    const tr = dyn.traj, ids = ["reinforce", "lad_theory:" + d, "lad:" + d];
    const last = tr["lad_theory:" + d];
    Plotly.restyle("fig2", { x: [dyn.u].concat(ids.map(i => tr[i] ? tr[i].u : []), [last ? [last.u[last.u.length - 1]] : []]),
      y: [dyn.v].concat(ids.map(i => tr[i] ? tr[i].v : []), [last ? [last.v[last.v.length - 1]] : []]),
      z: [dyn.z, null, null, null, null], name: ["practical LAD loss (" + d + ")"].concat(ids.map(i => tr[i] ? tr[i].label : i), ["target π* (theoretical LAD's end)"]) }, [0, 1, 2, 3, 4]); }
  function update() {
    const a = val("A", "objective").split(":")[1], b = val("B", "objective").split(":")[1];
    const d = a || b; if (d && DATA.divergences.includes(d) && divSel.value !== d) { divSel.value = d; drawTheory(); }
    drawCurves(); drawStep(); }
  window.explorer = { state: state, key: key, data: DATA };
  drawTheory(); update();
  document.body.setAttribute("data-ready", "1");
})();
"""


def open_in_browser(page: Path) -> str:
    """Open the page in the default web browser; returns what to tell the user."""
    import webbrowser

    uri = page.resolve().as_uri()
    try:
        webbrowser.get()
    except webbrowser.Error:
        return f"no web browser found here: open {uri}"
    webbrowser.open(uri)
    return f"opened {uri}"
