"""Benchmark tables: CSVs keyed by `arch`, joined, used as an estimator and as constraints.

Why tables: on NAS-Bench-201 (and HW-NAS-Bench) every arch has a known accuracy and latency,
so a search strategy can be benchmarked in milliseconds per query and compared with
published numbers, without training anything.

Joining rules (`load_tables`):
- every CSV needs an `arch` column; archs are matched on their text (surrounding spaces
  stripped) and the join is inner: only archs present in every file are kept.
- a column found in several files is kept once when its cells agree on every joined arch
  (NB201's `index` in both accuracy.csv and latency.csv); otherwise each copy is renamed
  `<file stem>.<column>` (e.g. `run1.accuracy`, `run2.accuracy`), and asking for the bare
  name is an error that lists the renamed ones.
- cells are parsed as numbers only when a column is used, so a text column that is never
  used is harmless; a used cell that is not a finite number is an error naming file,
  column, line and arch.

Multi-seed tables (ground truth trained with several seeds, `supernas bench build`): when a
CSV has a `seed` column, its rows are grouped by arch and each (arch, seed) may appear once
(a repeat is an error naming both lines). A numeric column is the mean over the arch's
seeds, so `test_accuracy` of the joined table is the seed mean that estimators are
compared with; a cell that is not a number is an error when the column is used, saying so
when the arch's seeds disagree on it. The `seed` column is dropped and an `n_seeds` column
(seeds per arch) added. `seed_values` keeps the seeds apart, for the noise ceiling.
"""

from __future__ import annotations

import csv
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from supernas.errors import SupernasError
from supernas.space import Arch, SearchSpace, get_space, list_spaces


@dataclass(frozen=True)
class _Column:
    path: str
    cells: list[tuple[str, ...]]  # raw text of each seed's row, aligned with Table.archs
    lines: list[tuple[int, ...]]  # line number of each cell in its file (the header is 1)

    def same_as(self, other: _Column) -> bool:
        """Equal per arch, a cell repeated over seeds counting once (for the join)."""
        return [_folded(c) for c in self.cells] == [_folded(c) for c in other.cells]


def _folded(cells: tuple[str, ...]) -> tuple[str, ...]:
    return cells[:1] if len(set(cells)) == 1 else cells


@dataclass(frozen=True)
class _Row:
    line: int
    seed: str | None
    cells: list[str]


@dataclass(frozen=True)
class _Csv:
    path: str
    header: list[str]
    rows: dict[str, list[_Row]]  # arch -> its rows, one per seed (one without a seed column)

    @property
    def seeded(self) -> bool:
        return "seed" in self.header


def _read_csv(path: str | Path) -> _Csv:
    p = Path(path)
    if not p.is_file():
        raise SupernasError(f"table not found: {p}")
    try:
        with open(p, newline="", encoding="utf-8") as f:
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SupernasError(f"cannot read table {p}: {exc}") from None
    if not lines:
        raise SupernasError(f"table {p} is empty")
    header = [h.strip() for h in lines[0]]
    if "arch" not in header:
        raise SupernasError(f"table {p} has no 'arch' column; its columns: {', '.join(header)}")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise SupernasError(f"table {p} has duplicate column names: {', '.join(dup)}")
    a = header.index("arch")
    s = header.index("seed") if "seed" in header else None
    rows: dict[str, list[_Row]] = {}
    for n, cells in enumerate(lines[1:], start=2):
        if not any(c.strip() for c in cells):
            continue  # blank line
        if len(cells) != len(header):
            raise SupernasError(
                f"table {p}, line {n}: {len(cells)} cells but the header has {len(header)}"
            )
        cells = [c.strip() for c in cells]
        arch, seed = cells[a], None if s is None else cells[s]
        if seed == "":
            raise SupernasError(f"table {p}, line {n}: empty seed cell (arch {arch})")
        for old in rows.get(arch, []):
            if old.seed == seed:
                what = f"arch {arch!r}" if s is None else f"arch {arch!r} with seed {seed}"
                raise SupernasError(f"table {p}: {what} appears twice (lines {old.line} and {n})")
        rows.setdefault(arch, []).append(_Row(n, seed, cells))
    if not rows:
        raise SupernasError(f"table {p} has a header but no rows")
    return _Csv(str(p), header, rows)


