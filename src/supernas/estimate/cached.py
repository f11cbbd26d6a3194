"""Train-from-scratch backed by a CSV table on disk: our own tabular benchmark, built lazily.

Why: an anytime evaluation (NAS-Bench-1Shot1 style) asks for the true accuracy of the arch
a one-shot method returns after every epoch, for several methods and seeds. Most of those
archs repeat, and on a space without a published table the truth is standalone training,
which is the expensive part. Writing each result to a table the moment it exists means a
second run, another method or a killed and restarted run never trains an arch twice, and
the file doubles as a table for `supernas bench search` (`load_tables`).

File format: a header `arch,seed,val_accuracy,test_accuracy,params,flops,train_seconds`, then
one line per trained (arch, seed), appended with a single write and fsync right after training.
A kill mid-write leaves a last line without its newline; it is ignored (and cut off before
the next append), so a half-written number never passes for a result. Beside the CSV,
`<file>.meta.json` records the space, its options, the data and the recipe: a cache built
with another recipe or data is refused instead of silently mixing two kinds of truth.

The same file is what `supernas bench build` writes (several seeds per arch, from parallel
workers, with the parent process the only writer): `load_tables` averages a table's seeds
per arch, and the seed-to-seed agreement is the table's noise ceiling.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.estimate.scratch import TrainFromScratch, train_arch
from supernas.hardware import count_flops, count_params
from supernas.io import read_json, write_json, write_text
from supernas.space import Arch, SearchSpace
from supernas.train import Recipe, TrainResult

COLUMNS = ("arch", "seed", "val_accuracy", "test_accuracy", "params", "flops", "train_seconds")
FORMAT = "supernas.scratch_cache/2"


def train_row(
    space: SearchSpace, arch: Arch, data: Dataset, recipe: Recipe, seed: int
) -> dict[str, float]:
    """Train `arch` standalone with `seed`: the numbers of one table row (not the arch, seed)."""
    model, res = train_arch(space, arch, data, recipe, seed)
    return {
        "val_accuracy": float(res.val_accuracy),
        "test_accuracy": float(res.test_accuracy),
        "params": float(count_params(model)),
        "flops": float(count_flops(model, data.input_shape)),
        "train_seconds": float(res.seconds),
    }


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


class CachedTrainFromScratch(TrainFromScratch):
    """`TrainFromScratch` whose results persist in a CSV table (module doc for the format).

    `score(archs)` trains only the (arch, seed) pairs the file does not hold yet; `trained`
    counts the archs this object actually trained (the rest came from the file).
    """

    name = "scratch-cached"

    def __init__(
        self,
        path: str | os.PathLike[str],
        space: SearchSpace,
        data: Dataset,
        recipe: Recipe | None = None,
        *,
        seed: int = 0,
        metric: str = "val",
        on_arch: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(space, data, recipe, seed=seed, metric=metric, on_arch=on_arch)
        self.path = Path(path)
        self.trained = 0
        self.rows: dict[tuple[Arch, int], dict[str, float]] = {}
        self._check_meta()
        self._load()

    # -- the file -------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """What the cached numbers depend on besides (arch, seed)."""
        d = self.data
        return {
            "format": FORMAT,
            "space": self.space.name,
            "space_options": dict(self.space.options),
            "data": d.name,
            "sizes": [len(d.x_train), len(d.x_val), len(d.x_test)],
            "input_shape": list(d.input_shape),
            "recipe": self.recipe.to_dict(),
        }

    def _check_meta(self) -> None:
        # a JSON round trip, so tuples in space options compare equal to the stored lists
        mp, want = _meta_path(self.path), json.loads(json.dumps(self.meta()))
        if mp.is_file():
            have = read_json(mp)
            if isinstance(have.get("recipe"), dict):  # recipe keys added since: defaults
                have["recipe"] = Recipe.from_dict(have["recipe"]).to_dict()
            if have != want:
                diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
                raise SupernasError(
                    f"scratch cache {self.path} was built with other settings "
                    f"({', '.join(diff)} differ, see {mp}); use another file or the same "
                    "space, data and recipe"
                )
        elif self.path.is_file() and self.path.stat().st_size > 0:
            raise SupernasError(
                f"{self.path} exists but has no {mp.name}; it is not a scratch cache "
                "(or its settings are unknown): use another file"
            )
        else:
            write_json(mp, want)

    def _load(self) -> None:
        """Read the complete lines; drop a partial last line (a kill mid-append)."""
        text = self.path.read_text(encoding="utf-8") if self.path.is_file() else ""
        complete = text[: text.rfind("\n") + 1]  # everything up to the last newline
        header = ",".join(COLUMNS) + "\n"
        if not complete:
            write_text(self.path, header)
            return
        if complete != text:  # cut the partial line so the next append starts a fresh one
            write_text(self.path, complete)
        lines = list(csv.reader(io.StringIO(complete)))
        if [h.strip() for h in lines[0]] != list(COLUMNS):
            raise SupernasError(
                f"scratch cache {self.path}: header {lines[0]} is not {list(COLUMNS)}"
            )
        for n, cells in enumerate(lines[1:], start=2):
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(COLUMNS):
                raise SupernasError(
                    f"scratch cache {self.path}, line {n}: expected {len(COLUMNS)} cells"
                )
            try:
                arch = self.space.parse(cells[0].strip())
                key = (arch, int(cells[1]))
                row = {c: float(v) for c, v in zip(COLUMNS[2:], cells[2:], strict=True)}
            except (SupernasError, ValueError) as exc:
                raise SupernasError(f"scratch cache {self.path}, line {n}: {exc}") from None
            self.rows.setdefault(key, row)  # a duplicate (two writers) keeps the first

    def record(self, arch: Arch, seed: int, row: dict[str, float]) -> None:
        """Append one result: one write of one whole line, then fsync (a kill loses at most it).

        A row already held is not written again (a duplicate would be a second truth).
        """
        arch = self.space.validate(arch)
        if (arch, seed) in self.rows:
            return
        buf = io.StringIO()
        cells = [str(arch), seed]
        for c in COLUMNS[2:]:
            cells.append(int(row[c]) if c in ("params", "flops") else repr(float(row[c])))
        csv.writer(buf, lineterminator="\n").writerow(cells)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        self.rows[(arch, seed)] = {c: float(row[c]) for c in COLUMNS[2:]}

    # -- the estimator --------------------------------------------------------------------
    def cached(self, arch: Arch) -> bool:
        """Whether `arch` (with this seed) is already in the file: no training needed."""
        return (self.space.validate(arch), self.seed) in self.rows

    def train(self, arch: Arch) -> TrainResult:
        arch = self.space.validate(arch)
        row = self.rows.get((arch, self.seed))
        if row is None:
            row = train_row(self.space, arch, self.data, self.recipe, self.seed)
            self.trained += 1
            self.record(arch, self.seed, row)
        return TrainResult(
            val_accuracy=row["val_accuracy"],
            test_accuracy=row["test_accuracy"],
            seconds=row["train_seconds"],
        )
