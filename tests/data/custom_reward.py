"""A user reward module for tests of load_reward (TRL's keyword convention)."""


def length_penalty(prompts, completions, **kwargs):
    return [-len(c) / 100 for c in completions]


def skip_all(prompts, completions, **kwargs):
    return [None] * len(completions)


NOT_CALLABLE = 3
