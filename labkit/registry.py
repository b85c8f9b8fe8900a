"""Name -> object registries (losses, divergences, estimators, landscapes).

Registries are the only module-level mutable state in labkit: decorators fill them at import time
and no run changes them. An unknown name and a conflicting duplicate both raise a ValueError that
names the argument, the value and the valid choices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to objects of one kind.

    Args:
        kind: what the registry holds, e.g. "policy loss"; used in error messages.
        argument: the config/CLI argument that selects an entry, e.g. "loss_mode".
    """

    def __init__(self, kind: str, argument: str) -> None:
        self.kind = kind
        self.argument = argument
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that stores `obj` under `name`; a second, different object raises."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        old = self._entries.get(name)
        if old is not None and old is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered with a different object")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(
                f"{self.argument}={name!r} is not a known {self.kind}; expected one of {self.names()}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
