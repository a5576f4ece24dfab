"""One generic registry for adapters, probe sets, statistics and claims.

Entries can be objects or lazy ``"module:attribute"`` strings, so listing the registry never imports
heavy model code. Duplicate names fail loudly; unknown names list what is known.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from benchmark.core.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object (or lazy import path), with aliases."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, entry: T | str, *, aliases: tuple[str, ...] = ()) -> None:
        for key in (name, *aliases):
            if key in self._entries or key in self._aliases:
                existing = self._aliases.get(key, key)
                raise ValueError(
                    f"{self.kind} name {key!r} is already registered (for {existing!r}); "
                    f"cannot register it again for {name!r}"
                )
        self._entries[name] = entry
        for alias in aliases:
            self._aliases[alias] = name

    def canonical(self, name: str) -> str:
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        known = ", ".join(sorted(self._entries))
        raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}")

    def get(self, name: str) -> T:
        key = self.canonical(name)
        entry = self._entries[key]
        if isinstance(entry, str) and ":" in entry:
            module_name, _, attribute = entry.partition(":")
            entry = getattr(importlib.import_module(module_name), attribute)
            self._entries[key] = entry
        return entry  # type: ignore[return-value]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._entries or name in self._aliases)

    def names(self) -> list[str]:
        return list(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
