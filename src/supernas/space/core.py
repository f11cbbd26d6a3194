"""Search spaces as plain data: named choices, and architectures as frozen records.

No torch here: strategies, tables and tests use spaces without building a network.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from supernas.errors import SupernasError

Scalar = str | int | float | bool
RngLike = np.random.Generator | int

# str(arch) needs its space's format, but an Arch only carries the space's name: each
# SearchSpace records its formatter here when built (same name, same choices, same format).
_FORMATTERS: dict[str, Callable[[tuple[Scalar, ...]], str]] = {}


def check_network_options(space: str, **options: object) -> None:
    """Every option a positive int (not a bool), and `num_classes` (if given) at least 2.

    The shape options of the built-in spaces (widths, depths, channels, classes) share this
    one check, so every space words a bad option the same way.
    """
    for key, val in options.items():
        if not isinstance(val, int) or isinstance(val, bool) or val < 1:
            raise SupernasError(f"{space}: {key} must be a positive integer, got {val!r}")
    classes = options.get("num_classes")
    if isinstance(classes, int) and classes < 2:
        raise SupernasError(f"{space}: num_classes must be at least 2")


def as_rng(seed_or_rng: RngLike | None) -> np.random.Generator:
    """Every random choice takes a seed: an int seeds a fresh generator, a Generator is kept."""
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    if seed_or_rng is None:
        raise SupernasError("a seed or numpy Generator is required (supernas never draws unseeded)")
    return np.random.default_rng(int(seed_or_rng))


def format_size(n: int) -> str:
    """An exact count with its order of magnitude when large: '61,481,...,381 (about 6.1e+64)'."""
    return f"{n:,}" if n < 10**9 else f"{n:,} (about {float(n):.1e})"


def format_option(value: Scalar) -> str:
    """Short, stable text for an option: 0.5 -> '0.5', 2.0 -> '2', 'conv' -> 'conv'."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class Choice:
    """One decision in a space: a block's kernel, an edge's op. Options are JSON scalars."""

    name: str
    options: tuple[Scalar, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        if not self.name:
            raise SupernasError("a Choice needs a non-empty name")
        if not self.options:
            raise SupernasError(f"choice {self.name!r} has no options")
        for o in self.options:
            if not isinstance(o, str | int | float | bool):
                raise SupernasError(
                    f"choice {self.name!r}: option {o!r} is not a JSON scalar (str/int/float/bool)"
                )
        texts = [format_option(o) for o in self.options]
        if len(set(texts)) != len(texts):
            raise SupernasError(f"choice {self.name!r} has duplicate options: {texts}")
        # NaN never equals itself, and equal values (0.0 == -0.0, True == 1) would make two
        # different archs compare and hash equal: neither can be told apart, so refuse them.
        if any(isinstance(o, float) and math.isnan(o) for o in self.options):
            raise SupernasError(f"choice {self.name!r}: NaN cannot be an option")
        if len(set(self.options)) != len(self.options):
            raise SupernasError(
                f"choice {self.name!r} has options that are equal in Python "
                f"(e.g. True == 1, 0.0 == -0.0): {texts}"
            )

    def index(self, value: Scalar) -> int:
        for i, o in enumerate(self.options):
            # True == 1 in Python; a bool option only matches a bool value and vice versa.
            if o == value and isinstance(o, bool) == isinstance(value, bool):
                return i
        raise SupernasError(
            f"{value!r} is not an option of choice {self.name!r}; options: "
            + ", ".join(format_option(o) for o in self.options)
        )

    def from_text(self, text: str) -> Scalar:
        for o in self.options:
            if format_option(o) == text:
                return o
        raise SupernasError(
            f"{text!r} is not an option of choice {self.name!r}; options: "
            + ", ".join(format_option(o) for o in self.options)
        )


@dataclass(frozen=True)
class Arch:
    """One architecture: the space's name and one value per choice, in the space's order.

    Hashable (use it as a dict key or in a set), JSON round trip via `to_json`/`from_json`,
    and `str(arch)` is the space's readable form, which `space.parse` inverts.
    """

    space: str
    values: tuple[Scalar, ...] = field()

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))

    def __str__(self) -> str:
        fmt = _FORMATTERS.get(self.space)
        if fmt is None:
            return "-".join(format_option(v) for v in self.values)
        return fmt(self.values)

    def to_json(self) -> dict[str, Any]:
        return {"space": self.space, "arch": str(self), "values": list(self.values)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Arch:
        try:
            return cls(space=str(obj["space"]), values=tuple(obj["values"]))
        except (KeyError, TypeError) as exc:
            raise SupernasError(f"not an arch record (need 'space' and 'values'): {exc}") from None


class SearchSpace:
    """An ordered tuple of Choices plus a name and the options that shape its networks.

    `options` (e.g. base_width, num_classes) do not change which archs exist; they tell
    `build_supernet` how to build the networks, and are saved in checkpoints.
    Subclasses may override `format`/`parse` for a field's own string form (NB201's).
    """

    #: enumerate() and exhaustive search refuse spaces larger than this by default.
    max_enumerate: int = 1_000_000

    def __init__(
        self,
        name: str,
        choices: Sequence[Choice],
        *,
        description: str = "",
        options: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.choices = tuple(choices)
        self.description = description
        self.options = dict(options or {})
        if not self.choices:
            raise SupernasError(f"space {name!r} has no choices")
        names = [c.name for c in self.choices]
        if len(set(names)) != len(names):
            raise SupernasError(f"space {name!r} has duplicate choice names")
        if type(self).parse is SearchSpace.parse:
            self._check_generic_text()
        _FORMATTERS[name] = self.format

    def _check_generic_text(self) -> None:
        """The generic 'name=value,...' form cannot round-trip a ',' or edge whitespace."""
        for c in self.choices:
            if "," in c.name or "=" in c.name or c.name != c.name.strip():
                raise SupernasError(
                    f"space {self.name!r}: choice name {c.name!r} may not contain ',' or '=' "
                    "or start/end with whitespace"
                )
            for o in c.options:
                text = format_option(o)
                if "," in text or text != text.strip():
                    raise SupernasError(
                        f"space {self.name!r}: option {text!r} of choice {c.name!r} may not "
                        "contain ',' or start/end with whitespace"
                    )

    # -- size and membership -------------------------------------------------------------
    @property
    def size(self) -> int:
        return math.prod(len(c.options) for c in self.choices)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.choices)

    def __len__(self) -> int:
        return len(self.choices)

    def __contains__(self, arch: object) -> bool:
        if not isinstance(arch, Arch) or arch.space != self.name:
            return False
        if len(arch.values) != len(self.choices):
            return False
        try:
            for c, v in zip(self.choices, arch.values, strict=True):
                c.index(v)
        except SupernasError:
            return False
        return True

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"SearchSpace({self.name!r}, {len(self.choices)} choices, size={self.size}, {opts})"

    # -- construction and validation -----------------------------------------------------
    def arch(self, values: Sequence[Scalar] | dict[str, Scalar]) -> Arch:
        """Build a validated Arch from values in choice order or a {choice: value} dict."""
        if isinstance(values, dict):
            unknown = set(values) - set(self.names)
            if unknown:
                raise SupernasError(f"unknown choices for space {self.name!r}: {sorted(unknown)}")
            missing = [n for n in self.names if n not in values]
            if missing:
                raise SupernasError(f"missing choices for space {self.name!r}: {missing}")
            values = [values[n] for n in self.names]
        values = tuple(values)
        if len(values) != len(self.choices):
            raise SupernasError(
                f"space {self.name!r} has {len(self.choices)} choices, got {len(values)} values"
            )
        vals = tuple(c.options[c.index(v)] for c, v in zip(self.choices, values, strict=True))
        return Arch(self.name, vals)

    def validate(self, arch: Arch | str | dict[str, Any]) -> Arch:
        """Accept an Arch, its string form or its JSON record; raise a clear error otherwise."""
        if isinstance(arch, str):
            return self.parse(arch)
        if isinstance(arch, dict):
            arch = Arch.from_json(arch)
        if not isinstance(arch, Arch):
            raise SupernasError(f"not an architecture: {arch!r}")
        if arch.space != self.name:
            raise SupernasError(f"arch belongs to space {arch.space!r}, not {self.name!r}")
        return self.arch(arch.values)

    def as_dict(self, arch: Arch) -> dict[str, Scalar]:
        return dict(zip(self.names, arch.values, strict=True))

    # -- string form ---------------------------------------------------------------------
    def format(self, values: tuple[Scalar, ...]) -> str:
        """Generic readable form: 'choice=value,choice=value'."""
        return ",".join(
            f"{c.name}={format_option(v)}" for c, v in zip(self.choices, values, strict=True)
        )

    def parse(self, text: str) -> Arch:
        """Inverse of str(arch) for the generic form."""
        parts = [p for p in text.strip().split(",") if p]
        if len(parts) != len(self.choices):
            raise SupernasError(
                f"arch string {text!r} has {len(parts)} parts; space {self.name!r} needs "
                f"{len(self.choices)} as {self.example()!r}"
            )
        values = []
        for c, part in zip(self.choices, parts, strict=True):
            name, sep, val = part.partition("=")
            if not sep or name.strip() != c.name:
                raise SupernasError(
                    f"arch string {text!r}: expected '{c.name}=...' but got {part!r}"
                )
            values.append(c.from_text(val.strip()))
        return Arch(self.name, tuple(values))

    def example(self) -> str:
        return str(Arch(self.name, tuple(c.options[0] for c in self.choices)))

    # -- encodings -----------------------------------------------------------------------
    def encode(self, arch: Arch) -> tuple[int, ...]:
        """Option indices, one per choice."""
        arch = self.validate(arch)
        return tuple(c.index(v) for c, v in zip(self.choices, arch.values, strict=True))

    def decode(self, indices: Sequence[int]) -> Arch:
        if len(indices) != len(self.choices):
            raise SupernasError(f"need {len(self.choices)} indices, got {len(indices)}")
        values = []
        for c, i in zip(self.choices, indices, strict=True):
            i = int(i)
            if not 0 <= i < len(c.options):
                raise SupernasError(f"index {i} out of range for choice {c.name!r}")
            values.append(c.options[i])
        return Arch(self.name, tuple(values))

    @property
    def one_hot_size(self) -> int:
        return sum(len(c.options) for c in self.choices)

    def one_hot(self, arch: Arch) -> np.ndarray:
        """Concatenated one-hot vectors, one block per choice (for GPs, MLP predictors)."""
        vec = np.zeros(self.one_hot_size, dtype=np.float32)
        offset = 0
        for c, i in zip(self.choices, self.encode(arch), strict=True):
            vec[offset + i] = 1.0
            offset += len(c.options)
        return vec

    def from_one_hot(self, vec: Sequence[float] | np.ndarray) -> Arch:
        """Inverse of one_hot; takes the argmax of each block, so soft vectors decode too."""
        vec = np.asarray(vec, dtype=np.float64)
        if vec.shape != (self.one_hot_size,):
            raise SupernasError(f"one-hot vector must have length {self.one_hot_size}")
        indices, offset = [], 0
        for c in self.choices:
            indices.append(int(np.argmax(vec[offset : offset + len(c.options)])))
            offset += len(c.options)
        return self.decode(indices)

    # -- random and local moves ----------------------------------------------------------
    def sample(self, seed_or_rng: RngLike) -> Arch:
        """Uniform sample: each choice's option drawn independently."""
        rng = as_rng(seed_or_rng)
        return self.decode([int(rng.integers(len(c.options))) for c in self.choices])

    def mutate(self, arch: Arch, seed_or_rng: RngLike) -> Arch:
        """Change exactly one choice (that has more than one option) to a different option."""
        rng = as_rng(seed_or_rng)
        idx = list(self.encode(arch))
        free = [i for i, c in enumerate(self.choices) if len(c.options) > 1]
        if not free:
            return arch
        k = free[int(rng.integers(len(free)))]
        n = len(self.choices[k].options)
        idx[k] = (idx[k] + 1 + int(rng.integers(n - 1))) % n
        return self.decode(idx)

    def neighbors(self, arch: Arch) -> list[Arch]:
        """All archs that differ from `arch` in exactly one choice, in choice order."""
        base = self.encode(arch)
        out = []
        for k, c in enumerate(self.choices):
            for j in range(len(c.options)):
                if j != base[k]:
                    idx = list(base)
                    idx[k] = j
                    out.append(self.decode(idx))
        return out

    def enumerate(self, limit: int | None = None) -> Iterator[Arch]:
        """Every arch in a fixed order; refuses spaces above `limit` (default max_enumerate)."""
        limit = self.max_enumerate if limit is None else limit
        if self.size > limit:
            raise SupernasError(
                f"space {self.name!r} has {format_size(self.size)} archs, above the "
                f"enumeration limit {limit:,}; use sampling or a search strategy instead"
            )
        for idx in itertools.product(*(range(len(c.options)) for c in self.choices)):
            yield self.decode(idx)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "description": self.description,
            "choices": {c.name: list(c.options) for c in self.choices},
            "options": self.options,
        }
