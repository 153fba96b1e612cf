"""The ``.vmig.jsonl`` format: record rules, streaming reader and writer, sidecar, validate, inspect."""

from __future__ import annotations

from .batch import Batch, Reject
from .findings import CODES, Finding
from .inspect import InspectReport, inspect_file
from .model import FIELDS, VEX_VERSION, Record, VmigRecord, record_schema
from .reader import read_batches
from .sidecar import meta_path, read_meta
from .validate import ValidationReport, validate_file
from .writer import VmigWriter

__all__ = [
    "Batch",
    "CODES",
    "FIELDS",
    "Finding",
    "InspectReport",
    "Record",
    "Reject",
    "VEX_VERSION",
    "ValidationReport",
    "VmigRecord",
    "VmigWriter",
    "inspect_file",
    "meta_path",
    "read_batches",
    "read_meta",
    "record_schema",
    "validate_file",
]
