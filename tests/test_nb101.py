"""NAS-Bench-101: canonical cells, 1Shot1 sizes, NB101 channels, and the TFRecord reader."""

from __future__ import annotations

import base64
import csv
import json
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from supernas.bench.nb101 import crc32c, masked_crc, nb101_table, read_records, write_records
from supernas.errors import SupernasError
from supernas.space import get_space
from supernas.space.nb101 import NB101_CELLS, hash_module
from supernas.supernet.nb101 import vertex_channels

C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
#: 0 -> 1 -> 3, 0 -> 2 -> 3 with different ops on 1 and 2; SWAPPED is the same cell.
CELL = ([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", C3, MP, "output"])
SWAPPED = (CELL[0], ["input", MP, C3, "output"])


def test_isomorphic_cells_are_one_arch_with_one_hash() -> None:
    space = get_space("nb101")
    a, b = space.from_spec(*CELL), space.from_spec(*SWAPPED)
    assert a == b and hash(a) == hash(b) and str(a) == str(b)
    assert space.parse(str(a)) == a and a in space
    assert hash_module(CELL[0], CELL[1][1:-1]) == hash_module(SWAPPED[0], SWAPPED[1][1:-1])
    assert hash_module(CELL[0], [C3, C3]) != hash_module(CELL[0], [C3, MP])
    assert space.module_hash(a) == hash_module(CELL[0], CELL[1][1:-1])


def test_dangling_nodes_are_pruned() -> None:
    space = get_space("nb101")
    # node 3 has no path to the output, node 4 none from the input
    matrix = [[0] * 6 for _ in range(6)]
    for i, j in [(0, 1), (1, 5), (0, 3), (4, 5)]:
        matrix[i][j] = 1
    a = space.from_spec(matrix, ["input", C1, C3, MP, C3, "output"])
    assert str(a) == f"010,001,000|{C1}"
    assert a == space.parse(f"010,001,000|{C1}")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0100,0000,0001,0000|" + f"{C3},{C3}", "no path from the input to the output"),
        (
            "0111111,0011111,0001111,0000111,0000011,0000001,0000000|" + ",".join([C3] * 5),
            "at most 9",
        ),
        ("01,10|", "upper triangular"),
        ("011,001|" + C3, "must be 2 rows of 2"),
        ("011,001,000|conv5x5", "unknown op"),
        ("011,001,000", "nb101 form"),
        ("01,00|" + C3, "need 0 intermediate ops"),
    ],
)
def test_invalid_cells_are_refused(text: str, match: str) -> None:
    with pytest.raises(SupernasError, match=match):
        get_space("nb101").parse(text)


def test_size_is_documented_and_enumeration_refused() -> None:
    space = get_space("nb101")
    assert space.size == NB101_CELLS == 423_624
    with pytest.raises(SupernasError, match="423,624"):
        next(space.enumerate())


def test_oneshot1_sizes() -> None:
    sizes = {n: get_space(f"nb101_s{n}").size for n in (1, 2, 3)}
    assert sizes == {1: 6_240, 2: 16_632, 3: 363_648}  # paper: 6,240 / 29,160 / 363,648
    assert get_space("nb101_s2").n_encodings == 29_160  # the paper's number for space 2
    assert get_space("nb101_s1").n_encodings == 180 * 3**4


@pytest.mark.parametrize("n", [1, 2, 3])
def test_oneshot1_encodings_map_to_valid_nb101_cells(n: int) -> None:
    space, nb = get_space(f"nb101_s{n}"), get_space("nb101")
    for seed in range(20):
        cell = space.to_nb101(space.sample(seed))
        assert cell in nb
        matrix, ops = nb.cell(cell)
        assert sum(map(sum, matrix)) <= 9 and len(ops) <= space.inner


def test_vertex_channels_split_the_output_as_nb101() -> None:
    # three nodes feed the output: 128 = 43 + 43 + 42; node 1 feeds node 2 only (max)
    m = [[0, 1, 1, 1, 1, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 1]]
    m += [[0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]]
    assert vertex_channels(m, 128) == [0, 43, 43, 43, 42, 128]
    assert vertex_channels([[0, 1], [0, 0]], 16) == [0, 16]


# -- the TFRecord reader ---------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _double(field: int, x: float) -> bytes:
    return _varint(field << 3 | 1) + struct.pack("<d", x)


