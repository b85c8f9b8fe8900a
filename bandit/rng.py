"""Counter-based random numbers keyed on (seed, stream, step, index), vectorised over runs.

A run of the bandit must be a function of (config, seed) alone, whatever else shares its batch
(style guide 10). Per-run torch.Generators would need a Python loop over runs; instead every
number is a hash of its coordinates, like JAX's threefry keys. The hash is a 32-bit integer
mixer (Wellons' "hash prospector" constants 0x21f0aaad / 0x735a2d97, two multiply-xorshift
rounds). `hash32` evaluates it in int64 (both multipliers below 2^31, so no product overflows);
the per-draw hashes run `_hash32_bits`, the same function on int32 bit patterns (multiplication
wraps mod 2^32, shifts are made logical by a mask), which is about twice as fast on CPU and gives
the same bits.
Not cryptographic; statistically fine for simulation (a uniformity and an independence check
live in tests/test_bandit_rng.py).
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor

MASK32 = 0xFFFFFFFF
_M1 = 0x21F0AAAD
_M2 = 0x735A2D97
# odd constants that separate the key coordinates before hashing
_STREAM = 0x68E31DA4
_STEP = 0x1B56C4E9

# streams: one per kind of draw, so adding a draw of one kind never shifts another
SAMPLE, NOISE_A, NOISE_B, INIT_A, INIT_B = range(5)


def hash32(x: Tensor) -> Tensor:
    """Bijective mix of int64 values in [0, 2^32) to int64 values in [0, 2^32)."""
    x = x ^ (x >> 16)
    x = (x * _M1) & MASK32
    x = x ^ (x >> 15)
    x = (x * _M2) & MASK32
    return x ^ (x >> 15)


def _hash32_bits(x: Tensor) -> Tensor:
    """hash32 on int32 tensors holding the 32-bit patterns of the values (same bits out)."""
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * _M1
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * _M2
    return x ^ ((x >> 15) & 0x1FFFF)


def _draw_hashes(seeds: Tensor, stream: int, step: int, n: int) -> Tensor:
    """(R, n) int64 in [0, 2^32): hash32(key ^ j) for j < n, computed on int32 bit patterns."""
    k = keys(seeds, stream, step)
    k32 = torch.where(k >= 2**31, k - 2**32, k).to(torch.int32)
    h = _hash32_bits(k32 ^ torch.arange(n, dtype=torch.int32, device=seeds.device))
    return h.to(torch.int64) & MASK32


def keys(seeds: Tensor, stream: int, step: int) -> Tensor:
    """(R, 1) int64 key of each run for one (stream, step); seeds (R,) int64 in [0, 2^32)."""
    k = hash32(seeds & MASK32)
    k = hash32(k ^ ((stream * _STREAM) & MASK32))
    k = hash32(k ^ ((step * _STEP) & MASK32))
    return k.unsqueeze(-1)


def uniform(
    seeds: Tensor, stream: int, step: int, n: int, dtype: torch.dtype = torch.float32
) -> Tensor:
    """(R, n) uniforms in the open interval (0, 1); entry [i, j] depends only on
    (seeds[i], stream, step, j)."""
    h = _draw_hashes(seeds, stream, step, n)
    # 24 bits fill a float32 mantissa; the half-step offset keeps 0 and 1 out
    return ((h >> 8).to(dtype) + 0.5) * (1.0 / (1 << 24))


def normal(
    seeds: Tensor,
    stream_a: int,
    stream_b: int,
    step: int,
    n: int,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """(R, n) standard normals by Box-Muller from two uniform streams."""
    u1 = uniform(seeds, stream_a, step, n, torch.float64)
    u2 = uniform(seeds, stream_b, step, n, torch.float64)
    return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)).to(dtype)


def categorical(cdf: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF sampling: cdf (R, K) cumulative probabilities ending at 1, u (R, G) uniforms
    -> (R, G) int64 arm indices. Arms of probability 0 are never drawn."""
    idx = torch.searchsorted(cdf, u.to(cdf.dtype), right=True)
    # a cdf that ends a rounding error below 1 must not yield index K
    return idx.clamp_(max=cdf.shape[-1] - 1)


@torch.no_grad()
def alias_table(probs: Tensor) -> tuple[Tensor, Tensor]:
    """Walker/Vose alias tables (R, K) for probs (R, K) (rows summing to 1): draw arm i uniformly,
    keep it with probability prob[i], else take alias[i].

    Vectorised over runs with one pass per arm: each pass settles the smallest remaining scaled
    mass against the largest (a valid Vose pairing, since the remaining masses average 1).
    Building costs K small steps; drawing is O(1) per sample, far cheaper than searchsorted.
    """
    r, k = probs.shape
    q = probs.to(torch.float64) * k
    prob = torch.ones_like(q)
    alias = torch.arange(k, device=probs.device).expand(r, k).clone()
    rows = torch.arange(r, device=probs.device)
    settled = torch.zeros(r, k, dtype=torch.bool, device=probs.device)
    inf = torch.tensor(torch.inf, dtype=q.dtype, device=q.device)
    for _ in range(k - 1):
        small = torch.where(settled, inf, q).argmin(-1)
        large = torch.where(settled, -inf, q).argmax(-1)
        q_small = q[rows, small]
        prob[rows, small] = q_small.clamp(max=1.0)
        alias[rows, small] = large
        q[rows, large] += (q_small - 1.0).clamp(max=0.0)
        settled[rows, small] = True
    return prob.to(probs.dtype), alias


def alias_sample(
    prob: Tensor, alias: Tensor, seeds: Tensor, stream: int, step: int, n: int
) -> Tensor:
    """(R, n) int64 arms drawn from alias tables (R, K); one 32-bit hash per draw, its high part
    (times K) picks the column and the remainder is the uniform of the keep-or-alias test."""
    k = prob.shape[-1]
    m = _draw_hashes(seeds, stream, step, n) * k  # < 2^32 * K: no overflow for K < 2^31
    col = m >> 32
    frac = (m & MASK32).to(prob.dtype) * (1.0 / 2**32)
    return torch.where(frac < prob.gather(-1, col), col, alias.gather(-1, col))


def uniform_sample(seeds: Tensor, stream: int, step: int, n: int, k: int) -> Tensor:
    """(R, n) int64 arms drawn uniformly from k: the column `alias_sample` picks, which a
    uniform distribution's table always keeps; no table, no gathers."""
    return (_draw_hashes(seeds, stream, step, n) * k) >> 32
