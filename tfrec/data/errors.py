"""Errors and bad-row accounting for the data layer.

Every problem with input data raises (or, in skip mode, records) a `DataError` that names the file, the data row,
the physical line, the field and the offending value, so a shop's data engineer can open the file and fix it.
`BadRowReport` is the ledger of what skip mode dropped: nothing is dropped without being counted there.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Dict, List, Optional, Tuple

MAX_EXAMPLES = 20


class DataError(ValueError):
    """A problem in input data: one bad row (`row` set) or the whole file (`row` None, e.g. a missing column).

    `reason` is value-free (e.g. "not a timestamp") so skipped rows can be counted by kind; `detail` is the
    human sentence for this occurrence and usually quotes `value`.
    """

    def __init__(
        self,
        file: str,
        reason: str,
        *,
        row: Optional[int] = None,
        line: Optional[int] = None,
        field: Optional[str] = None,
        value=None,
        detail: Optional[str] = None,
    ):
        self.file = file
        self.reason = reason
        self.row = row
        self.line = line
        self.field = field
        self.value = value
        self.detail = detail or (reason if value is None else f"{reason}: {value!r}")
        super().__init__(self._message())

    def _message(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
            if self.line is not None:
                where += f" (line {self.line})"
        elif self.line is not None:
            where += f" line {self.line}"
        if self.field is not None:
            where += f", field {self.field!r}"
        return f"{where}: {self.detail}"

    def __reduce__(self):  # keyword-only arguments need this to survive pickling (multiprocessing, joblib)
        return _rebuild_data_error, (self.file, self.reason, self.row, self.line, self.field, self.value, self.detail)


def _rebuild_data_error(file, reason, row, line, field, value, detail) -> DataError:
    return DataError(file, reason, row=row, line=line, field=field, value=value, detail=detail)


@dataclasses.dataclass
class FileCounts:
    """Rows of one file: read from disk, kept in the returned table, and skipped as bad."""

    read: int = 0
    kept: int = 0
    skipped: int = 0
    skipped_by_reason: collections.Counter = dataclasses.field(default_factory=collections.Counter)


class BadRowReport:
    """What skip mode dropped, per file and per (field, reason), with the first few errors as examples."""

    def __init__(self, max_examples: int = MAX_EXAMPLES):
        self.max_examples = max_examples
        self.files: Dict[str, FileCounts] = {}
        self.examples: List[DataError] = []

    def start_file(self, file: str, rows_read: int) -> None:
        """Registers `rows_read` rows of `file` as read and (until `add` says otherwise) kept."""
        counts = self.files.setdefault(file, FileCounts())
        counts.read += rows_read
        counts.kept += rows_read

    def add(self, error: DataError) -> None:
        """Records one skipped row of an already started file."""
        if error.row is None:
            raise ValueError(f"only row errors can be skipped; file-level error: {error}")
        counts = self.files.setdefault(error.file, FileCounts())
        counts.kept -= 1
        counts.skipped += 1
        counts.skipped_by_reason[(error.field, error.reason)] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(error)

    def merge(self, other: "BadRowReport") -> "BadRowReport":
        """Adds `other`'s counts and examples into this report (returns self, for chaining)."""
        for file, theirs in other.files.items():
            mine = self.files.setdefault(file, FileCounts())
            mine.read += theirs.read
            mine.kept += theirs.kept
            mine.skipped += theirs.skipped
            mine.skipped_by_reason.update(theirs.skipped_by_reason)
        room = self.max_examples - len(self.examples)
        self.examples.extend(other.examples[: max(room, 0)])
        return self

    @property
    def total_skipped(self) -> int:
        return sum(c.skipped for c in self.files.values())

    @property
    def total_read(self) -> int:
        return sum(c.read for c in self.files.values())

    def skipped_by_reason(self) -> Dict[Tuple[str, Optional[str], str], int]:
        """Skipped rows keyed by (file, field, reason), most frequent first."""
        flat = collections.Counter()
        for file, counts in self.files.items():
            for (field, reason), n in counts.skipped_by_reason.items():
                flat[(file, field, reason)] += n
        return dict(flat.most_common())

    def summary(self) -> str:
        """Multi-line text for logs and the `tfrec data validate` command."""
        if not self.files:
            return "no files read"
        lines = []
        for file, c in self.files.items():
            lines.append(f"{file}: {c.read} rows read, {c.kept} kept, {c.skipped} skipped")
            for (field, reason), n in c.skipped_by_reason.most_common():
                lines.append(f"  {n} x {'row' if field is None else 'field ' + repr(field)}: {reason}")
        if self.examples:
            shown = len(self.examples)
            partial = shown < self.total_skipped
            lines.append(f"first {shown} of {self.total_skipped} bad rows:" if partial else "bad rows:")
            lines.extend(f"  {e}" for e in self.examples)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"BadRowReport(files={len(self.files)}, read={self.total_read}, skipped={self.total_skipped})"
