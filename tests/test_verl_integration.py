"""labkit's LAD loss inside verl 0.9.1 (run in .venv-verl: `make test-verl`; skipped elsewhere).

Checks, with verl's real registry, config classes, Hydra config and `agg_loss`:
- `lad` is in verl's policy-loss registry and the adapter calls labkit's own `lad_loss`;
- on random tensors the registered loss equals labkit's result (loss and gradient);
- it honours `global_batch_info` (data-parallel normalisation), `rollout_is_weights` and every
  `loss_agg_mode`, i.e. equals verl's `agg_loss` applied to LAD's per-token loss matrix;
- verl's `agg_loss` vs labkit's `agg_loss` on the four shared modes (one documented difference);
- the overrides `lad llm verl` writes compose with verl's YAML, pass verl's `validate_config`,
  and build a `LADPolicyLossConfig` carrying the hyperparameters.
"""

from __future__ import annotations

import pytest
import torch

try:
    from hydra import compose, initialize_config_module
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY, get_policy_loss_fn
    from verl.trainer.ppo.core_algos import agg_loss as verl_agg_loss
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    import llm.integrations.verl as plugin
except ImportError:  # the main env: every test below is collected and skipped by name
    HAS_VERL = False
else:
    HAS_VERL = True

import labkit.lad
from labkit.config import AGG_MODES, LossConfig
from labkit.divergences import get_divergence
from labkit.lad import lad_loss
from labkit.losses import agg_loss as labkit_agg_loss
from labkit.losses import log_ratio, masked_mean
from llm.integrations.verl_launch import PRESETS, main_ppo_command

VERL_MODES = (*AGG_MODES, "token-sum")
pytestmark = pytest.mark.skipif(
    not HAS_VERL, reason="verl lives in its own env: scripts/setup_verl_env.sh, then make test-verl"
)


def _compose(preset: str = "single-gpu", **kwargs):
    argv = main_ppo_command(preset, **kwargs)
    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        return compose(config_name="ppo_trainer", overrides=argv[3:])


def _actor(lad: dict | None = None):
    """verl's own ActorConfig, built by verl's Hydra path from `lad llm verl`'s overrides."""
    return omega_conf_to_dataclass(_compose(lad=lad).actor_rollout_ref.actor)


@pytest.fixture(scope="module")
def actor_hellinger():
    return _actor({"divergence": "hellinger", "kappa": 2.0})


@pytest.fixture(scope="module")
def actor_js_sequence():
    return _actor(
        {"divergence": "js", "eta": 0.5, "ratio_level": "sequence-mean", "standardized": True}
    )


def _batch(seed: int, empty_row: bool, bs: int = 6, t: int = 9):
    gen = torch.Generator().manual_seed(seed)
    log_prob = (-torch.rand(bs, t, generator=gen) * 3).requires_grad_(True)
    old = log_prob.detach() + 0.4 * torch.randn(bs, t, generator=gen)
    adv = torch.randn(bs, 1, generator=gen).expand(bs, t).clone()  # verl broadcasts A per token
    mask = torch.rand(bs, t, generator=gen) > 0.3
    mask[:, 0] = True
    if empty_row:
        mask[2] = False
    weights = 0.5 + torch.rand(bs, t, generator=gen)
    return old, log_prob, adv, mask, weights


