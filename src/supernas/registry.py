"""One small registry used for spaces, supernets, trainers, strategies, datasets and more.

Why one class: every "name -> factory" lookup in supernas fails the same way (listing the
valid names) and is listed the same way by `supernas list`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from supernas.errors import SupernasError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories. `kind` names the thing in error messages ("space", "proxy")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@SPACES.register("resnet18")`. Re-registering a name is an error."""

        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise SupernasError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """The factory registered under `name`; an unknown name lists the valid ones."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            valid = ", ".join(self.names()) or "(none)"
            raise SupernasError(f"unknown {self.kind} {name!r}; valid: {valid}") from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the factory; a wrong option name becomes a clear error, not a TypeError."""
        factory: Any = self.get(name)
        try:
            return factory(*args, **kwargs)
        except TypeError as exc:
            if "unexpected keyword argument" in str(exc) or "positional argument" in str(exc):
                raise SupernasError(f"bad options for {self.kind} {name!r}: {exc}") from None
            raise

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)
