"""Errors that end a run on their own, not because of bad input.

The command line maps them to one line and exit code 1 (bad input is exit code 2): a run whose
loss or gradient went NaN/inf (`NonFiniteError`, raised by the bandit and the LLM trainer), or
whose reward functions keep failing (`llm.rewards.RewardError`).
"""


class RunError(RuntimeError):
    """A run stopped itself: nothing misleading was saved, and the message says why."""


class NonFiniteError(RunError):
    """A loss or a gradient became NaN/inf; training stopped before the update."""