def _metrics(params: int, evals: list[tuple[float, float, float, float]]) -> bytes:
    """ModelMetrics in protobuf wire format, written by hand (independent of the reader)."""
    out = b""
    for epoch, seconds, val, test in evals:
        ev = _double(1, epoch) + _double(2, seconds) + _double(3, 1.0)
        ev += _double(4, val) + _double(5, test) + _varint(6 << 3 | 2) + _varint(3) + b"ckp"
        out += _varint(1 << 3 | 2) + _varint(len(ev)) + ev
    return out + _varint(2 << 3) + _varint(params) + _double(3, 99.0)


def _record(matrix: list[list[int]], ops: list[str], epochs: int, val: float, test: float) -> bytes:
    raw = "".join(str(b) for row in matrix for b in row)
    evals = [(0.0, 0.0, 0.1, 0.1), (epochs / 2, 5.0, 0.5, 0.5), (float(epochs), 10.0, val, test)]
    metrics = base64.b64encode(_metrics(1234, evals)).decode()
    row = [hash_module(matrix, ops[1:-1]), epochs, raw, ",".join(ops), metrics]
    return json.dumps(row).encode()


def _fixture(path: Path) -> Path:
    recs = [_record(*CELL, 108, v, v - 0.01) for v in (0.90, 0.91, 0.92)]
    recs += [_record(*SWAPPED, 4, 0.5, 0.4)]  # the same cell, another budget
    recs += [_record([[0, 1], [0, 0]], ["input", "output"], 108, 0.8, 0.7)]
    return write_records(path, recs)


def test_crc32c_known_answer() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert masked_crc(b"") == ((0 >> 15 | 0 << 17) + 0xA282EAD8) & 0xFFFFFFFF


def test_table_averages_repeats_per_budget(tmp_path: Path) -> None:
    res = nb101_table(_fixture(tmp_path / "nb.tfrecord"), tmp_path / "t.csv")
    assert res == {"records": 5, "archs": 2, "budgets": 2}
    with (tmp_path / "t.csv").open(newline="") as fh:
        rows = {r["arch"]: r for r in csv.DictReader(fh)}
    space = get_space("nb101")
    row = rows[str(space.from_spec(*CELL))]
    assert float(row["val_accuracy_108"]) == pytest.approx(0.91)
    assert float(row["test_accuracy_108"]) == pytest.approx(0.90)
    assert float(row["val_accuracy_4"]) == pytest.approx(0.5)
    assert float(row["train_seconds_108"]) == pytest.approx(10.0)
    assert row["params"] == "1234" and row["n_repeats"] == "3"
    assert row["module_hash"] == space.module_hash(space.parse(row["arch"]))
    assert rows["01,00|"]["val_accuracy_4"] == ""


def test_corrupt_and_truncated_records_are_clear_errors(tmp_path: Path) -> None:
    data = bytearray(_fixture(tmp_path / "nb.tfrecord").read_bytes())
    data[20] ^= 0xFF
    (tmp_path / "bad.tfrecord").write_bytes(bytes(data))
    with pytest.raises(SupernasError, match="record 0: corrupt record \\(data CRC"):
        list(read_records(tmp_path / "bad.tfrecord"))
    (tmp_path / "short.tfrecord").write_bytes((tmp_path / "nb.tfrecord").read_bytes()[:-3])
    with pytest.raises(SupernasError, match="record 4: truncated data"):
        list(read_records(tmp_path / "short.tfrecord"))
    write_records(tmp_path / "junk.tfrecord", [b"not json"])
    with pytest.raises(SupernasError, match="record 0: not an NB101 record"):
        nb101_table(tmp_path / "junk.tfrecord", tmp_path / "t.csv")


def test_cli_bench_nb101(tmp_path: Path) -> None:
    from supernas.cli import app

    path = _fixture(tmp_path / "nb.tfrecord")
    r = CliRunner().invoke(
        app, ["bench", "nb101", "--file", str(path), "--out", str(tmp_path / "t.csv")]
    )
    assert r.exit_code == 0, r.output
    assert "2 cells" in " ".join(r.output.split()) and (tmp_path / "t.csv").exists()
    r = CliRunner().invoke(
        app, ["bench", "nb101", "--file", str(tmp_path / "no"), "--out", "x.csv"]
    )
    assert r.exit_code == 2 and "error:" in r.output
