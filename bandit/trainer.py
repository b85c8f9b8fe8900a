"""The vectorised bandit trainer: R independent runs advance as one tensor computation per step.

Each run is a softmax policy over K logits. A step, for all runs at once (docs/method.md sections 3-5):

1. draw G arms per run from pi_old (counter-based, keyed on the run's seed: bandit/rng.py), or
   with sampling="exact" take every arm weighted by pi_old (the expectation the sample estimates);
2. rewards of those arms (plus optional noise), advantages either exact (reward minus the baseline
   E_pi_old[reward]) or a labkit estimator over each run's group (grpo, dr_grpo, rloo, raw);
3. the loss of every run through labkit: `compute_loss` for the registered objectives, with
   log-probs of shape (R, G, 1), or (R, K, 1) with each arm weighted by how often it was drawn
   when that is the same mean (`by_arm`); `theoretical_lad_loss` on the full (R, K)
   distributions for `lad_theory`; each returns one loss per run, and their sum gives every run
   its own gradient;
4. Adam or SGD with a per-run learning rate (bandit/optim.py).

Python loops run over steps and over the few (objective, divergence) groups only; eta and lr are
(R, ...) tensors. Departures from a textbook RL loop, on purpose:
- pi_old stays the initial policy unless refresh_every > 0 (one trust-region problem solved to
  convergence, as in the paper's Figure 1); each step draws a fresh group from pi_old.
- `lad_theory` always uses exact advantages and the exact distributions (it is the reference the
  sampled losses approximate); reward noise and estimators affect only the sampled objectives.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from bandit import gradients, rng
from bandit.config import BanditConfig, RunSpec, expand_runs
from bandit.landscapes import Landscape, get_landscape
from bandit.metrics import METRICS, policy_metrics
from bandit.optim import AdamState, adam_bias, adam_step, sgd_step
from labkit.advantages import compute_advantages
from labkit.config import AdvantageConfig, LossConfig
from labkit.errors import NonFiniteError
from labkit.lad import advantage_distribution, theoretical_lad_loss
from labkit.losses import compute_loss

Tensor = torch.Tensor
Progress = Callable[[int, int], None]


def _non_finite_message(runs: list[RunSpec], first_bad: np.ndarray, config: BanditConfig) -> str:
    """One line naming the runs that went non-finite and the step at which each did."""
    bad = np.flatnonzero(first_bad)
    named = [
        f"{runs[i].objective}{'/' + runs[i].divergence if runs[i].divergence else ''} "
        f"eta={runs[i].eta:g} lr={runs[i].lr:g} seed={runs[i].seed} (step {first_bad[i]})"
        for i in bad[:5]
    ]
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    hint = "dtype=float64, a larger eta or a smaller lr"
    return (
        f"non-finite loss or gradient from step {int(first_bad[bad].min())} in {len(bad)} of "
        f"{len(runs)} runs: {'; '.join(named)}{more}; stopped, nothing saved (try {hint})"
    )


@dataclass
class BanditResult:
    """Everything a run writes. metrics (L, R, len(METRICS)) at log_steps (L,); policies
    (S, R, K) at snapshot_steps (S,)."""

    config: BanditConfig
    landscape: Landscape
    runs: list[RunSpec]
    log_steps: np.ndarray
    metrics: np.ndarray
    snapshot_steps: tuple[int, ...]
    policies: np.ndarray
    seconds: float


@dataclass
class _Group:
    """A contiguous slice of runs that share a code path."""

    objective: str
    divergence: str
    rows: slice
    loss_config: LossConfig | None  # None for lad_theory
    weighted: bool  # the loss runs over the K arms, weighted by pi_old or by draw counts
    eta: Tensor  # (n, 1): lad_theory's temperature


def _groups(runs: list[RunSpec], config: BanditConfig, eta: Tensor, n_arms: int) -> list[_Group]:
    groups: list[_Group] = []
    start = 0
    for i in range(1, len(runs) + 1):
        if i == len(runs) or runs[i].group != runs[start].group:
            obj, div, clip_high = runs[start].group
            rows = slice(start, i)
            loss_config = None
            weighted = obj != "lad_theory" and (
                config.sampling == "exact" or by_arm(config, obj, n_arms)
            )
            if obj != "lad_theory":
                loss_config = LossConfig(
                    loss_mode=obj,
                    divergence=div or "js",
                    eta=eta[rows].view(-1, 1, 1),
                    # over weighted arms only token-mean is the weighted mean (with one token per
                    # sample every mode is that same mean)
                    loss_agg_mode="token-mean" if weighted else config.loss_agg_mode,
                    epsilon=config.epsilon,
                    epsilon_high=clip_high,
                    standardized=config.standardized,
                )
            groups.append(_Group(obj, div, rows, loss_config, weighted, eta[rows].view(-1, 1)))
            start = i
    return groups


def initial_logits(config: BanditConfig, seeds: Tensor, n_arms: int, dtype: torch.dtype) -> Tensor:
    """(R, K) initial logits: zeros, N(0, init_scale^2) keyed on each run's seed, or given."""
    r = seeds.shape[0]
    if config.init == "uniform":
        return torch.zeros(r, n_arms, dtype=dtype, device=seeds.device)
    if config.init == "random":
        return config.init_scale * rng.normal(seeds, rng.INIT_A, rng.INIT_B, 0, n_arms, dtype)
    logits = torch.tensor(config.init_logits, dtype=dtype, device=seeds.device)
    if logits.shape != (n_arms,):
        raise ValueError(
            f"init_logits has {logits.numel()} values, expected one per arm ({n_arms})"
        )
    return logits.expand(r, n_arms).clone()


