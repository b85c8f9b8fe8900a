"""Rewrite the config reference in docs/configs.md from the dataclasses (`lad config NAME`).

Usage: python docs/configs.py [--check]   (--check: exit 1 when the file is out of date)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bandit.config import BanditConfig
from labkit.config_loading import describe
from labkit.io import atomic_write
from llm.config import TrainConfig
from llm.demo_config import DemoConfig

DOC = Path(__file__).with_name("configs.md")
CONFIGS = {"bandit": BanditConfig, "llm": TrainConfig, "demo": DemoConfig}


def render(text: str) -> str:
    """The doc with every reference block regenerated."""
    for name, cls in CONFIGS.items():
        block = f"<!-- reference: {name} -->\n```yaml\n{describe(cls)}\n```\n<!-- end reference -->"
        pattern = rf"<!-- reference: {name} -->.*?<!-- end reference -->"
        text = re.sub(pattern, lambda _, b=block: b, text, count=1, flags=re.S)
    return text


if __name__ == "__main__":
    old = DOC.read_text()
    new = render(old)
    if "--check" in sys.argv:
        sys.exit(0 if new == old else 1)
    atomic_write(DOC, new)
