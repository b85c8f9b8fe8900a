"""A procedural task with many distinct correct answers per prompt, an exact verifier, its
TRL-style reward, a tokenizer built in code and the supervised warm-up data.

Two prompt families (all offline, enumerable, exact):
- ``sum S:``          write two digits that sum to S, as ``a+b`` (0 <= a, b <= 9). S in 0..18 has
                      min(S, 18 - S) + 1 ordered answers (1 to 10).
- ``mult D below N:`` write a positive multiple of D below N, as ``n`` (no leading zero).
                      floor((N - 1) / D) answers (2 to 29 with the defaults).
Prompts differ in how many answers are correct and how likely a random well-formed answer is
correct (about 1-10 % for sums, 1/D for multiples): varying difficulty.

Each prompt row carries its own specification in the ``answer`` column (``sum:12``,
``mult:4:30``), so the reward never parses the prompt text. Completions must be exactly one
answer (surrounding whitespace ignored); anything else scores 0.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llm.rewards import completion_text

TASK_NAME = "multi_answer"
NUMBERS = tuple(str(n) for n in range(100))
# special token order matches llm.models.tiny_model (pad 0, eos 2)
PAD, BOS, EOS, UNK = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"
WORDS = ("sum", "mult", "below")
SYMBOLS = ("+", ":")
_SUM_ANSWER = re.compile(r"([0-9])\+([0-9])")
_MULT_ANSWER = re.compile(r"[1-9][0-9]?")
_SPEC = re.compile(r"(?:sum:(\d+)|mult:(\d+):(\d+))")


@dataclass(frozen=True)
class Spec:
    """One prompt: family 'sum' (target S) or 'mult' (divisor D, bound N)."""

    family: str
    target: int = 0
    divisor: int = 0
    bound: int = 0

    def __post_init__(self) -> None:
        if self.family == "sum":
            if not 0 <= self.target <= 18:
                raise ValueError(f"sum target must be in [0, 18] (two digits), got {self.target}")
        elif self.family == "mult":
            if not 2 <= self.divisor < self.bound <= 100:
                raise ValueError(
                    f"mult needs 2 <= divisor < bound <= 100, got divisor={self.divisor} bound={self.bound}"
                )
        else:
            raise ValueError(f"family={self.family!r} is not valid; expected 'sum' or 'mult'")

    @property
    def prompt(self) -> str:
        if self.family == "sum":
            return f"sum {self.target}:"
        return f"mult {self.divisor} below {self.bound}:"

    @property
    def key(self) -> str:
        """The ``answer`` column: the verifier's specification."""
        return f"sum:{self.target}" if self.family == "sum" else f"mult:{self.divisor}:{self.bound}"

    @classmethod
    def parse(cls, key: str) -> Spec:
        m = _SPEC.fullmatch(key.strip())
        if not m:
            raise ValueError(
                f"answer={key!r} is not a multi-answer spec; expected 'sum:S' or 'mult:D:N'"
            )
        if m.group(1) is not None:
            return cls("sum", target=int(m.group(1)))
        return cls("mult", divisor=int(m.group(2)), bound=int(m.group(3)))


def answer_space(spec: Spec) -> list[str]:
    """Every well-formed answer of the prompt's family (correct or not), in a fixed order."""
    if spec.family == "sum":
        return [f"{a}+{b}" for a in range(10) for b in range(10)]
    return [str(n) for n in range(1, 100)]


def valid_answers(spec: Spec) -> list[str]:
    """The correct answers, in the order of `answer_space`."""
    if spec.family == "sum":
        return [f"{a}+{spec.target - a}" for a in range(10) if 0 <= spec.target - a <= 9]
    return [str(n) for n in range(spec.divisor, spec.bound, spec.divisor)]


def parse_answer(spec: Spec, completion: str) -> str | None:
    """The canonical answer when the completion is exactly one well-formed answer, else None."""
    text = completion.strip()
    pattern = _SUM_ANSWER if spec.family == "sum" else _MULT_ANSWER
    return text if pattern.fullmatch(text) else None


def verify(spec: Spec, completion: str) -> bool:
    """Exact check: well-formed and correct."""
    answer = parse_answer(spec, completion)
    if answer is None:
        return False
    if spec.family == "sum":
        a, b = (int(x) for x in answer.split("+"))
        return a + b == spec.target
    n = int(answer)
    return 0 < n < spec.bound and n % spec.divisor == 0


