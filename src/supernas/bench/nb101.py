"""Read NAS-Bench-101's official data file (nasbench_only108.tfrecord / nasbench_full) into a table.

Why no TensorFlow: the file is plain TFRecord framing around JSON rows, so it is read
directly. Each record is: uint64 length, uint32 masked crc32c of the length, the data,
uint32 masked crc32c of the data (all little-endian); both CRCs are checked. The data is
the JSON list [module_hash, epochs, raw_adjacency, raw_operations, raw_metrics] of NB101's
api.py, raw_metrics a base64 `ModelMetrics` protobuf (nasbench/lib/model_metrics.proto),
defined here at runtime. Every (cell, epoch budget) has 3 repeats; the table averages them.
"""

from __future__ import annotations

import base64
import binascii
import csv
import functools
import json
import struct
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from supernas.errors import SupernasError
from supernas.space import get_space

_MASK_DELTA = 0xA282EAD8


@functools.cache
def _crc_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord uses; pure Python, table-driven."""
    table = _crc_table()
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 and add a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def write_records(path: str | Path, records: Iterable[bytes]) -> Path:
    """Write TFRecord framing around each record (for tests and small fixtures)."""
    path = Path(path)
    with path.open("wb") as fh:
        for data in records:
            head = struct.pack("<Q", len(data))
            fh.write(head + struct.pack("<I", masked_crc(head)))
            fh.write(data + struct.pack("<I", masked_crc(data)))
    return path


def read_records(path: str | Path) -> Iterator[bytes]:
    """The data of each record; a short or corrupt record is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise SupernasError(f"{path}: no such file (the NB101 data set is not bundled)")
    with path.open("rb") as fh:
        index = 0
        while head := fh.read(12):
            where = f"{path}: record {index}"
            if len(head) < 12:
                raise SupernasError(f"{where}: truncated length header")
            (length,), (crc,) = struct.unpack("<Q", head[:8]), struct.unpack("<I", head[8:])
            if masked_crc(head[:8]) != crc:
                raise SupernasError(f"{where}: corrupt record (length CRC mismatch)")
            body = fh.read(length + 4)
            if len(body) < length + 4:
                raise SupernasError(f"{where}: truncated data ({len(body)} of {length + 4} bytes)")
            data, (crc,) = body[:length], struct.unpack("<I", body[length:])
            if masked_crc(data) != crc:
                raise SupernasError(f"{where}: corrupt record (data CRC mismatch)")
            yield data
            index += 1


@functools.cache
def metrics_class() -> Any:
    """NB101's ModelMetrics message, built from a descriptor (no .proto compile step)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="supernas_nb101_model_metrics.proto", package="nasbench", syntax="proto2"
    )
    ev = proto.message_type.add(name="EvaluationData")
    names = ("current_epoch", "training_time", "train_accuracy", "validation_accuracy")
    for number, name in enumerate((*names, "test_accuracy"), 1):
        ev.field.add(name=name, number=number, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    ev.field.add(name="checkpoint_path", number=6, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    mm = proto.message_type.add(name="ModelMetrics")
    mm.field.add(
        name="evaluation_data",
        number=1,
        type=F.TYPE_MESSAGE,
        label=F.LABEL_REPEATED,
        type_name=".nasbench.EvaluationData",
    )
    mm.field.add(name="trainable_parameters", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    mm.field.add(name="total_time", number=3, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("nasbench.ModelMetrics"))


def decode_record(data: bytes, index: int = 0) -> dict[str, Any]:
    """One record: hash, epochs, matrix, ops and the final evaluation's numbers."""
    from google.protobuf.message import DecodeError

    try:
        module_hash, epochs, raw_adjacency, raw_operations, raw_metrics = json.loads(data)
        metrics = metrics_class().FromString(base64.b64decode(raw_metrics, validate=True))
    except (ValueError, TypeError, binascii.Error, DecodeError) as exc:
        raise SupernasError(f"record {index}: not an NB101 record ({exc})") from None
    if not isinstance(raw_adjacency, str) or not isinstance(raw_operations, str):
        raise SupernasError(f"record {index}: adjacency and operations must be strings")
    n = round(len(raw_adjacency) ** 0.5)
    if n * n != len(raw_adjacency) or set(raw_adjacency) - {"0", "1"}:
        raise SupernasError(f"record {index}: raw adjacency {raw_adjacency!r} is not n x n bits")
    if not metrics.evaluation_data:
        raise SupernasError(f"record {index}: no evaluation data")
    final = metrics.evaluation_data[-1]
    return {
        "module_hash": str(module_hash),
        "epochs": int(epochs),
        "matrix": [[int(raw_adjacency[i * n + j]) for j in range(n)] for i in range(n)],
        "ops": raw_operations.split(","),
        "params": int(metrics.trainable_parameters),
        "val_accuracy": final.validation_accuracy,
        "test_accuracy": final.test_accuracy,
        "train_seconds": final.training_time,
    }


def nb101_table(path: str | Path, out: str | Path) -> dict[str, int]:
    """Write the CSV table: one row per cell, per budget E the mean over its repeats of
    val_accuracy_E, test_accuracy_E (0..1) and train_seconds_E, plus params, n_repeats.
    """
    space = get_space("nb101")
    rows: dict[str, dict[str, Any]] = {}
    runs: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    n_records = 0
    for index, data in enumerate(read_records(path)):
        rec = decode_record(data, index)
        try:
            arch = str(space.from_spec(rec["matrix"], rec["ops"]))
        except SupernasError as exc:
            raise SupernasError(f"record {index}: {exc}") from None
        rows.setdefault(arch, {"arch": arch, "module_hash": rec["module_hash"]})
        rows[arch]["params"] = rec["params"]
        runs[arch, rec["epochs"]].append(rec)
        n_records += 1
    if not rows:
        raise SupernasError(f"{path}: no records")
    budgets = sorted({e for _, e in runs})
    keys = ("val_accuracy", "test_accuracy", "train_seconds")
    for (arch, e), recs in runs.items():
        for k in keys:
            rows[arch][f"{k}_{e}"] = sum(r[k] for r in recs) / len(recs)
        rows[arch]["n_repeats"] = max(rows[arch].get("n_repeats", 0), len(recs))
    fields = ["arch", "module_hash", "params", "n_repeats"]
    fields += [f"{k}_{e}" for e in budgets for k in keys]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows.values())
    tmp.replace(out)
    return {"records": n_records, "archs": len(rows), "budgets": len(budgets)}