def _check_landscape(config: BanditConfig, landscape: Landscape) -> None:
    rewards = landscape.array()
    if config.reward_noise == "bernoulli" and not ((rewards >= 0) & (rewards <= 1)).all():
        raise ValueError(
            f"reward_noise='bernoulli' needs rewards in [0, 1] (they are probabilities); landscape "
            f"{landscape.name!r} has rewards in [{rewards.min():.3g}, {rewards.max():.3g}]"
        )


def _sampled_rewards(config: BanditConfig, mean: Tensor, seeds: Tensor, step: int) -> Tensor:
    """Noisy rewards (R, G) around their means (R, G)."""
    if config.reward_noise == "gaussian":
        return mean + config.noise_std * rng.normal(
            seeds, rng.NOISE_A, rng.NOISE_B, step, mean.shape[1], mean.dtype
        )
    if config.reward_noise == "bernoulli":
        return (rng.uniform(seeds, rng.NOISE_A, step, mean.shape[1], mean.dtype) < mean).to(
            mean.dtype
        )
    return mean


class OldPolicy:
    """pi_old of every run, the exact advantages under it, and a sampler for it.

    A fixed pi_old (built once) draws through alias tables, O(1) per draw, or straight from the
    hash when it is uniform (the default); a refreshed one through inverse-CDF search, which is
    cheaper to rebuild every few steps. Each
    run's sampler depends only on its own pi_old and refresh period, so a draw depends only on
    (pi_old, seed, step, index) whatever else shares the batch.

    logits (R, K); fixed: (R,) bool, True where pi_old never changes, or one bool for every
    run; rewards (K,) the arms' mean rewards. Everything derived from pi_old (probs, baseline,
    adv) is computed here, once per refresh, not at every step."""

    def __init__(self, logits: Tensor, fixed: Tensor | bool, rewards: Tensor) -> None:
        self.rewards = rewards
        self._set(torch.log_softmax(logits.detach(), dim=-1))
        fixed = torch.as_tensor(fixed, device=logits.device).expand(logits.shape[0])
        uniform = fixed & (self.log_prob == self.log_prob[:, :1]).all(-1)
        alias = fixed & ~uniform
        # (kind, rows (R,) bool): one sampler per kind present. With several kinds, each draws
        # for every run and torch.where keeps each run's own: the same draws as sampling each
        # subset (a draw depends only on its run's seed and pi_old), and every shape is known
        # before the step runs, which the compiled path needs.
        self.kinds = [
            (kind, rows)
            for kind, rows in (("hash", uniform), ("alias", alias), ("cdf", ~fixed))
            if bool(rows.any())
        ]
        if any(kind == "alias" for kind, _ in self.kinds):
            # tables for the alias rows; elsewhere "keep arm i" (never selected)
            prob, table = rng.alias_table(self.probs[alias])
            self.alias = (
                torch.ones_like(self.probs).index_put_((alias,), prob),
                torch.arange(self.probs.shape[-1], device=logits.device)
                .expand_as(self.probs)
                .clone()
                .index_put_((alias,), table),
            )
        self._build_cdf()

    def _set(self, log_prob: Tensor) -> None:
        self.log_prob = log_prob
        self.probs = log_prob.exp()
        self.baseline = self.probs @ self.rewards.unsqueeze(-1)  # (R, 1): E_pi_old[reward]
        self.adv = self.rewards - self.baseline  # (R, K): exact advantages

    def _build_cdf(self) -> None:
        if any(kind == "cdf" for kind, _ in self.kinds):
            cdf = self.probs.cumsum(-1)
            self.cdf = cdf / cdf[:, -1:]

    def refresh(self, logits: Tensor, rows: Tensor) -> None:
        """Copy the policy into pi_old on rows (R,) bool (never fixed ones)."""
        self._set(
            torch.where(
                rows.unsqueeze(-1), torch.log_softmax(logits.detach(), dim=-1), self.log_prob
            )
        )
        self._build_cdf()

    def sample(self, seeds: Tensor, step: int | Tensor, n: int) -> Tensor:
        """(R, n) int64 arms."""
        out = None
        for kind, rows in self.kinds:
            if kind == "hash":
                arms = rng.uniform_sample(seeds, rng.SAMPLE, step, n, self.log_prob.shape[-1])
            elif kind == "alias":
                arms = rng.alias_sample(*self.alias, seeds, rng.SAMPLE, step, n)
            else:
                u = rng.uniform(seeds, rng.SAMPLE, step, n, torch.float64)
                arms = rng.categorical(self.cdf, u)
            out = arms if out is None else torch.where(rows.unsqueeze(-1), arms, out)
        return out


