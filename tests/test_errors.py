"""Bad input raises a ValueError that names the argument, the value and what was expected."""

import pytest
import torch

from labkit import (
    POLICY_LOSSES,
    AdvantageConfig,
    LossConfig,
    Registry,
    compute_advantages,
    get_divergence,
    get_policy_loss,
    lad_loss,
)

OLD = torch.zeros(2, 3)
NEW = torch.zeros(2, 3)
ADV = torch.ones(2)
MASK = torch.ones(2, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eta": 0.0}, "eta must be"),
        ({"eta": -1.0}, "eta must be"),
        ({"kappa": float("inf")}, "kappa must be"),
        ({"eta": 1.0, "kappa": 2.0}, "eta or kappa, not both"),
        ({"eta": torch.tensor([1.0, -1.0])}, "eta must be"),
        (
            {"divergence": "kld"},
            r"divergence='kld' is not a known f-divergence; expected one of \['hellinger'",
        ),
        ({"loss_agg_mode": "mean"}, "loss_agg_mode='mean'"),
        ({"ratio_level": "seq"}, "ratio_level='seq'"),
        ({"kl_estimator": "k4"}, "kl_estimator='k4'"),
        ({"epsilon": 1.5}, "epsilon must be"),
        ({"clip_ratio_c": 0.5}, "clip_ratio_c must be"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LossConfig(**kwargs)


def test_unknown_names_list_valid_ones():
    with pytest.raises(
        ValueError,
        match=r"loss_mode='ppo' is not a known policy loss; expected one of \['clip_cov'",
    ):
        get_policy_loss("ppo")
    with pytest.raises(ValueError, match="estimator='gae'"):
        AdvantageConfig(estimator="gae")
    with pytest.raises(ValueError, match="scale_rewards='std'"):
        AdvantageConfig(scale_rewards="std")
    with pytest.raises(ValueError, match="divergence='x'"):
        get_divergence("x")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((OLD, NEW[:, :2], ADV, MASK), "old_log_prob has shape"),
        ((OLD, NEW, ADV, MASK[:, :2]), "response_mask has shape"),
        ((OLD, NEW, torch.ones(3), MASK), "advantages has shape"),
        ((OLD, NEW.long(), ADV, MASK), "log_prob must be a floating-point"),
        ((OLD, NEW, ADV.long(), MASK), "advantages must be a floating-point"),
        ((OLD, NEW, ADV, torch.zeros(2, 3)), "response_mask is all zeros"),
        ((OLD[0], NEW[0], ADV, MASK[0]), r"log_prob must have shape \(..., B, T\)"),
    ],
)
def test_every_loss_rejects_bad_tensors(args, match):
    for name in POLICY_LOSSES:
        with pytest.raises(ValueError, match=match):
            get_policy_loss(name)(*args, "token-mean", LossConfig(), log_z=torch.zeros(2))


def test_bad_agg_mode_at_call_time():
    with pytest.raises(ValueError, match="loss_agg_mode='sum'"):
        lad_loss(OLD, NEW, ADV, MASK, "sum", LossConfig())


def test_estimator_input_errors():
    with pytest.raises(ValueError, match="group_ids must be an integer tensor"):
        compute_advantages(torch.ones(3), torch.zeros(3))
    with pytest.raises(ValueError, match="rewards must be a 1-D float tensor"):
        compute_advantages(torch.ones(3, 1), torch.zeros(3, dtype=torch.long))


def test_registry_rejects_conflicting_duplicates():
    reg: Registry[int] = Registry("thing", "thing_name")
    reg.add("a", 1)
    reg.add("a", 1)  # the same object again is fine (re-import)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 2)
    with pytest.raises(
        ValueError, match=r"thing_name='b' is not a known thing; expected one of \['a'\]"
    ):
        reg.get("b")
