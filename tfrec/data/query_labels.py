"""Labelled search queries for query understanding: intent (category leaf) and slots as character spans.

A shop supplies its own labelled queries as a CSV / TSV / JSON-lines / Parquet file in `LABELLED_QUERIES_SCHEMA`
(one query per row; '' or NaN where a slot is absent), or uses the synthetic searches of a generated dataset
(`labelled_queries_from_ground_truth`). Slot labels are values ("Nike", "red", 80.0); `slot_spans` finds where each
value is written in the query, which is what a token tagger trains on:

* brand, colour, size, material: case-insensitive whole-word match of the value ("Nike" in "nike red shoes").
* gender: when the value is men / women / kids, any usual form ("men's", "mens", "ladies", "boys'", "for kids"
  tags the gender word); other values match literally.
* price_min / price_max: the number (with a currency sign when attached) in a price phrase: "under $80" and
  "less than 50" tag price_max, "over 20" / "from 20" price_min, "between 20 and 30", "20-30" and "$20 to $30"
  both. A number with the labelled value outside any price phrase is the fallback.

Spans never overlap: prices are placed first, then the text slots, longest value first. A labelled value that
is not in the text is an error for user data (`read_labelled_queries` names the file, row and field) and a
counted skip for synthetic data (`query_training_arrays(..., strict=False)` drops the row and reports it).
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from tfrec.data.errors import BadRowReport, DataError
from tfrec.data.readers import SkippedRowsWarning, read_table, read_table_with_source
from tfrec.data.schema import Field, Table, TableSchema
from tfrec.data.synthetic import vocabulary as V
from tfrec.text.slots import GENDER_FORMS, PRICE_SLOTS, SLOT_NAMES, TEXT_SLOTS, Span, normalize_gender, parse_price

__all__ = [
    "LABELLED_QUERIES_SCHEMA", "QueryTrainingArrays", "SLOT_NAMES", "SlotNotFoundError", "SpanReport",
    "find_slot_spans", "labelled_queries_from_ground_truth", "query_training_arrays", "read_labelled_queries",
    "slot_spans",
]

NAN = float("nan")
LABELLED_QUERIES_SCHEMA = TableSchema(
    "labelled_queries",
    (
        Field("query", "string", required=True, doc="the search text as typed"),
        Field("category", "string", default="", doc="intent: category (leaf) path; '' when unlabelled"),
        Field("brand", "string", default="", doc="brand named in the query; '' when absent"),
        Field("color", "string", default=""),
        Field("size", "string", default=""),
        Field("gender", "string", default="", doc="men / women / kids (or another word written in the query)"),
        Field("material", "string", default=""),
        Field("price_min", "float", default=NAN, doc="lower price limit; NaN when absent"),
        Field("price_max", "float", default=NAN, doc="upper price limit; NaN when absent"),
    ),
)

# --- matching ---

_AMOUNT = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_NUM = r"(?<![\w.,$€£])[$€£]?" + _AMOUNT + r"k?[$€£]?(?!\w|[.,]\d)"
_MAX_WORDS = r"(?:\b(?:under|below|less\s+than|cheaper\s+than|no\s+more\s+than|not\s+more\s+than|up\s+to|" \
             r"max(?:imum)?|at\s+most|within)|<=?)"
_MIN_WORDS = r"(?:\b(?:over|above|more\s+than|at\s+least|min(?:imum)?|from|starting\s+at)|>=?)"
_PHRASES = re.compile(
    rf"\b(?:between|from)\s+(?P<lo>{_NUM})\s*(?:and|to|-|–)\s*(?P<hi>{_NUM})"
    rf"|(?P<lo2>{_NUM})\s*(?:-|–|\bto\b)\s*(?P<hi2>{_NUM})"
    rf"|{_MAX_WORDS}\s*(?P<max>{_NUM})"
    rf"|(?P<max2>{_NUM})\s*(?:and|or)\s+(?:under|less|below|lower|cheaper)\b"
    rf"|{_MIN_WORDS}\s*(?P<min>{_NUM})"
    rf"|(?P<min2>{_NUM})\s*(?:\+|(?:and|or)\s+(?:up|over|more|above|higher)\b)",
    re.IGNORECASE,
)
_GROUP_SLOT = {"lo": "price_min", "lo2": "price_min", "min": "price_min", "min2": "price_min",
               "hi": "price_max", "hi2": "price_max", "max": "price_max", "max2": "price_max"}
_NUMBER = re.compile(_NUM, re.IGNORECASE)


def _gender_forms() -> Dict[str, Tuple[str, ...]]:
    """The common forms plus every form the synthetic generator writes (its "for men" tags the word "men")."""
    forms = {g: list(f) for g, f in GENDER_FORMS.items()}
    for table in (V.GENDER_BEFORE_NOUN, V.GENDER_AFTER_NOUN):
        for gender, phrases in table.items():
            forms.setdefault(gender, []).extend(p.split()[-1] for p in phrases)
    return {g: tuple(sorted(set(f), key=lambda w: (-len(w), w))) for g, f in forms.items()}


_GENDER_PATTERNS = {
    g: re.compile(r"(?<![\w'’])(?:" + "|".join(re.escape(w).replace("'", "['’]") for w in f) + r")(?![\w'’])",
                  re.IGNORECASE)
    for g, f in _gender_forms().items()
}


def _value_pattern(value: str) -> "re.Pattern":
    words = [re.escape(w) for w in value.split()]
    body = r"\s+".join(words)
    return re.compile(r"(?<!\w)(?<!\d[.,])" + body + r"(?!\w)(?![.,]\d)", re.IGNORECASE)


def _present(value) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    return not math.isnan(float(value))


def _overlaps(start: int, end: int, taken: List[Span]) -> bool:
    return any(start < e and end > s for s, e, _ in taken)


def _same_amount(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def find_slot_spans(query: str, values: Mapping[str, Any]) -> Tuple[List[Span], List[str]]:
    """(spans sorted by start, names of labelled slots not found in the text) for one query.

    `values` maps slot names (see SLOT_NAMES) to labelled values; '' / None / NaN mean absent and other keys
    (query, category, ...) are ignored.
    """
    taken: List[Span] = []
    missing: List[str] = []
    phrases = []  # (start, end, slot, amount) of numbers inside recognised price phrases
    for m in _PHRASES.finditer(query):
        for group, text in m.groupdict().items():
            if text is not None:
                phrases.append((m.start(group), m.end(group), _GROUP_SLOT[group], parse_price(text)))
    in_phrase = {(s, e) for s, e, _, _ in phrases}
    for slot in PRICE_SLOTS:
        value = values.get(slot)
        if not _present(value):
            continue
        value = float(value)
        candidates = [(s, e) for s, e, kind, amount in phrases if kind == slot and _same_amount(amount, value)]
        candidates += [m.span() for m in _NUMBER.finditer(query)
                       if m.span() not in in_phrase and _same_amount(parse_price(m.group()), value)]
        _take(candidates, slot, taken, missing)
    text_slots = [s for s in TEXT_SLOTS if _present(values.get(s))]
    text_slots.sort(key=lambda s: -len(str(values[s]).strip()))  # stable: SLOT_NAMES order among equal lengths
    for slot in text_slots:
        value = str(values[slot]).strip()
        gender = normalize_gender(value) if slot == "gender" else None
        pattern = _GENDER_PATTERNS[gender] if gender else _value_pattern(value)
        _take([m.span() for m in pattern.finditer(query)], slot, taken, missing)
    return sorted(taken), missing


def _take(candidates, slot: str, taken: List[Span], missing: List[str]) -> None:
    for start, end in candidates:
        if not _overlaps(start, end, taken):
            taken.append((start, end, slot))
            return
    missing.append(slot)


class SlotNotFoundError(ValueError):
    """A labelled slot value does not occur in the query text."""

    def __init__(self, query: str, slot: str, value, row: Optional[int] = None):
        self.query, self.slot, self.value, self.row = query, slot, value, row
        where = "" if row is None else f"row {row}: "
        super().__init__(f"{where}{slot} {value!r} not found in the query {query!r}")


def slot_spans(query: str, values: Mapping[str, Any], *, strict: bool = True, row: Optional[int] = None) -> List[Span]:
    """Non-overlapping (start, end, slot) character spans of the labelled slot values in `query`, by start.

    strict: the first labelled value the text does not contain raises SlotNotFoundError (naming `row` when
    given); otherwise such values are left out (see `find_slot_spans` to learn which).
    """
    spans, missing = find_slot_spans(query, values)
    if missing and strict:
        raise SlotNotFoundError(query, missing[0], values[missing[0]], row)
    return spans


# --- tables and training arrays ---

@dataclasses.dataclass
class SpanReport:
    """What span finding did over a table: labelled slot values, how many were found, what was skipped."""

    n_queries: int = 0
    n_slots: int = 0
    n_found: int = 0
    missing_by_slot: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    skipped_rows: List[int] = dataclasses.field(default_factory=list)  # 0-based rows left out of the arrays
    examples: List[str] = dataclasses.field(default_factory=list)  # the first few misses, as sentences

    @property
    def coverage(self) -> float:
        """Share of labelled slot values found in their query (1.0 when no slot is labelled)."""
        return self.n_found / self.n_slots if self.n_slots else 1.0

    def summary(self) -> str:
        by_slot = ", ".join(f"{k} {v}" for k, v in self.missing_by_slot.most_common()) or "none"
        return (f"{self.n_queries} queries, {self.n_found} of {self.n_slots} slot values found "
                f"({self.coverage:.2%}); missing: {by_slot}; {len(self.skipped_rows)} rows skipped")


@dataclasses.dataclass
class QueryTrainingArrays:
    """What a query-understanding trainer needs, aligned by row: texts, intents and slot spans."""

    queries: np.ndarray  # object array of str
    intents: np.ndarray  # object array of category paths ('' = no intent label)
    spans: List[List[Span]]
    report: SpanReport

    def __len__(self) -> int:
        return len(self.queries)


def _missing_error(file: str, row: int, line: Optional[int], query: str, slot: str, value) -> DataError:
    return DataError(file, "slot value not in query", row=row, line=line, field=slot, value=value,
                     detail=f"{slot} {value!r} does not occur in the query {query!r}")


def query_training_arrays(table: Table, strict: bool = True, file: Optional[str] = None) -> QueryTrainingArrays:
    """Queries, intents and spans of a table in LABELLED_QUERIES_SCHEMA.

    strict (user data): a labelled value missing from its query raises a DataError naming `file` (default: the
    schema name), the 1-based row and the field. Not strict (synthetic data): the row is left out and counted in
    the returned `report`.
    """
    if table.schema != LABELLED_QUERIES_SCHEMA:
        raise ValueError(f"expected a {LABELLED_QUERIES_SCHEMA.name} table, got {table.schema.name}")
    file = file or LABELLED_QUERIES_SCHEMA.name
    report = SpanReport(n_queries=len(table))
    keep, spans = [], []
    columns = {name: table[name].tolist() for name in ("query",) + SLOT_NAMES}
    for i, query in enumerate(columns["query"]):
        values = {slot: columns[slot][i] for slot in SLOT_NAMES}
        found, missing = find_slot_spans(query, values)
        labelled = sum(_present(v) for v in values.values())
        report.n_slots += labelled
        report.n_found += labelled - len(missing)
        if missing:
            if strict:
                raise _missing_error(file, i + 1, None, query, missing[0], values[missing[0]])
            report.missing_by_slot.update(missing)
            report.skipped_rows.append(i)
            if len(report.examples) < 20:
                report.examples.append(str(_missing_error(file, i + 1, None, query, missing[0], values[missing[0]])))
            continue
        keep.append(i)
        spans.append(found)
    keep = np.asarray(keep, dtype=np.int64)
    return QueryTrainingArrays(table["query"][keep], table["category"][keep], spans, report)


def read_labelled_queries(path, skip_bad_rows: bool = False, report: Optional[BadRowReport] = None) -> Table:
    """Reads a labelled-queries file (any format `read_table` knows) and checks every row's labels.

    Beyond the schema's typing, a negative price limit, price_min above price_max, or a slot value that does not
    occur in the query text is a bad row: a DataError naming file, row, line and field, or with `skip_bad_rows`
    a row left out and recorded in `report`.
    """
    table, source = read_table_with_source(path, LABELLED_QUERIES_SCHEMA, skip_bad_rows=skip_bad_rows,
                                           report=report)
    errors = {}
    lo, hi = table["price_min"], table["price_max"]
    for i, query in enumerate(table["query"].tolist()):
        values = {slot: table[slot][i] for slot in SLOT_NAMES}
        for slot in PRICE_SLOTS:
            if values[slot] < 0:  # NaN compares False
                errors[i] = source.error(i, "negative price", field=slot, value=float(values[slot]),
                                         detail=f"negative {slot} {float(values[slot])!r}")
        if i not in errors and lo[i] > hi[i]:
            errors[i] = source.error(i, "price_min above price_max", field="price_min", value=float(lo[i]),
                                     detail=f"price_min {float(lo[i])!r} is above price_max {float(hi[i])!r}")
        if i not in errors:
            _, missing = find_slot_spans(query, values)
            if missing:
                slot, value = missing[0], values[missing[0]]
                errors[i] = source.error(i, "slot value not in query", field=slot, value=value,
                                         detail=f"{slot} {value!r} does not occur in the query {query!r}")
    if not errors:
        return table
    ordered = [errors[i] for i in sorted(errors)]
    if not skip_bad_rows:
        raise ordered[0]
    if report is not None:
        for error in ordered:
            report.add(error)
    else:
        warnings.warn(f"{source.file}: skipped {len(ordered)} rows with bad labels (pass report=BadRowReport() to "
                      f"see them all); first: {ordered[0]}", SkippedRowsWarning, stacklevel=2)
    keep = np.ones(len(table), dtype=bool)
    keep[sorted(errors)] = False
    return table.take(keep)


def labelled_queries_from_ground_truth(source: Union[str, os.PathLike, Any], with_request_ids: bool = False):
    """The synthetic searches (is_search == 1) of a generated dataset as a LABELLED_QUERIES_SCHEMA table.

    `source` is a `GroundTruth` or the directory `tfrec data generate` wrote (its requests.csv is read, so the
    large ground-truth arrays are not loaded). Synthetic queries carry no size or material slots; the request id
    is kept as the `request_id` attribute (and with `with_request_ids` also returned: `(table, request_ids)`).
    """
    from tfrec.data.synthetic.ground_truth import REQUESTS_FILE, REQUESTS_SCHEMA, GroundTruth

    if isinstance(source, GroundTruth):
        requests = source.requests
    else:
        path = Path(source)
        if not (path / REQUESTS_FILE).is_file():
            raise DataError(str(path), "not a generated dataset",
                            detail=f"no {REQUESTS_FILE} in {path} (write one with `tfrec data generate`)")
        requests = read_table(path / REQUESTS_FILE, REQUESTS_SCHEMA)
    searches = requests.take(requests["is_search"] == 1)
    columns: Dict[str, Any] = {name: searches[name] for name in ("query", "category", "brand", "color", "gender",
                                                                   "price_min", "price_max")}
    table = Table(LABELLED_QUERIES_SCHEMA, columns, {"request_id": searches["request_id"]})
    return (table, table["request_id"]) if with_request_ids else table