def by_arm(config: BanditConfig, objective: str, n_arms: int) -> bool:
    """Whether this objective's sampled loss is evaluated once per arm, weighted by its draws.

    With exact advantages and no reward noise, a sample's loss depends only on its arm, so the
    mean over G draws is sum_a n_a l(a) / G: the token-mean over the K arms with the counts n_a
    as mask (one token per response, so every verl aggregation mode is this mean). The same
    number up to float rounding, and cheaper when K <= G (no gathers, fewer entries). kl_cov
    ranks individual samples, so it always sees them one by one.
    """
    return (
        config.advantage == "exact"
        and config.reward_noise == "none"
        and objective != "kl_cov"
        and n_arms <= config.num_generations
    )


@dataclass
class _Draw:
    """What one step's losses read besides the logits, shared by the loss and its closed-form
    gradient. weights (R, K): per-arm weights of the token-mean over arms (pi_old, or draw
    counts), or None; arms (R, G) and adv (R, G): the samples, for groups that see them one by one
    (None when no group does)."""

    log_pi_old: Tensor
    adv_full: Tensor
    weights: Tensor | None
    arms: Tensor | None
    adv: Tensor | None


def _draw(
    config: BanditConfig,
    groups: list[_Group],
    old: OldPolicy,
    seeds: Tensor,
    step: int,
) -> _Draw:
    log_pi_old, baseline, adv_full = old.log_prob, old.baseline, old.adv
    r = log_pi_old.shape[0]
    weights = old.probs if config.sampling == "exact" else None
    arms = adv = None
    if config.sampling == "sample":
        g = config.num_generations
        drawn = old.sample(seeds, step, g)
        if any(grp.weighted for grp in groups):
            weights = torch.zeros_like(log_pi_old).scatter_add_(
                1, drawn, torch.ones_like(drawn, dtype=log_pi_old.dtype)
            )
        if any(grp.loss_config and not grp.weighted for grp in groups):
            arms = drawn
            reward = _sampled_rewards(config, old.rewards[arms], seeds, step)
            if config.advantage == "exact":
                adv = reward - baseline
            else:
                group_ids = torch.arange(r, device=seeds.device).repeat_interleave(g)
                adv = compute_advantages(
                    reward.flatten(), group_ids, AdvantageConfig(estimator=config.advantage)
                ).view(r, g)
    return _Draw(log_pi_old, adv_full, weights, arms, adv)


