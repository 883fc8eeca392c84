"""Reading one table (catalog, users or events) from CSV, TSV, JSON lines or Parquet into a typed `Table`.

Each format is first turned into raw columns (text or JSON values, one list per column name); `tfrec.data.parsing`
then types them and checks the schema's rules, so every format gets the same parsing and the same error messages.

By default the first bad row raises a `DataError` naming file, row, line, field and value. With
`skip_bad_rows=True` bad rows are left out and each one is recorded in a `BadRowReport`. A missing required column,
an unreadable file or an unsupported format is a file-level `DataError` in both modes.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gc
import gzip
import itertools
import json
import operator
import os
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from tfrec.data.errors import BadRowReport, DataError
from tfrec.data.parsing import BadCell, attribute_text, check_row_rules, parse_column
from tfrec.data.schema import Table, TableSchema

# file suffix -> format; csv, tsv and jsonl may also be gzip-compressed (".csv.gz")
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
GZIP_FORMATS = ("csv", "tsv", "jsonl")
SUPPORTED_SUFFIXES = tuple(FORMATS) + tuple(s + ".gz" for s, f in FORMATS.items() if f in GZIP_FORMATS)
PARQUET_INSTALL_HINT = "reading or writing Parquet needs pyarrow: pip install 'tfrec[parquet]'"
_DELIMITERS = {"csv": ",", "tsv": "\t"}


class SkippedRowsWarning(UserWarning):
    """Bad rows were skipped and the caller passed no BadRowReport to record them."""


@dataclasses.dataclass
class SourceRows:
    """Where each row of a returned table came from: its 1-based data row and, for text formats, its line."""

    file: str
    rows: np.ndarray
    lines: Optional[np.ndarray]

    def error(self, index: int, reason: str, **kwargs) -> DataError:
        """A DataError located at the table row `index`."""
        line = None if self.lines is None else int(self.lines[index])
        return DataError(self.file, reason, row=int(self.rows[index]), line=line, **kwargs)


@dataclasses.dataclass
class _RawTable:
    """A file's cells before typing: column name -> cell list, physical lines, and structurally bad rows."""

    names: List[str]
    columns: Dict[str, List[Any]]
    n_rows: int
    lines: Optional[np.ndarray]
    row_errors: List[BadCell]


def detect_format(path) -> Tuple[str, bool]:
    """(format, gzip-compressed) from a file name such as `events.csv.gz`; DataError if unsupported."""
    name = Path(path).name.lower()
    compressed = name.endswith(".gz")
    stem = name[:-3] if compressed else name
    fmt = FORMATS.get(os.path.splitext(stem)[1])
    if fmt is None or (compressed and fmt not in GZIP_FORMATS):
        raise DataError(
            Path(path).name,
            "unsupported file format",
            detail=f"unsupported file type; use one of {', '.join(SUPPORTED_SUFFIXES)}",
        )
    return fmt, compressed


def read_table(path, schema: TableSchema, skip_bad_rows: bool = False, report: Optional[BadRowReport] = None) -> Table:
    """Reads and validates one table file; bad rows raise DataError, or with `skip_bad_rows` go to `report`."""
    table, _ = read_table_with_source(path, schema, skip_bad_rows=skip_bad_rows, report=report)
    return table


def read_table_with_source(
    path, schema: TableSchema, skip_bad_rows: bool = False, report: Optional[BadRowReport] = None
) -> Tuple[Table, SourceRows]:
    """`read_table` plus the source row/line of every kept row, for checks that span files (unknown items)."""
    path = Path(path)
    file = path.name
    fmt, compressed = detect_format(path)
    if not path.is_file():
        raise DataError(file, "file not found", detail=f"file not found: {path}")
    if fmt == "parquet":
        raw = _read_parquet(path, file)
    elif fmt == "jsonl":
        raw = _read_jsonl(path, file, compressed, schema)
    else:
        raw = _read_delimited(path, file, compressed, _DELIMITERS[fmt])
    return _build_table(raw, file, schema, skip_bad_rows, report)