def multi_answer_reward(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    answer: Sequence[str] | None = None,
    **columns: Any,
) -> list[float | None]:
    """TRL-style reward: 1.0 for a correct answer, 0.0 for a wrong or malformed one.

    Args:
        prompts, completions: N prompts and completion texts (a chat completion, a list of
            messages, is read from its last message's content).
        answer: N specifications (the dataset's ``answer`` column, e.g. ``sum:12``).
    Returns:
        N rewards; None for a row whose ``answer`` is not a multi-answer spec (another task's row
        in a mixed dataset), so the trainer skips it instead of scoring it 0.
    """
    if answer is None:
        raise ValueError("multi_answer_reward needs the dataset's 'answer' column (e.g. 'sum:12')")
    if len(answer) != len(completions):
        raise ValueError(f"answer has {len(answer)} rows, completions {len(completions)}")
    out: list[float | None] = []
    for completion, key in zip(completions, answer, strict=True):
        text = completion_text(completion)
        try:
            spec = Spec.parse(str(key))
        except ValueError:
            out.append(None)
            continue
        out.append(1.0 if verify(spec, text) else 0.0)
    return out


def default_specs() -> list[Spec]:
    """The demo's 43 prompts: sums 0..18 and multiples of 2..9 below 20, 40 and 60."""
    sums = [Spec("sum", target=s) for s in range(19)]
    mults = [Spec("mult", divisor=d, bound=n) for d in range(2, 10) for n in (20, 40, 60)]
    return sums + mults


# held out from RL training: a third of the sums and every "below 40" multiple, so each held-out
# prompt has trained neighbours (sum S +- 1, the same divisor below 20 and 60) but is never a rollout
HELDOUT_SUMS = (1, 4, 7, 10, 13, 16)
HELDOUT_BOUND = 40


def is_heldout(spec: Spec) -> bool:
    """Whether the demo keeps this prompt out of RL training (it is evaluated only)."""
    if spec.family == "sum":
        return spec.target in HELDOUT_SUMS
    return spec.bound == HELDOUT_BOUND


def split_specs(specs: Sequence[Spec]) -> tuple[list[Spec], list[Spec]]:
    """(training prompts, held-out prompts) of `specs`, each in the given order."""
    return [s for s in specs if not is_heldout(s)], [s for s in specs if is_heldout(s)]


def prompt_rows(specs: Sequence[Spec]) -> list[dict[str, Any]]:
    """Dataset rows (``prompt``, ``answer``, ``data_source``, ``n_valid``), one per spec."""
    return [
        {
            "prompt": s.prompt,
            "answer": s.key,
            "data_source": TASK_NAME,
            "n_valid": len(valid_answers(s)),
        }
        for s in specs
    ]


# --- tokenizer ------------------------------------------------------------------------------------


def build_tokenizer():
    """A word-level tokenizer (109 tokens) built in code; exact round trip of answers.

    Tokens: the 4 specials (pad 0, eos 2 as `llm.models.tiny_model` expects), the prompt words,
    '+', ':' and every number 0..99 as one token (so a prompt's numbers and a multiple are one
    token each, a sum answer three). Whitespace separates tokens and is not a token; the decoder
    concatenates, so answers decode exactly ("3+9", "12"); prompts lose their spaces ("sum12:").
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([PAD, BOS, EOS, UNK, *WORDS, *SYMBOLS, *NUMBERS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Split(Regex(r"[a-z]+|[0-9]+|[^a-z0-9]"), "isolated"),
        ]
    )
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=EOS,
        bos_token=BOS,
        unk_token=UNK,
        padding_side="left",
    )


# --- warm-up data -----------------------------------------------------------------------------------


def warmup_examples(
    specs: Sequence[Spec], n: int, correct_frac: float, rng: random.Random
) -> list[tuple[str, str]]:
    """n (prompt, completion) pairs that teach the answer format, not the answer distribution.

    Prompts are drawn uniformly. With probability `correct_frac` the completion is a uniformly
    drawn correct answer; otherwise it is a uniformly drawn well-formed answer of the family
    (correct only by chance). So the warm-up policy writes well-formed answers, is right about
    `correct_frac` + chance of the time, and has no preference among the correct answers; the
    RL has to raise accuracy, and the comparison is how each objective redistributes the mass.
    """
    if not 0 <= correct_frac <= 1:
        raise ValueError(f"correct_frac must be in [0, 1], got {correct_frac}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out = []
    for _ in range(n):
        spec = rng.choice(list(specs))
        pool = valid_answers(spec) if rng.random() < correct_frac else answer_space(spec)
        out.append((spec.prompt, rng.choice(pool)))
    return out