def _grad(loss: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.autograd.grad(loss, x)[0]


def test_lad_is_in_verls_registry_and_is_labkits_loss():
    assert "lad" in POLICY_LOSS_REGISTRY
    assert get_policy_loss_fn("lad") is plugin.compute_policy_loss_lad
    assert plugin.lad_loss is labkit.lad.lad_loss  # the adapter calls labkit's object, no copy


@pytest.mark.parametrize("mode", AGG_MODES)
@pytest.mark.parametrize("which", ["actor_hellinger", "actor_js_sequence"])
def test_registered_loss_equals_labkit_lad_loss(request, mode, which):
    actor = request.getfixturevalue(which)
    assert actor.global_batch_info == {}  # one process: verl normalises by the micro-batch
    old, log_prob, adv, mask, weights = _batch(seed=1, empty_row=False)
    loss, metrics = get_policy_loss_fn("lad")(
        old_log_prob=old,
        log_prob=log_prob,
        advantages=adv,
        response_mask=mask,
        loss_agg_mode=mode,
        config=actor,
        rollout_is_weights=weights,
    )
    cfg = actor.policy_loss.to_loss_config(mode)
    ref, ref_metrics = lad_loss(old, log_prob, adv, mask, mode, cfg, rollout_is_weights=weights)
    assert torch.allclose(loss, ref, rtol=1e-6, atol=1e-7)
    assert torch.allclose(_grad(loss, log_prob), _grad(ref, log_prob), rtol=1e-5, atol=1e-7)
    for key in (
        "lad/log_ratio_mean",
        "lad/log_x_mean",
        "lad/frac_past_target",
        "lad/weight_mean",
        "actor/ppo_kl",
    ):
        assert torch.allclose(metrics[key], ref_metrics[key])
    assert torch.equal(metrics["actor/pg_loss"], loss.detach())


def _lad_loss_matrix(old, log_prob, adv, mask, cfg: LossConfig, weights):
    """LAD's per-token loss e^a f(r e^-a) (docs/method.md section 5) from labkit's divergence table."""
    m = mask.to(log_prob.dtype)
    a = adv * cfg.inverse_temperature
    if cfg.ratio_level != "token":
        a = masked_mean(a, m, dim=-1).unsqueeze(-1).expand_as(a)
    lr = log_ratio(old, log_prob, m, cfg.ratio_level)
    return get_divergence(cfg.divergence).weighted(lr, a, cfg.standardized) * weights


@pytest.mark.parametrize("mode", VERL_MODES)
@pytest.mark.parametrize("which", ["actor_hellinger", "actor_js_sequence"])
def test_honours_global_batch_info_and_rollout_weights(request, mode, which):
    # what verl's ppo_loss writes before calling the loss: a rank of 4 that holds 6 of 23 sequences
    actor = request.getfixturevalue(which)
    old, log_prob, adv, mask, weights = _batch(seed=2, empty_row=True)
    info = {"dp_size": 4, "batch_num_tokens": 57, "global_batch_size": 23, "loss_scale_factor": 40}
    actor.global_batch_info.update(info)
    try:
        loss, _ = get_policy_loss_fn("lad")(old, log_prob, adv, mask, mode, actor, weights)
    finally:
        actor.global_batch_info.clear()
    cfg = actor.policy_loss.to_loss_config("token-mean")
    mat = _lad_loss_matrix(old, log_prob, adv, mask, cfg, weights)
    expected = verl_agg_loss(mat, mask.float(), mode, **info)
    assert torch.allclose(loss, expected, rtol=1e-5, atol=1e-7)
    assert torch.allclose(_grad(loss, log_prob), _grad(expected, log_prob), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", AGG_MODES)
def test_verl_and_labkit_agg_loss_agree(mode):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 8, generator=gen)
    mask = (torch.rand(5, 8, generator=gen) > 0.3).float()
    mask[:, 0] = 1.0
    assert torch.allclose(verl_agg_loss(x, mask, mode), labkit_agg_loss(x, mask, mode), atol=1e-6)
    # with a fully masked response, seq-mean-token-sum-norm differs on purpose: verl divides by
    # the responses that have a token x T, labkit (like TRL's dr_grpo) by all B rows x T
    mask[3] = 0.0
    verl, labkit = verl_agg_loss(x, mask, mode), labkit_agg_loss(x, mask, mode)
    factor = 5 / 4 if mode == "seq-mean-token-sum-norm" else 1.0
    assert torch.allclose(verl, labkit * factor, atol=1e-6)


def test_empty_micro_batch_gives_zero_loss_still_in_the_graph(actor_hellinger):
    old, log_prob, adv, mask, _ = _batch(seed=4, empty_row=False)
    loss, metrics = get_policy_loss_fn("lad")(
        old, log_prob, adv, torch.zeros_like(mask), "token-mean", actor_hellinger
    )
    assert loss.item() == 0.0 and loss.requires_grad and metrics == {}
    assert torch.equal(_grad(loss, log_prob), torch.zeros_like(log_prob))


def test_without_the_lad_config_target_the_error_says_what_to_set():
    # LAD's keys on verl's own PolicyLossConfig: verl refuses to build the config
    cfg = _compose(
        overrides=[
            "actor_rollout_ref.actor.policy_loss._target_=verl.workers.config.PolicyLossConfig"
        ]
    )
    with pytest.raises(Exception, match="divergence"):
        omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    # loss_mode=lad alone: the loss itself says which _target_ to set
    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        plain_cfg = compose(
            config_name="ppo_trainer",
            overrides=[
                "actor_rollout_ref.actor.policy_loss.loss_mode=lad",
                "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
                "actor_rollout_ref.rollout.n=4",
            ],
        )
    plain = omega_conf_to_dataclass(plain_cfg.actor_rollout_ref.actor)
    old, log_prob, adv, mask, _ = _batch(seed=5, empty_row=False)
    with pytest.raises(ValueError, match="LADPolicyLossConfig"):
        get_policy_loss_fn("lad")(old, log_prob, adv, mask, "token-mean", plain)


def test_a_bad_hyperparameter_fails_when_verl_builds_the_config():
    cfg = _compose(overrides=["+actor_rollout_ref.actor.policy_loss.divergence=nope"])
    with pytest.raises(Exception, match="divergence='nope'"):
        omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_launch_command_composes_and_passes_verls_validation(preset):
    cfg = _compose(preset)
    validate_config(cfg, use_reference_policy=False, use_critic=False)
    assert cfg.actor_rollout_ref.model.external_lib == "llm.integrations.verl"
    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    assert isinstance(actor.policy_loss, plugin.LADPolicyLossConfig)
    assert actor.policy_loss.loss_mode == "lad"
    expected = LossConfig(loss_mode="lad", **PRESETS[preset].lad)
    assert actor.policy_loss.to_loss_config(actor.loss_agg_mode) == expected


def test_explicit_options_replace_the_presets():
    cfg = _compose(
        "qwen2.5-7b-dapo-8gpu",
        lad={"eta": 0.5, "divergence": "tv", "loss_agg_mode": "seq-mean-token-mean"},
        model="~/models/Qwen2.5-7B",
        n_gpus_per_node=4,
        overrides=["trainer.total_epochs=3"],
    )
    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    assert (actor.policy_loss.eta, actor.policy_loss.kappa, actor.policy_loss.divergence) == (
        0.5,
        None,
        "tv",
    )
    assert actor.loss_agg_mode == "seq-mean-token-mean"
    assert cfg.actor_rollout_ref.model.path == "~/models/Qwen2.5-7B"
    assert (cfg.trainer.n_gpus_per_node, cfg.trainer.total_epochs) == (4, 3)


@pytest.mark.parametrize(("dp_size", "batch_num_tokens"), [(1, None), (2, 40)])
def test_through_verls_own_ppo_loss_call_site(actor_hellinger, dp_size, batch_num_tokens):
    """verl's worker loss `ppo_loss` (verl/workers/utils/losses.py) looks `lad` up in the registry
    and calls it with its own keyword arguments, global batch info and metric handling."""
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu
    from verl.workers.utils.losses import ppo_loss

    bs, p, r = 3, 4, 5
    gen = torch.Generator().manual_seed(6)
    resp_logp = -torch.rand(bs, r, generator=gen)
    # the model's flat output over prompt + response; verl reads response token t at p - 1 + t
    flat = torch.zeros(bs, p + r)
    flat[:, p - 1 : p + r - 1] = resp_logp
    flat = flat.reshape(-1).requires_grad_(True)
    mask = torch.ones(bs, r, dtype=torch.long)
    mask[1, 3:] = 0
    old, adv = (
        resp_logp + 0.3 * torch.randn(bs, r, generator=gen),
        torch.randn(bs, r, generator=gen),
    )
    data = TensorDict(
        {
            "prompts": torch.ones(bs, p, dtype=torch.long),
            "responses": torch.ones(bs, r, dtype=torch.long),
            "attention_mask": torch.ones(bs, p + r, dtype=torch.long),
            "response_mask": mask,
            "old_log_probs": old,
            "advantages": adv,
        },
        batch_size=[bs],
    )
    tu.assign_non_tensor(
        data, dp_size=dp_size, batch_num_tokens=batch_num_tokens, global_batch_size=None
    )
    try:
        loss, metrics = ppo_loss(actor_hellinger, {"log_probs": flat}, data)
    finally:
        actor_hellinger.global_batch_info.clear()
    cfg = actor_hellinger.policy_loss.to_loss_config("token-mean")
    logp = resp_logp.clone().requires_grad_(True)
    ref, _ = lad_loss(old, logp, adv, mask.bool(), "token-mean", cfg)
    n_tokens = float(mask.sum())
    scale = 1.0 if batch_num_tokens is None else n_tokens * dp_size / batch_num_tokens
    assert torch.allclose(loss, ref * scale, rtol=1e-6)
    grad_flat = _grad(loss, flat).reshape(bs, p + r)[:, p - 1 : p + r - 1]
    assert torch.allclose(grad_flat, _grad(ref * scale, logp), rtol=1e-5, atol=1e-7)
    assert {"lad/weight_mean", "lad/frac_past_target", "actor/ppo_kl", "actor/pg_loss"} <= set(
        metrics
    )