def _build_table(raw: _RawTable, file: str, schema: TableSchema, skip: bool, report: Optional[BadRowReport]):
    missing = [name for name in schema.required if name not in raw.columns]
    if missing and (raw.n_rows or raw.names):  # an empty JSON-lines file is a valid empty table
        found = ", ".join(raw.names) if raw.names else "none"
        listed = ", ".join(repr(name) for name in missing)
        raise DataError(
            file,
            "missing required column",
            field=missing[0],
            detail=f"missing required column{'s' if len(missing) > 1 else ''} {listed} (columns in the file: {found})",
        )
    first_problem: Dict[int, BadCell] = {}  # row index -> its first problem, in check order
    for cell in raw.row_errors:
        first_problem.setdefault(cell.index, cell)
    columns: Dict[str, np.ndarray] = {}
    for field in schema.fields:
        if field.name in raw.columns:
            columns[field.name], bad = parse_column(field, raw.columns[field.name])
            for cell in bad:
                first_problem.setdefault(cell.index, cell)
        elif field.required:  # absent from a row-less file (otherwise rejected above)
            columns[field.name] = np.empty(0, dtype=field.numpy_dtype)
        else:  # an optional column the file leaves out: every row takes the default
            columns[field.name] = np.full(raw.n_rows, field.default, dtype=field.numpy_dtype)
    for cell in check_row_rules(schema, columns):
        first_problem.setdefault(cell.index, cell)
    if schema.key is not None:
        for cell in _duplicate_keys(columns[schema.key], schema.key, first_problem, raw.lines):
            first_problem.setdefault(cell.index, cell)

    lines = raw.lines
    source = SourceRows(file, np.arange(1, raw.n_rows + 1, dtype=np.int64), lines)
    errors = [_to_error(source, first_problem[i]) for i in sorted(first_problem)]
    if errors and not skip:
        raise errors[0]
    if report is not None:
        report.start_file(file, raw.n_rows)
        for error in errors:
            report.add(error)
    elif errors:  # skip mode without a report: still never drop rows silently
        warnings.warn(
            f"{file}: skipped {len(errors)} of {raw.n_rows} rows as bad (pass report=BadRowReport() to see them "
            f"all); first: {errors[0]}",
            SkippedRowsWarning,
            stacklevel=4,
        )

    attributes = {
        name: np.array(cells if set(map(type, cells)) <= {str} else [attribute_text(v) for v in cells], dtype=object)
        for name, cells in raw.columns.items()
        if name not in schema.field_names
    }
    table = Table(schema, columns, attributes)
    if not errors:
        return table, source
    keep = np.ones(raw.n_rows, dtype=bool)
    keep[sorted(first_problem)] = False
    kept_lines = None if lines is None else lines[keep]
    return table.take(keep), SourceRows(file, source.rows[keep], kept_lines)


def _duplicate_keys(keys: np.ndarray, key: str, already_bad: Dict[int, BadCell], lines) -> List[BadCell]:
    """Rows repeating an earlier good row's key; the first occurrence is kept and named in the message."""
    first_seen: Dict[str, int] = {}
    bad = []
    for i, value in enumerate(keys.tolist()):
        if i in already_bad:
            continue
        first = first_seen.setdefault(value, i)
        if first != i:
            where = f"row {first + 1}" + (f" (line {int(lines[first])})" if lines is not None else "")
            bad.append(BadCell(i, key, "duplicate key", f"duplicate {key} {value!r}, already used by {where}", value))
    return bad


def _to_error(source: SourceRows, cell: BadCell) -> DataError:
    return source.error(cell.index, cell.reason, field=cell.field, value=cell.value, detail=cell.detail)


def _open_text(path: Path, compressed: bool):
    """Text handle that strips a UTF-8 byte-order mark and leaves newlines to the csv module."""
    if compressed:
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, "r", encoding="utf-8-sig", newline="")


def _not_utf8(file: str, path: Path, compressed: bool) -> DataError:
    """The file-level error for undecodable bytes, pointing at the first line that is not UTF-8."""
    opener = gzip.open if compressed else open
    with opener(path, "rb") as handle:
        for line_number, raw_line in enumerate(handle, start=1):
            try:
                raw_line.decode("utf-8")
            except UnicodeDecodeError as exc:
                detail = f"the file is not valid UTF-8 (byte {raw_line[exc.start]:#04x}); save it as UTF-8"
                return DataError(file, "not UTF-8", line=line_number, detail=detail)
    return DataError(file, "not UTF-8", detail="the file is not valid UTF-8; save it as UTF-8")


def _read_delimited(path: Path, file: str, compressed: bool, delimiter: str) -> _RawTable:
    with _open_text(path, compressed) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        with _csv_errors(file, path, compressed, reader):
            header = next(reader, None)
            if header is None:
                raise DataError(file, "empty file", detail="the file is empty; expected a header row")
            header_end = reader.line_num
            with _gc_paused():
                records = list(reader)
        one_line_each = reader.line_num == header_end + len(records)
    if one_line_each:  # the common case: record k starts on line header_end + 1 + k
        lines = np.arange(header_end + 1, header_end + 1 + len(records), dtype=np.int64)
    else:  # a quoted cell spans lines: read again, noting the line each record starts on
        records, lines = _records_with_lines(path, file, compressed, delimiter)
    names = [name.strip() for name in header]
    _check_header(file, names)
    if not all(records):  # blank lines are not rows
        nonblank = [i for i, record in enumerate(records) if record]
        records, lines = [records[i] for i in nonblank], lines[nonblank]
    width = len(names)
    row_errors: List[BadCell] = []
    if set(map(len, records)) - {width}:
        for i, record in enumerate(records):
            if len(record) != width:
                detail = f"has {len(record)} cells but the header has {width}"
                row_errors.append(BadCell(i, None, "wrong number of cells", detail))
                records[i] = (record + [""] * width)[:width]
    columns = {name: list(map(operator.itemgetter(j), records)) for j, name in enumerate(names)}
    return _RawTable(names, columns, len(records), lines, row_errors)


