"""Writing a `Table` to CSV, TSV, JSON lines or Parquet so that `read_table` gives back exactly the same table.

Exactness rules: floats are written with `repr` (shortest text that parses back to the same double), NaN as an empty
cell / JSON null / Parquet null, ints and timestamps as integers, attributes as text columns after the schema's
fields, all text as UTF-8. Files are written to a temporary name beside the target and renamed over it, so a
crash or a full disk never leaves a half-written file where a good one was.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import uuid
from pathlib import Path
from typing import Any, Callable, List

import numpy as np

from tfrec.data.parsing import EPOCH_MILLISECONDS_FROM
from tfrec.data.readers import PARQUET_INSTALL_HINT, detect_format
from tfrec.data.schema import Table


def write_table(table: Table, path) -> Path:
    """Writes `table` to `path`; the format follows the extension (.csv, .tsv, .jsonl, .ndjson, .parquet, .gz)."""
    path = Path(path)
    fmt, compressed = detect_format(path)
    _check_timestamps_read_back(table, path.name)
    if fmt == "parquet":
        _write_atomically(path, lambda raw: _write_parquet(table, raw))
    else:
        encode = _write_jsonl if fmt == "jsonl" else _csv_encoder("\t" if fmt == "tsv" else ",")
        _write_atomically(path, lambda raw: _write_text(raw, table, encode, path.name, compressed))
    return path


def _check_timestamps_read_back(table: Table, file: str) -> None:
    """Readers take epoch numbers of 1e11 or more as milliseconds, so larger second counts would not read back."""
    for field in table.schema.fields:
        if field.dtype == "timestamp" and len(table):
            column = table[field.name]
            too_far = np.flatnonzero((column >= EPOCH_MILLISECONDS_FROM) | (column <= -EPOCH_MILLISECONDS_FROM))
            if len(too_far):
                i = int(too_far[0])
                raise ValueError(
                    f"cannot write {file}: {table.schema.name} row {i + 1} has {field.name} {int(column[i])}, "
                    f"beyond +-{EPOCH_MILLISECONDS_FROM} seconds (the year 5138), which readers would take as "
                    "milliseconds; is it a millisecond value stored as seconds?"
                )


def _write_atomically(path: Path, write: Callable[[Any], None]) -> None:
    """Runs `write` on a fresh temporary file in the target's folder, then renames it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(temporary, "xb") as raw:  # "x": never clobber; mode follows the umask like a normal file
            write(raw)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _write_text(raw, table: Table, encode: Callable[[Table, Any], None], name: str, compressed: bool) -> None:
    binary = gzip.GzipFile(filename=name, mode="wb", fileobj=raw, mtime=0) if compressed else raw
    handle = io.TextIOWrapper(binary, encoding="utf-8", newline="")
    try:
        encode(table, handle)
        handle.flush()
    finally:
        handle.detach()
    if compressed:
        binary.close()  # writes the gzip trailer; the underlying file stays open


def _text_cells(table: Table, name: str) -> List[str]:
    """One column as CSV cells: NaN -> empty, floats via repr, ints as digits, text verbatim."""
    values = table[name].tolist()
    column = table.columns.get(name)
    if column is not None and column.dtype == np.float64:
        return ["" if v != v else repr(v) for v in values]
    if column is not None and column.dtype == np.int64:
        return [str(v) for v in values]
    return ["" if v is None else str(v) for v in values]


def _csv_encoder(delimiter: str) -> Callable[[Table, Any], None]:
    def encode(table: Table, handle) -> None:
        # CRLF (RFC 4180) rather than "\n": the csv module quotes a cell only for the line terminator's own
        # characters, so with "\n" a cell holding a lone "\r" would be written unquoted and split on reading.
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(table.column_names)
        cells = [_text_cells(table, name) for name in table.column_names]
        writer.writerows(zip(*cells))

    return encode


def _write_jsonl(table: Table, handle) -> None:
    names = table.column_names
    columns = []
    for name in names:
        values = table[name].tolist()
        column = table.columns.get(name)
        if column is not None and column.dtype == np.float64:
            values = [None if v != v else v for v in values]
        columns.append(values)
    for values in zip(*columns):
        handle.write(json.dumps(dict(zip(names, values)), ensure_ascii=False, allow_nan=False))
        handle.write("\n")


def _write_parquet(table: Table, raw) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"cannot write Parquet: {PARQUET_INSTALL_HINT}") from None
    arrays, names = [], []
    for name in table.column_names:
        column = table[name]
        if column.dtype == np.float64:
            arrays.append(pa.array(column, type=pa.float64(), mask=np.isnan(column)))
        elif column.dtype == np.int64:
            arrays.append(pa.array(column, type=pa.int64()))
        else:
            arrays.append(pa.array([None if v is None else str(v) for v in column.tolist()], type=pa.string()))
        names.append(name)
    pq.write_table(pa.Table.from_arrays(arrays, names=names), raw)
