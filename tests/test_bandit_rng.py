"""Counter-based random numbers: keyed, uniform enough, and exact samplers."""

import numpy as np
import torch

from bandit import rng


def test_hash_is_a_bijection_on_a_range_and_stays_in_32_bits():
    x = torch.arange(0, 1 << 16, dtype=torch.int64) * 65537
    h = rng.hash32(x)
    assert h.unique().numel() == x.numel()
    assert int(h.min()) >= 0 and int(h.max()) < 2**32
    top = torch.tensor([2**32 - 1, 2**32 - 2], dtype=torch.int64)
    assert int(rng.hash32(top).max()) < 2**32


def test_int32_hash_gives_the_int64_hash_bits():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 2**32, (100_000,), dtype=torch.int64, generator=g)
    x = torch.cat([x, torch.tensor([0, 1, 2**31 - 1, 2**31, 2**32 - 1])])
    bits = torch.where(x >= 2**31, x - 2**32, x).to(torch.int32)
    assert torch.equal(rng._hash32_bits(bits).to(torch.int64) & rng.MASK32, rng.hash32(x))
    seeds = torch.tensor([0, 5, 2**32 - 1], dtype=torch.int64)
    key = rng.keys(seeds, rng.SAMPLE, 9)
    reference = rng.hash32(key ^ torch.arange(300, dtype=torch.int64))
    assert torch.equal(rng._draw_hashes(seeds, rng.SAMPLE, 9, 300), reference)


def test_uniform_depends_only_on_its_key():
    seeds = torch.tensor([3, 7, 3], dtype=torch.int64)
    u = rng.uniform(seeds, rng.SAMPLE, 5, 100)
    assert torch.equal(u[0], u[2]) and not torch.equal(u[0], u[1])
    alone = rng.uniform(torch.tensor([7]), rng.SAMPLE, 5, 100)
    assert torch.equal(alone[0], u[1])
    assert not torch.equal(rng.uniform(seeds, rng.SAMPLE, 6, 100), u)
    assert not torch.equal(rng.uniform(seeds, rng.NOISE_A, 5, 100), u)
    assert float(u.min()) > 0 and float(u.max()) < 1


def test_uniform_moments_and_independence():
    seeds = torch.arange(256, dtype=torch.int64)
    u = rng.uniform(seeds, rng.SAMPLE, 1, 512, torch.float64)
    assert abs(float(u.mean()) - 0.5) < 0.003
    assert abs(float(u.var()) - 1 / 12) < 0.002
    # neighbouring seeds and neighbouring indices are uncorrelated
    c_seed = np.corrcoef(u[:-1].flatten().numpy(), u[1:].flatten().numpy())[0, 1]
    c_index = np.corrcoef(u[:, :-1].flatten().numpy(), u[:, 1:].flatten().numpy())[0, 1]
    assert abs(c_seed) < 0.01 and abs(c_index) < 0.01
    counts = np.histogram(u.numpy(), bins=16, range=(0, 1))[0]
    expected = u.numel() / 16
    assert ((counts - expected) ** 2 / expected).sum() < 40  # chi-square, 15 dof (p ~ 5e-4)


def test_normal_moments():
    z = rng.normal(torch.arange(64), rng.INIT_A, rng.INIT_B, 0, 2048, torch.float64)
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01


def _implied(prob, alias):
    r, k = prob.shape
    out = torch.zeros(r, k, dtype=torch.float64)
    for i in range(r):
        for j in range(k):
            out[i, j] += prob[i, j] / k
            out[i, alias[i, j]] += (1 - prob[i, j]) / k
    return out


def test_alias_table_is_exact():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(3 * torch.randn(5, 13, generator=g, dtype=torch.float64), -1)
    p[2] = 0.0
    p[2, 4] = 1.0  # a point mass
    p[3, :6] = 0.0
    p[3] /= p[3].sum()
    prob, alias = rng.alias_table(p)
    torch.testing.assert_close(_implied(prob, alias), p, atol=1e-12, rtol=0)


def test_alias_and_inverse_cdf_sample_the_distribution():
    g = torch.Generator().manual_seed(1)
    p = torch.softmax(2 * torch.randn(3, 8, generator=g, dtype=torch.float64), -1)
    p[1, 2] = 0.0
    p = p / p.sum(-1, keepdim=True)
    seeds = torch.tensor([0, 1, 2])
    n = 200_000
    arms_alias = rng.alias_sample(*rng.alias_table(p), seeds, rng.SAMPLE, 0, n)
    cdf = p.cumsum(-1)
    arms_cdf = rng.categorical(
        cdf / cdf[:, -1:], rng.uniform(seeds, rng.SAMPLE, 0, n, torch.float64)
    )
    for arms in (arms_alias, arms_cdf):
        freq = torch.stack([torch.bincount(a, minlength=8) for a in arms]).double() / n
        assert float((freq - p).abs().max()) < 4 * (0.25 / n) ** 0.5
        assert int((arms[1] == 2).sum()) == 0  # a zero-probability arm is never drawn


def test_uniform_sample_is_the_alias_draw_of_a_uniform_table():
    seeds = torch.arange(64, dtype=torch.int64)
    table = rng.alias_table(torch.full((64, 50), 1 / 50))
    via_table = rng.alias_sample(*table, seeds, rng.SAMPLE, 3, 1000)
    assert torch.equal(rng.uniform_sample(seeds, rng.SAMPLE, 3, 1000, 50), via_table)