def _records_with_lines(path: Path, file: str, compressed: bool, delimiter: str) -> Tuple[List[List[str]], np.ndarray]:
    records, lines = [], []
    with _open_text(path, compressed) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        with _csv_errors(file, path, compressed, reader), _gc_paused():
            next(reader)
            previous_end = reader.line_num
            for record in reader:
                records.append(record)
                lines.append(previous_end + 1)
                previous_end = reader.line_num
    return records, np.array(lines, dtype=np.int64)


@contextlib.contextmanager
def _gc_paused():
    """Pauses the cyclic garbage collector, which a million freshly read rows (lists or dicts without cycles)
    would otherwise trigger over and over, roughly doubling the read time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def _csv_errors(file: str, path: Path, compressed: bool, reader):
    """Turns decoding and CSV syntax errors into file-level DataErrors with their line."""
    try:
        yield
    except UnicodeDecodeError:
        raise _not_utf8(file, path, compressed) from None
    except csv.Error as exc:
        raise DataError(file, "malformed CSV", line=reader.line_num, detail=f"malformed CSV: {exc}") from None


def _check_header(file: str, names: List[str]) -> None:
    for position, name in enumerate(names, start=1):
        if not name:
            detail = f"header column {position} has no name (a pandas index saved with index=True?); name or drop it"
            raise DataError(file, "unnamed column", line=1, detail=detail)
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DataError(file, "duplicate column", line=1, detail=f"the header repeats column(s) {duplicated}")


def _read_jsonl(path: Path, file: str, compressed: bool, schema: TableSchema) -> _RawTable:
    records: List[Dict[str, Any]] = []
    lines: List[int] = []
    row_errors: List[BadCell] = []
    with _open_text(path, compressed) as handle, _gc_paused():
        try:
            for line_number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                index = len(records)
                lines.append(line_number)
                record, problem = _json_record(text, index, schema)
                records.append(record)
                if problem is not None:
                    row_errors.append(problem)
        except UnicodeDecodeError:
            raise _not_utf8(file, path, compressed) from None
    names = list(dict.fromkeys(itertools.chain.from_iterable(records)))
    columns = {name: [record.get(name) for record in records] for name in names}
    return _RawTable(names, columns, len(records), np.array(lines, dtype=np.int64), row_errors)


def _json_record(text: str, index: int, schema: TableSchema) -> Tuple[Dict[str, Any], Optional[BadCell]]:
    """One JSON line as a flat dict (a nested "attributes" object is merged in), or ({}, the problem)."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, BadCell(index, None, "invalid JSON", f"invalid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(record, dict):
        return {}, BadCell(index, None, "not a JSON object", "expected a JSON object on each line")
    nested = record.get("attributes")
    if isinstance(nested, dict):
        del record["attributes"]
        for name, value in nested.items():
            if name in record or name in schema.field_names:
                detail = f"attribute {name!r} inside \"attributes\" clashes with a top-level field of that name"
                return record, BadCell(index, "attributes", "attribute name clash", detail, name)
            record[name] = value
    return record, None


def _read_parquet(path: Path, file: str) -> _RawTable:
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"cannot read {file}: {PARQUET_INSTALL_HINT}") from None
    try:
        arrow_table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(file, "unreadable Parquet", detail=f"not a readable Parquet file ({exc})") from None
    columns: Dict[str, List[Any]] = {}
    for name, column in zip(arrow_table.column_names, arrow_table.columns):
        if pa.types.is_struct(column.type):  # a nested attributes struct: one column per child
            for child in column.type:
                if child.name in columns or child.name in arrow_table.column_names:
                    raise DataError(file, "duplicate column", detail=f"struct field {child.name!r} repeats a column")
                columns[child.name] = _arrow_values(pa, pc.struct_field(column, child.name))
        else:
            if name in columns:
                raise DataError(file, "duplicate column", detail=f"the file repeats column {name!r}")
            columns[name] = _arrow_values(pa, column)
    return _RawTable(list(columns), columns, arrow_table.num_rows, None, [])


def _arrow_values(pa, column) -> List[Any]:
    """Python values of an Arrow column; timestamps become epoch seconds (a zone-less timestamp counts as UTC)."""
    if pa.types.is_timestamp(column.type):
        per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[column.type.unit]
        raw = column.cast(pa.int64()).to_pylist()
        return [None if v is None else v // per_second for v in raw]
    return column.to_pylist()
