"""The `supernas run` configuration: flags or a TOML file, saved as the run's config.toml."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from supernas.errors import SupernasError
from supernas.train import Recipe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Small enough that the default run (digits, resnet18) finishes in minutes on a 2-core CPU.
DEFAULT_SPACE_OPTIONS: dict[str, dict[str, Any]] = {
    "resnet18": {"base_width": 8},
    "resnet18_quant": {"base_width": 8},
    "nb201": {"C": 8, "N": 1},
    "mobilenetv2": {"base_width": 8},
}
#: Sized for the default budget of 120 evaluations (the paper's 100/25 suits thousands).
DEFAULT_STRATEGY_OPTIONS: dict[str, dict[str, Any]] = {
    "evolution": {"population": 20, "sample_size": 5}
}


@dataclass
class RunConfig:
    """Everything a run needs; every random choice derives from `seed`."""

    seed: int = 0
    space: str = "resnet18"
    space_options: dict[str, Any] = field(default_factory=dict)
    #: your own network, "path/to/file.py:factory" (supernas.nn); replaces `space`
    model: str = ""
    data: str = "digits"
    data_dir: str = ""
    max_train: int = 0
    max_val: int = 0
    image_size: int = 0
    method: str = "spos"
    #: the trainer's own options (fairnas paths, ghn archs_per_step, darts order, ...)
    method_options: dict[str, Any] = field(default_factory=dict)
    supernet: Recipe = field(default_factory=lambda: Recipe(epochs=40, batch_size=64, lr=0.1))
    recal_batches: int = 8
    strategy: str = "evolution"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    budget: int = 120
    constraints: list[str] = field(default_factory=list)
    lut: str = ""
    top_k: int = 3
    retrain: Recipe = field(default_factory=lambda: Recipe(epochs=15, batch_size=64, lr=0.1))
    trust_n: int = 10
    #: trainings per trust arch (seeds seed, seed+1, ...); two measure the noise ceiling
    trust_seeds: int = 2

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise SupernasError(f"search budget must be at least 1, got {self.budget}")
        if self.top_k < 1:
            raise SupernasError(f"top_k must be at least 1, got {self.top_k}")
        if self.trust_n < 0 or self.trust_n == 1:
            raise SupernasError("trust_n must be 0 (skip the trust check) or at least 2")
        if self.trust_seeds < 1:
            raise SupernasError(f"trust_seeds must be at least 1, got {self.trust_seeds}")
        if self.max_train < 0 or self.max_val < 0:
            raise SupernasError("max_train and max_val must be >= 0 (0 = all)")

    def resolved_space_options(self) -> dict[str, Any]:
        return {**DEFAULT_SPACE_OPTIONS.get(self.space, {}), **self.space_options}

    def resolved_strategy_options(self) -> dict[str, Any]:
        return {**DEFAULT_STRATEGY_OPTIONS.get(self.strategy, {}), **self.strategy_options}

    def to_toml(self) -> str:
        d = asdict(self)
        d["space_options"] = self.resolved_space_options()  # explicit in the saved config
        d["strategy_options"] = self.resolved_strategy_options()
        top = {k: v for k, v in d.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in d.items() if isinstance(v, dict)}
        return tomli_w.dumps({"run": top, **tables})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        flat = dict(d.get("run", {}))
        for k, v in d.items():
            if k != "run":
                flat[k] = v
        known = {f.name for f in fields(cls)}
        unknown = set(flat) - known
        if unknown:
            raise SupernasError(f"unknown config keys {sorted(unknown)}; valid: {sorted(known)}")
        for key in ("supernet", "retrain"):
            if key in flat:
                flat[key] = (
                    Recipe.from_dict(flat[key]) if isinstance(flat[key], dict) else flat[key]
                )
        try:
            return cls(**flat)
        except TypeError as exc:
            raise SupernasError(f"bad config: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        if not path.is_file():
            raise SupernasError(f"config file not found: {path}")
        try:
            return cls.from_dict(tomllib.loads(path.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise SupernasError(f"{path} is not valid TOML: {exc}") from None


def parse_option(text: str) -> tuple[str, Any]:
    """'key=value' with value read as int, float, bool or string (for --space-opt)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SupernasError(f"option {text!r} must look like key=value")
    raw = raw.strip()
    value: Any = raw
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        for conv in (int, float):
            try:
                value = conv(raw)
                break
            except ValueError:
                pass
    return key.strip(), value