def loss_per_run(
    config: BanditConfig,
    groups: list[_Group],
    logits: Tensor,
    old: OldPolicy,
    seeds: Tensor,
    step: int,
) -> Tensor:
    """(R,) loss of every run at this step (differentiable in logits (R, K)): the reference
    that `grad_per_run` computes the gradient of in closed form."""
    d = _draw(config, groups, old, seeds, step)
    log_pi = torch.log_softmax(logits, dim=-1)
    losses = []
    for grp in groups:
        rows = grp.rows
        if grp.loss_config is None:
            loss = theoretical_lad_loss(
                log_pi[rows],
                d.log_pi_old[rows],
                d.adv_full[rows],
                grp.divergence,
                grp.eta,
                config.standardized,
            )
        elif grp.weighted:
            loss, _ = compute_loss(
                d.log_pi_old[rows].unsqueeze(-1),
                log_pi[rows].unsqueeze(-1),
                d.adv_full[rows],
                d.weights[rows].unsqueeze(-1),
                grp.loss_config,
                metrics=False,  # sample means; the bandit logs exact metrics of its own
            )
        else:
            arms = d.arms[rows]
            lp = log_pi[rows].gather(1, arms).unsqueeze(-1)
            loss, _ = compute_loss(
                d.log_pi_old[rows].gather(1, arms).unsqueeze(-1),
                lp,
                d.adv[rows],
                torch.ones_like(lp),
                grp.loss_config,
                metrics=False,
            )
        losses.append(loss)
    return torch.cat(losses)


@torch.no_grad()
def grad_per_run(
    config: BanditConfig,
    groups: list[_Group],
    logits: Tensor,
    old: OldPolicy,
    seeds: Tensor,
    step: int,
) -> Tensor:
    """(R, K) gradient of `loss_per_run` w.r.t. the logits, in closed form (bandit/gradients.py):
    no autograd graph. Equal to autograd's up to float rounding (tests/test_bandit_gradients.py)."""
    d = _draw(config, groups, old, seeds, step)
    log_pi = torch.log_softmax(logits, dim=-1)
    pi = log_pi.exp()
    grads = []
    for grp in groups:
        rows = grp.rows
        if grp.loss_config is None:
            grad = gradients.theoretical_grad(
                log_pi[rows],
                d.log_pi_old[rows],
                d.adv_full[rows],
                grp.divergence,
                grp.eta,
                config.standardized,
            )
        elif grp.weighted:
            c = gradients.entry_weight(
                grp.loss_config,
                d.log_pi_old[rows].unsqueeze(-1),
                log_pi[rows].unsqueeze(-1),
                d.adv_full[rows].unsqueeze(-1),
                d.weights[rows].unsqueeze(-1),
            )
            grad = gradients.weighted_grad(c.squeeze(-1), d.weights[rows], pi[rows])
        else:
            arms = d.arms[rows]
            c = gradients.entry_weight(
                grp.loss_config,
                d.log_pi_old[rows].gather(1, arms).unsqueeze(-1),
                log_pi[rows].gather(1, arms).unsqueeze(-1),
                d.adv[rows].unsqueeze(-1),
            )
            grad = gradients.sampled_grad(c.squeeze(-1), arms, pi[rows])
        grads.append(grad)
    return torch.cat(grads)


def _mark_non_finite(first_bad: Tensor, grad: Tensor, step: int | Tensor) -> None:
    """Set first_bad (R,) int64 to step, in place, for the runs whose gradient (R, K) is
    non-finite for the first time. amax propagates NaN and keeps inf, so isfinite of it is
    isfinite(grad).all(-1) in one reduction."""
    first_bad.masked_fill_(~torch.isfinite(grad.abs().amax(-1)) & (first_bad == 0), step)


