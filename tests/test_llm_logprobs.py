"""Log-probs of completions: the chunked path (LM head + log-softmax per chunk, under activation
checkpointing) gives the unchunked values, entropies and gradients."""

from __future__ import annotations

import pytest
import torch

from llm.logprobs import completion_log_probs
from llm.models import tiny_model, tiny_tokenizer


def _batch(seed: int = 0):
    tok = tiny_tokenizer()
    model = tiny_model("qwen2", len(tok), seed=seed).double()
    g = torch.Generator().manual_seed(seed)
    n, p, c = 3, 5, 7
    ids = torch.randint(0, len(tok), (n, p + c), generator=g)
    am = torch.ones(n, p + c, dtype=torch.long)
    am[0, :2] = 0  # left padding
    am[1, p + 4 :] = 0  # a short completion
    return model, ids, am, c


def _run(model, ids, am, c, **kw):
    model.zero_grad()
    lp, ent, hidden = completion_log_probs(
        model, ids, am, c, 0.7, entropy="grad", last_prompt_hidden=True, **kw
    )
    (lp.sum() + 0.3 * ent.sum() + hidden.square().sum()).backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return lp.detach(), ent.detach(), hidden.detach(), grads


@pytest.mark.parametrize("chunk_size", [1, 5, 21, 1000])
def test_chunked_log_probs_equal_the_full_computation(chunk_size):
    model, ids, am, c = _batch()
    full = _run(model, ids, am, c)
    chunked = _run(model, ids, am, c, chunk_size=chunk_size)
    for a, b in zip(full[:3], chunked[:3], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert full[3].keys() == chunked[3].keys()
    for name, g in full[3].items():
        torch.testing.assert_close(g, chunked[3][name], rtol=1e-9, atol=1e-10, msg=name)


def test_chunked_log_probs_without_grad_and_without_entropy():
    model, ids, am, c = _batch(1)
    with torch.no_grad():
        full, none_ent, none_hidden = completion_log_probs(model, ids, am, c, 1.0)
        chunked, _, _ = completion_log_probs(model, ids, am, c, 1.0, chunk_size=4)
    assert none_ent is None and none_hidden is None
    torch.testing.assert_close(full, chunked, rtol=1e-10, atol=1e-10)


def test_chunked_log_probs_refuse_models_that_post_process_logits():
    model, ids, am, c = _batch()
    model.config.final_logit_softcapping = 30.0
    with pytest.raises(ValueError, match=r"final_logit_softcapping=30\.0"):
        completion_log_probs(model, ids, am, c, 1.0, chunk_size=4)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        completion_log_probs(model, ids, am, c, 1.0, chunk_size=0)