def _number(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return math.nan


def _mean_cell(
    path: str, column: str, arch: str, cells: tuple[str, ...], lines: tuple[int, ...]
) -> float:
    """The mean of one arch's cells over its seeds; a non-number is an error naming it."""
    values = [_number(c) for c in cells]
    for cell, line, v in zip(cells, lines, values, strict=True):
        if math.isfinite(v):
            continue
        if len(set(cells)) > 1:
            raise SupernasError(
                f"table {path}, column {column!r} (arch {arch}): the seeds disagree "
                f"(lines {', '.join(map(str, lines))}) and {cell!r} (line {line}) is not a "
                "finite number to average"
            )
        raise SupernasError(
            f"table {path}, column {column!r}, line {line} (arch {arch}): "
            f"{cell!r} is not a finite number"
        )
    return float(np.mean(values))


class Table:
    """Joined benchmark tables: one row per arch, columns parsed to floats on first use."""

    def __init__(
        self, archs: list[str], columns: dict[str, _Column], renamed: dict[str, list[str]]
    ):
        self.archs = archs
        self._columns = columns
        self._renamed = renamed  # bare name -> its `<stem>.<name>` copies
        self._values: dict[str, dict[str, float]] = {}
        self._space: SearchSpace | None = None
        self._parsed: dict[Arch, str] = {}  # canonical Arch -> the table's arch text

    def __len__(self) -> int:
        return len(self.archs)

    def __repr__(self) -> str:
        return f"Table({len(self.archs)} archs, columns={self.columns})"

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def _column(self, column: str) -> _Column:
        if column in self._columns:
            return self._columns[column]
        if column in self._renamed:
            raise SupernasError(
                f"column {column!r} differs between tables; use one of: "
                + ", ".join(self._renamed[column])
            )
        raise SupernasError(f"unknown column {column!r}; columns: {', '.join(self.columns)}")

    def values(self, column: str) -> dict[str, float]:
        """{arch text: value}, the mean over seeds in a multi-seed table; cells must be finite."""
        if column not in self._values:
            col = self._column(column)
            out: dict[str, float] = {}
            for arch, cells, lines in zip(self.archs, col.cells, col.lines, strict=True):
                out[arch] = _mean_cell(col.path, column, arch, cells, lines)
            self._values[column] = out
        return self._values[column]

    def space(self) -> SearchSpace:
        """The registered space (default options) in which every arch of the table parses.

        NB201 is tried first; the error lists the spaces tried and the first arch that fails.
        """
        if self._space is not None:
            return self._space
        names = ["nb201", *[n for n in list_spaces() if n != "nb201"]]
        failures = []
        for name in names:
            try:
                sp = get_space(name)
                parsed = {sp.parse(a): a for a in self.archs}
            except SupernasError as exc:
                failures.append(f"{name}: {exc}")
                continue
            if len(parsed) != len(self.archs):
                raise SupernasError(
                    f"two arch strings of the table are the same {name} arch written differently"
                )
            self._space, self._parsed = sp, parsed
            return sp
        raise SupernasError(
            "the table's archs are not in a known space (" + "; ".join(failures) + ")"
        )

    def arch_values(self, column: str) -> dict[Arch, float]:
        """{Arch: value} over the table's space: what estimators and constraints look up."""
        vals = self.values(column)
        self.space()
        return {a: vals[t] for a, t in self._parsed.items()}


def load_tables(paths: Sequence[str | Path]) -> Table:
    """Read CSVs that each have an `arch` column and inner-join them on `arch` (module doc)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        raise SupernasError("no table given: pass at least one CSV file with an 'arch' column")
    tables = [_read_csv(p) for p in paths]
    archs = [a for a in tables[0].rows if all(a in t.rows for t in tables[1:])]
    if not archs:
        raise SupernasError(
            "the tables have no arch in common: " + ", ".join(t.path for t in tables)
        )
    copies: dict[str, list[tuple[_Csv, _Column]]] = {}
    for t in tables:
        rows = [t.rows[a] for a in archs]
        lines = [tuple(r.line for r in rs) for rs in rows]
        for i, name in enumerate(t.header):
            if name == "arch" or (name == "seed" and t.seeded):
                continue
            col = _Column(t.path, [tuple(r.cells[i] for r in rs) for rs in rows], lines)
            copies.setdefault(name, []).append((t, col))
        if t.seeded:
            n_seeds = [(str(len(rs)),) for rs in rows]
            firsts = [ls[:1] for ls in lines]
            copies.setdefault("n_seeds", []).append((t, _Column(t.path, n_seeds, firsts)))
    columns: dict[str, _Column] = {}
    renamed: dict[str, list[str]] = {}
    for name, cols in copies.items():
        if all(c.same_as(cols[0][1]) for _, c in cols):
            columns[name] = cols[0][1]
            continue
        stems = [Path(t.path).stem for t, _ in cols]
        if len(set(stems)) != len(stems):
            raise SupernasError(
                f"column {name!r} differs between tables whose file names are the same "
                f"({', '.join(t.path for t, _ in cols)}); rename a file or the column"
            )
        renamed[name] = [f"{s}.{name}" for s in stems]
        for new, (_, c) in zip(renamed[name], cols, strict=True):
            if new in copies:
                raise SupernasError(f"cannot rename differing column {name!r}: {new!r} exists")
            columns[new] = c
    return Table(archs, columns, renamed)


def seed_values(path: str | Path, column: str) -> dict[str, dict[str, float]]:
    """{seed: {arch text: value}} of one column of one multi-seed CSV (seeds kept apart).

    A CSV without a `seed` column counts as one seed named "". Cells must be finite numbers.
    """
    t = _read_csv(path)
    if column not in t.header or column in ("arch", "seed"):
        cols = [h for h in t.header if h not in ("arch", "seed")]
        raise SupernasError(f"unknown column {column!r} in {t.path}; columns: {', '.join(cols)}")
    i = t.header.index(column)
    out: dict[str, dict[str, float]] = {}
    for arch, rows in t.rows.items():
        for r in rows:
            v = _mean_cell(t.path, column, arch, (r.cells[i],), (r.line,))
            out.setdefault(r.seed or "", {})[arch] = v
    return out


class TableEstimator:
    """The Estimator protocol over one table column (negated with `minimize=True`).

    Higher is better, as every Estimator. An arch that is not in the table is an error,
    not NaN: table_search makes "is in the table" part of the constraint, so a strategy
    never spends budget on an arch the table cannot score.
    """

    def __init__(self, table: Table, column: str, *, minimize: bool = False) -> None:
        self.table = table
        self.column = column
        self.minimize = bool(minimize)
        self.name = f"table:-{column}" if minimize else f"table:{column}"
        self._lookup = table.arch_values(column)

    def value(self, arch: Arch) -> float:
        """The column's own value (not negated) for `arch`."""
        try:
            return self._lookup[arch]
        except KeyError:
            raise SupernasError(f"arch {arch} is not in the table") from None

    def score(self, archs: Sequence[Arch]) -> list[float]:
        sign = -1.0 if self.minimize else 1.0
        return [sign * self.value(a) for a in archs]


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_CONSTRAINT = re.compile(r"^\s*(.+?)\s*(<=|>=|<|>)\s*(\S+)\s*$")


@dataclass(frozen=True)
class ColumnConstraint:
    """`column op threshold` over a table; an arch missing from the table is infeasible."""

    text: str
    column: str
    op: str
    threshold: float
    lookup: dict[Arch, float]

    def __call__(self, arch: Arch) -> bool:
        v = self.lookup.get(arch)
        return v is not None and _OPS[self.op](v, self.threshold)

    def __repr__(self) -> str:
        return f"ColumnConstraint({self.column}{self.op}{self.threshold:g})"


def parse_column_constraint(text: str, table: Table) -> ColumnConstraint:
    """Parse 'COLUMN<=VALUE' (ops <=, <, >=, >) into a predicate over the table's archs.

    VALUE is a number, or `median`: the median of that column over all archs of the joined
    table (before any constraint), e.g. 'edgegpu_latency<=median' keeps the faster half.
    """
    m = _CONSTRAINT.match(text)
    if not m:
        raise SupernasError(
            f"bad constraint {text!r}: expected COLUMN<=VALUE (ops <=, <, >=, >; VALUE a "
            "number or 'median'), e.g. 'edgegpu_latency<=5.2'"
        )
    column, op, raw = m.groups()
    lookup = table.arch_values(column)
    if raw.lower() == "median":
        threshold = float(np.median(list(lookup.values())))
    else:
        try:
            threshold = float(raw)
        except ValueError:
            raise SupernasError(
                f"bad constraint {text!r}: {raw!r} is neither a number nor 'median'"
            ) from None
        if math.isnan(threshold):
            raise SupernasError(f"bad constraint {text!r}: the threshold is NaN")
    return ColumnConstraint(text.strip(), column, op, threshold, lookup)