def _optimizer_step(
    config: BanditConfig,
    logits: Tensor,
    grad: Tensor,
    adam: AdamState,
    lr: Tensor,
    bias: tuple[Tensor, Tensor] | None = None,
) -> None:
    if config.optimizer == "adam":
        adam_step(logits, grad, adam, lr, config.adam_betas, config.adam_eps, bias)
    else:
        sgd_step(logits, grad, lr)


@torch.no_grad()
def update(
    config: BanditConfig,
    groups: list[_Group],
    logits: Tensor,
    adam: AdamState,
    old: OldPolicy,
    seeds: Tensor,
    lr: Tensor,
    first_bad: Tensor,
    step: int | Tensor,
    bias: tuple[Tensor, Tensor] | None = None,
) -> None:
    """One training step of every run, in place: the draws, the closed-form gradient, the
    optimiser update of logits (R, K) and adam, and first_bad (R,) (see `_mark_non_finite`).
    step may be a 0-d int64 tensor and bias Adam's precomputed corrections (the compiled
    path)."""
    grad = grad_per_run(config, groups, logits, old, seeds, step)
    _optimizer_step(config, logits, grad, adam, lr, bias)
    _mark_non_finite(first_bad, grad, step)


def compiled_update(
    config: BanditConfig,
    groups: list[_Group],
    old: OldPolicy,
    seeds: Tensor,
    lr: Tensor,
) -> Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor], None]:
    """`update` compiled by torch.compile (inductor) into a few fused loops: (logits, exp_avg,
    exp_avg_sq, first_bad, step, bias), the first four updated in place; step a 0-d int64
    tensor, bias (2,) float64 this step's `adam_bias` (a row of the table `train` builds).

    Eager torch makes one pass over memory per operation (about 60 per step for LAD); the fused
    kernel makes a few. The graph is specialised to this sweep's shapes and code paths; the
    first call compiles it (tens of seconds on 2 cores), later processes load it from
    inductor's on-disk cache (seconds). pi_old is read from `old` at every call, so refreshes
    need no recompilation. The same mathematics as `update`, so equal to it up to float
    rounding (tests/test_bandit_compiled.py)."""

    def step_fn(
        logits: Tensor,
        exp_avg: Tensor,
        exp_avg_sq: Tensor,
        first_bad: Tensor,
        step: Tensor,
        bias: Tensor,
    ) -> None:
        adam = AdamState(exp_avg, exp_avg_sq)  # its step count is not read: bias is given
        update(config, groups, logits, adam, old, seeds, lr, first_bad, step, (bias[0], bias[1]))

    # Each sweep shape is its own graph; dynamo's default limit of 8 graphs per function would
    # make fullgraph=True fail in a process that runs more sweeps (tests, the explorer).
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 1024)
    return torch.compile(step_fn, fullgraph=True, dynamic=False)


def prepare(config: BanditConfig) -> Landscape:
    """Check the machine (device), load the landscape and run every check that needs it (reward
    file, Bernoulli range, init_logits length); raises ValueError before any training or file is
    written."""
    config.check_machine()
    landscape = get_landscape(config.landscape, config.n_arms, config.rewards_file)
    _check_landscape(config, landscape)
    if config.init == "given" and len(config.init_logits or ()) != landscape.n_arms:
        raise ValueError(
            f"init_logits has {len(config.init_logits or ())} values, expected one per arm ({landscape.n_arms})"
        )
    return landscape


