"""Everything about rows before they are tensors: the canonical schema, readers and writers, public-format loaders,
the synthetic shop, labelled examples, splits, negative sampling and TFRecord I/O."""

from tfrec.data.dataset_io import load_dataset, validate_dataset, write_dataset
from tfrec.data.errors import BadRowReport, DataError
from tfrec.data.readers import read_table
from tfrec.data.schema import CATALOG_SCHEMA, EVENTS_SCHEMA, USERS_SCHEMA, Dataset, EventType, Table
from tfrec.data.writers import write_table

__all__ = [
    "BadRowReport",
    "CATALOG_SCHEMA",
    "DataError",
    "Dataset",
    "EVENTS_SCHEMA",
    "EventType",
    "Table",
    "USERS_SCHEMA",
    "load_dataset",
    "read_table",
    "validate_dataset",
    "write_dataset",
    "write_table",
]
