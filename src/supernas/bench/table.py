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
    cells: list[str]  # raw text, aligned with Table.archs
    lines: list[int]  # line number of each cell in its file (the header is line 1)


@dataclass(frozen=True)
class _Csv:
    path: str
    header: list[str]
    rows: dict[str, tuple[int, list[str]]]  # arch -> (line number, cells)


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
    rows: dict[str, tuple[int, list[str]]] = {}
    for n, cells in enumerate(lines[1:], start=2):
        if not any(c.strip() for c in cells):
            continue  # blank line
        if len(cells) != len(header):
            raise SupernasError(
                f"table {p}, line {n}: {len(cells)} cells but the header has {len(header)}"
            )
        arch = cells[a].strip()
        if arch in rows:
            raise SupernasError(
                f"table {p}: arch {arch!r} appears twice (lines {rows[arch][0]} and {n})"
            )
        rows[arch] = (n, [c.strip() for c in cells])
    if not rows:
        raise SupernasError(f"table {p} has a header but no rows")
    return _Csv(str(p), header, rows)


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
        """{arch text: value}; every cell must be a finite number (errors name file and line)."""
        if column not in self._values:
            col = self._column(column)
            out: dict[str, float] = {}
            for arch, cell, line in zip(self.archs, col.cells, col.lines, strict=True):
                try:
                    v = float(cell)
                except ValueError:
                    v = math.nan
                if not math.isfinite(v):
                    raise SupernasError(
                        f"table {col.path}, column {column!r}, line {line} (arch {arch}): "
                        f"{cell!r} is not a finite number"
                    )
                out[arch] = v
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
        for i, name in enumerate(t.header):
            if name == "arch":
                continue
            rows = [t.rows[a] for a in archs]
            col = _Column(t.path, [r[1][i] for r in rows], [r[0] for r in rows])
            copies.setdefault(name, []).append((t, col))
    columns: dict[str, _Column] = {}
    renamed: dict[str, list[str]] = {}
    for name, cols in copies.items():
        if all(c.cells == cols[0][1].cells for _, c in cols):
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