def train(config: BanditConfig, progress: Progress | None = None) -> BanditResult:
    """Run every run of the sweep for config.steps steps. Raises ValueError on bad input before
    any work. progress(done, total) is called now and then.

    Tensors are small (R x G), so one intra-op thread is fastest; on a busy machine more threads
    spin against each other (10x slower measured): callers set torch.set_num_threads(1), as the
    CLI and the experiment workers do."""
    landscape = prepare(config)
    runs = expand_runs(config)
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    dev = torch.device(config.device)
    k, n_runs = landscape.n_arms, len(runs)
    seeds = torch.tensor([run.seed for run in runs], dtype=torch.int64, device=dev)
    eta = torch.tensor([run.eta for run in runs], dtype=dtype, device=dev)
    lr = torch.tensor([run.lr for run in runs], dtype=dtype, device=dev).unsqueeze(-1)
    rewards = torch.tensor(landscape.rewards, dtype=dtype, device=dev)
    modes = torch.tensor(landscape.mode_matrix(), dtype=dtype, device=dev)
    log_pa = advantage_distribution(rewards.expand(n_runs, k), eta.unsqueeze(-1))
    groups = _groups(runs, config, eta, k)

    logits = initial_logits(config, seeds, k, dtype).requires_grad_(config.gradient == "autograd")
    adam = AdamState.zeros_like(logits.detach())
    log_steps = sorted({0, config.steps, *range(0, config.steps, config.log_every)})
    snapshots = config.snapshot_steps
    metrics = np.zeros((len(log_steps), n_runs, len(METRICS)))
    policies = np.zeros((len(snapshots), n_runs, k))

    # the step at which each run first had a non-finite loss or gradient (0: never); checked
    # only where the loop syncs anyway (log and snapshot steps), so CUDA runs stay asynchronous
    first_bad = torch.zeros(n_runs, dtype=torch.int64, device=dev)

    def check() -> None:
        if bool(first_bad.any()):
            raise NonFiniteError(_non_finite_message(runs, first_bad.cpu().numpy(), config))

    def record(step: int, log_pi_old: Tensor) -> None:
        if step not in log_index and step not in snap_index:
            return  # most steps: nothing to compute
        check()
        log_pi = torch.log_softmax(logits.detach(), dim=-1)
        if step in log_index:
            metrics[log_index[step]] = (
                policy_metrics(log_pi, log_pi_old, log_pa, rewards, modes, config.mode_min_mass)
                .cpu()
                .numpy()
            )
        if step in snap_index:
            policies[snap_index[step]] = log_pi.exp().cpu().numpy()

    log_index = {s: i for i, s in enumerate(log_steps)}
    snap_index = {s: i for i, s in enumerate(snapshots)}
    tick = max(1, config.steps // 200)
    start = time.perf_counter()
    periods = torch.tensor([run.refresh for run in runs], device=dev)
    old = OldPolicy(logits, periods == 0, rewards)
    compiled = None
    if config.gradient == "compiled":
        compiled = compiled_update(config, groups, old, seeds, lr)
        # the step and Adam's bias corrections as tensors, so one compiled graph serves every step
        steps_t = torch.arange(config.steps + 1, device=dev)
        bias_t = torch.stack(
            adam_bias(steps_t.to(torch.float64).clamp(min=1), config.adam_betas), -1
        )
    # rows of each refresh period, to copy the policy into pi_old every `period` steps
    refresh_rows = {int(p): periods == p for p in periods.unique().tolist() if p > 0}
    record(0, old.log_prob)
    for step in range(1, config.steps + 1):
        due = [rows for p, rows in refresh_rows.items() if step > 1 and (step - 1) % p == 0]
        if due:
            old.refresh(logits, torch.stack(due).any(0))
        if compiled is not None:
            compiled(logits, adam.exp_avg, adam.exp_avg_sq, first_bad, steps_t[step], bias_t[step])
            adam.step = step
        elif config.gradient == "closed":
            update(config, groups, logits, adam, old, seeds, lr, first_bad, step)
        else:
            loss = loss_per_run(config, groups, logits, old, seeds, step)
            (grad,) = torch.autograd.grad(loss.sum(), logits)
            # + loss: a row is marked when its loss or any entry of its gradient is non-finite
            _mark_non_finite(first_bad, grad + loss.unsqueeze(-1), step)
            _optimizer_step(config, logits, grad, adam, lr)
        record(step, old.log_prob)
        if progress is not None and (step % tick == 0 or step == config.steps):
            progress(step, config.steps)
    check()
    return BanditResult(
        config=config,
        landscape=landscape,
        runs=runs,
        log_steps=np.asarray(log_steps),
        metrics=metrics,
        snapshot_steps=snapshots,
        policies=policies,
        seconds=time.perf_counter() - start,
    )
