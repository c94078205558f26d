"""Turn a batch of source rows into the Arrow columns of a reporting table.

Values arrive in the wire form of their type (``spec/types.py``); here whole columns are
converted at once (numpy/Arrow), zero dates become NULL, derived columns are
computed, and every value that had to be changed is counted with example row ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from partyhelp_pipeline.errors import BadDataError
from partyhelp_pipeline.spec import LOOKUP_KEY, TYPES, Column, TableSpec

EXAMPLES_PER_COUNTER = 5
INT64_MAX = 2**63 - 1
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
# A batch holds about this many bytes of encoded Avro: its rows as Python objects take ~6x
# that, its encoding ~5x, so memory stays flat whatever the row width or the table size
# (larger batches save little CPU: the per-batch work is a few hundred numpy/Arrow calls).
BATCH_TARGET_BYTES = 512 * 1024
FIRST_BATCH_ROWS = 1_000  # until the row width is known


@dataclass
class QualityCounts:
    """Values the export had to change or flag, with a few example row ids each."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[int]] = field(default_factory=dict)

    def add(self, counter: str, row_ids: Sequence[int] | np.ndarray) -> None:
        """Count ``row_ids`` under ``counter`` and keep the first few as examples."""
        if not len(row_ids):
            return
        self.counts[counter] = self.counts.get(counter, 0) + len(row_ids)
        kept = self.examples.setdefault(counter, [])
        kept.extend(int(i) for i in row_ids[: EXAMPLES_PER_COUNTER - len(kept)])

    def merge(self, other: QualityCounts) -> None:
        """Add ``other``'s counts and examples to these."""
        for counter, count in other.counts.items():
            self.counts[counter] = self.counts.get(counter, 0) + count
            kept = self.examples.setdefault(counter, [])
            kept.extend(other.examples.get(counter, [])[: EXAMPLES_PER_COUNTER - len(kept)])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for the manifest and the audit table."""
        return {
            "counts": dict(sorted(self.counts.items())),
            "examples": dict(sorted(self.examples.items())),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityCounts:
        """Inverse of ``to_dict``."""
        return cls(
            dict(data.get("counts", {})), {k: list(v) for k, v in data.get("examples", {}).items()}
        )


@dataclass(frozen=True)
class BatchContext:
    """What every batch of one export shares."""

    spec: TableSpec
    columns: tuple[Column, ...]
    sync_date: dt.date
    pii_salt: bytes | None = None


@dataclass
class ConvertedBatch:
    """A batch as Arrow arrays in output column order, plus its money sums in cents."""

    arrays: list[pa.Array]
    num_rows: int
    money_cents: dict[str, int]


class BatchSizer:
    """Rows to fetch next: ``BATCH_TARGET_BYTES`` of encoded Avro at the width seen so far,
    at most ``max_rows`` (``PARTYHELP_BATCH_ROWS``). Read by the reader thread, updated by
    the encoding one."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.rows = min(max_rows, FIRST_BATCH_ROWS)

    def __call__(self) -> int:
        return self.rows

    def observe(self, rows: int, encoded_bytes: int) -> None:
        """Re-size from a batch just encoded."""
        if rows:
            width = max(1, encoded_bytes // rows)
            self.rows = max(1, min(self.max_rows, BATCH_TARGET_BYTES // width))


def _ids_where(row_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return row_ids[np.flatnonzero(mask)]


def _int_array(
    values: Sequence[Any], spec: TableSpec, column: str, row_ids: Sequence[Any]
) -> pa.Array:
    try:
        return pa.array(values, type=pa.int64())
    except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError):
        for value, row_id in zip(values, row_ids, strict=True):
            if value is not None and not (
                isinstance(value, int) and -INT64_MAX - 1 <= value <= INT64_MAX
            ):
                raise BadDataError(
                    f"{spec.name}: column {column} of row id {row_id} holds {value!r}, "
                    "which does not fit a signed 64-bit integer",
                    table=spec.name,
                    column=column,
                    row_id=row_id,
                ) from None
        raise


def _numpy_with_mask(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Values (nulls as 0) and a validity mask of an int64 array."""
    valid = np.asarray(array.is_valid())
    values = np.asarray(array.fill_null(0))
    return values, valid


def civil_to_days(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm)."""
    y = year - (month <= 2)
    era = np.floor_divide(y, 400)
    year_of_era = y - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days: np.ndarray = era * 146097 + day_of_era - 719468
    return days


_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def yyyymmdd_to_days(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Convert ``YYYYMMDD`` integers to epoch days; returns (days, is_real_date)."""
    year, month, day = values // 10000, (values // 100) % 100, values % 100
    month_ok = (month >= 1) & (month <= 12)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    days_in_month = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + (leap & (month == 2))
    real = valid & (year >= 1) & (year <= 9999) & month_ok & (day >= 1) & (day <= days_in_month)
    days = civil_to_days(
        np.where(real, year, 1970), np.where(real, month, 1), np.where(real, day, 1)
    )
    return days, real


def title_from_key(key: str) -> str:
    """The app's label for an occasion key: ``21st_birthday`` -> ``21st Birthday``."""
    words = re.split(r"[_\s-]+", key.strip())
    return " ".join(w[:1].upper() + w[1:].lower() for w in words if w)


def _suburbs_in(value: Any) -> tuple[list[str], bool]:
    """Suburb names in a parsed JSON value, and whether its shape was irregular."""
    if value is None:
        return [], False
    if isinstance(value, str):
        return [value], False
    if isinstance(value, dict):
        suburb = value.get("suburb")
        return ([suburb], False) if isinstance(suburb, str) else ([], True)
    if isinstance(value, list):
        found: list[str] = []
        irregular = False
        for item in value:
            names, odd = _suburbs_in(item)
            found.extend(names)
            irregular = irregular or odd or isinstance(item, list)
        return found, irregular
    return [], True


def location_display(preferences: str | None, selections: str | None) -> tuple[str | None, str]:
    """One location string from the two JSON columns, and what was wrong: '', 'unreadable'
    or 'irregular'."""
    names: list[str] = []
    problem = ""
    for raw in (preferences, selections):
        if raw is None:
            continue
        try:
            found, irregular = _suburbs_in(json.loads(raw))
            for name in found:  # a lone surrogate (\ud800) parses but has no UTF-8 form
                name.encode("utf-8")
        except (ValueError, TypeError, RecursionError):  # RecursionError: absurdly deep nesting
            problem = "unreadable"
            continue
        if irregular and not problem:
            problem = "irregular"
        names.extend(found)
    seen: dict[str, str] = {}
    for name in names:
        cleaned = " ".join(name.split())
        if cleaned and cleaned.casefold() not in seen:
            seen[cleaned.casefold()] = cleaned
    return (", ".join(seen.values()) or None), problem


def normalise_email(email: str) -> str | None:
    """Trimmed, lower-cased email, or None when empty."""
    cleaned = email.strip().lower()
    return cleaned or None


def normalise_au_phone(phone: str) -> str | None:
    """An Australian phone number in E.164 (``+61412345678``), or None if not one."""
    digits = re.sub(r"\D", "", phone)
    if phone.strip().startswith("+"):
        return f"+{digits}" if digits.startswith("61") and len(digits) == 11 else None
    if digits.startswith("0011"):  # international prefix dialled from Australia
        digits = digits[4:]
        return f"+{digits}" if digits.startswith("61") and len(digits) == 11 else None
    if len(digits) == 11 and digits.startswith("61"):
        return f"+{digits}"
    if len(digits) == 10 and digits.startswith("0"):
        return f"+61{digits[1:]}"
    if len(digits) == 9 and digits[0] in "23478":
        return f"+61{digits}"
    return None


def keyed_hash(value: str, salt: bytes) -> str:
    """Hex HMAC-SHA256 of ``value`` keyed with ``salt``."""
    return hmac.new(salt, value.encode("utf-8"), hashlib.sha256).hexdigest()


def _pii_column(
    values: Sequence[Any],
    normalise: Callable[[str], str | None],
    salt: bytes,
    row_ids: np.ndarray,
    counter: str,
    quality: QualityCounts,
) -> pa.Array:
    out: list[str | None] = []
    bad: list[int] = []
    for index, value in enumerate(values):
        normalised = normalise(value) if isinstance(value, str) else None
        if isinstance(value, str) and value.strip() and normalised is None:
            bad.append(index)
        out.append(keyed_hash(normalised, salt) if normalised else None)
    quality.add(counter, row_ids[bad])
    return pa.array(out, type=pa.string())


def wire_types(spec: TableSpec, names: Sequence[str]) -> list[pa.DataType]:
    """The Arrow type each query column arrives in: its wire type's (``spec/types.py``)."""
    wire = {LOOKUP_KEY: pa.int64(), **{q.name: TYPES[q.wire_type].arrow for q in spec.query_plan}}
    return [wire[name] for name in names]


def to_columns(
    context: BatchContext,
    names: Sequence[str],
    rows: Sequence[Sequence[Any]],
    key_name: str | None = None,
) -> dict[str, pa.Array]:
    """Source rows (wire form) as one Arrow array per query column.

    One Arrow conversion of the whole batch as a struct (no per-column Python lists); a
    value that does not fit its type falls back to the column-by-column path, which names
    the column and row (its ``key_name`` column, the primary key by default) or decodes
    bytes that a binary collation handed back.
    """
    spec = context.spec
    types = wire_types(spec, names)
    if rows:
        try:
            struct = pa.array(rows, type=pa.struct(list(zip(names, types, strict=True))))
            return dict(zip(names, struct.flatten(), strict=True))
        except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    raw = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    key_values = raw[list(names).index(key_name or spec.primary_key)]
    return {
        name: _column_array(spec, name, arrow_type, values, key_values)
        for name, arrow_type, values in zip(names, types, raw, strict=True)
    }


def _column_array(
    spec: TableSpec,
    name: str,
    arrow_type: pa.DataType,
    values: Sequence[Any],
    row_ids: Sequence[Any],
) -> pa.Array:
    if arrow_type == pa.string():
        try:
            return pa.array(values, type=pa.string())
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            # A driver may hand back bytes for a binary collation: decode strictly.
            return pa.array(
                [v.decode("utf-8") if isinstance(v, bytes) else v for v in values], type=pa.string()
            )
    if arrow_type == pa.float64():
        return pa.array(values, type=pa.float64())
    return _int_array(values, spec, name, row_ids)


def convert_batch(
    context: BatchContext,
    names: Sequence[str],
    rows: Sequence[Sequence[Any]],
    quality: QualityCounts,
) -> ConvertedBatch:
    """Convert source rows (wire form) into Arrow arrays of the output columns."""
    return convert_columns(context, to_columns(context, names, rows), quality)


def convert_columns(
    context: BatchContext, source_columns: dict[str, pa.Array], quality: QualityCounts
) -> ConvertedBatch:
    """Convert the query's columns (see ``to_columns``) into the output columns."""
    spec = context.spec
    row_ids = np.asarray(source_columns[spec.primary_key].fill_null(-1))
    num_rows = len(row_ids)
    arrays: dict[str, pa.Array] = {}
    money: dict[str, int] = {}
    for column in context.columns:
        arrays[column.name] = _convert_column(
            context, column, source_columns.__getitem__, row_ids, quality
        )
        if column.type == "NUMERIC":
            money[column.name] = int(pc.sum(arrays[column.name]).as_py() or 0)
    for check in spec.orphan_checks:
        key_set = np.asarray(arrays[check.key_column].is_valid())
        context_missing = np.asarray(arrays[check.context_column].is_null())
        quality.add(f"orphan_{check.parent}", _ids_where(row_ids, key_set & context_missing))
    for column in context.columns:
        array = arrays[column.name]
        if not column.nullable and array.null_count:
            index = int(np.flatnonzero(np.asarray(array.is_null()))[0])
            raise BadDataError(
                f"{spec.name}: column {column.name} is REQUIRED but row id {row_ids[index]} "
                "holds NULL",
                table=spec.name,
                column=column.name,
                row_id=int(row_ids[index]),
            )
    return ConvertedBatch([arrays[c.name] for c in context.columns], num_rows, money)


def _convert_column(
    context: BatchContext,
    column: Column,
    source: Callable[[str], pa.Array],
    row_ids: np.ndarray,
    quality: QualityCounts,
) -> pa.Array:
    if column.derive:
        return _derived_column(context, column, source, row_ids, quality)
    array = source(column.name)
    if column.type in ("STRING", "FLOAT64", "INT64", "NUMERIC"):
        return array
    numbers, valid = _numpy_with_mask(array)
    if column.type == "DATE":
        days, real = yyyymmdd_to_days(numbers, valid)
        quality.add(f"zero_date_nulled:{column.name}", _ids_where(row_ids, valid & ~real))
        return pa.array(days, mask=~real)
    # TIMESTAMP: UNIX_TIMESTAMP gives 0 for a zero date; a real TIMESTAMP is >= 1 s.
    zero = valid & (numbers <= 0)
    quality.add(f"zero_date_nulled:{column.name}", _ids_where(row_ids, zero))
    return pa.array(numbers, mask=~(valid & ~zero))


def _derived_column(
    context: BatchContext,
    column: Column,
    source: Callable[[str], pa.Array],
    row_ids: np.ndarray,
    quality: QualityCounts,
) -> pa.Array:
    """A column computed from others (``Column.derive``), counting what it had to change."""
    spec = context.spec
    if column.derive == "sync_date":
        epoch_day = context.sync_date.toordinal() - EPOCH_ORDINAL
        return pa.array(np.full(len(row_ids), epoch_day, dtype=np.int64))
    if column.derive == "occasion_label":
        keys, labels = source("occasion_type"), source("occasion_label")
        needs_derivation = pc.and_(labels.is_null(), keys.is_valid())
        if not pc.any(needs_derivation).as_py():
            return labels
        quality.add("occasion_label_derived", _ids_where(row_ids, np.asarray(needs_derivation)))
        unique = keys.dictionary_encode()
        derived_dictionary = pa.array(
            [title_from_key(k) for k in unique.dictionary.to_pylist()], type=pa.string()
        )
        derived = derived_dictionary.take(unique.indices)
        return pc.if_else(needs_derivation, derived, labels)
    if column.derive == "location_display":
        out: list[str | None] = []
        unreadable: list[int] = []
        irregular: list[int] = []
        preferences = source("suburb_preferences").to_pylist()
        selections = source("location_selections").to_pylist()
        for index in range(len(row_ids)):
            text, problem = location_display(preferences[index], selections[index])
            out.append(text)
            if problem == "unreadable":
                unreadable.append(index)
            elif problem == "irregular":
                irregular.append(index)
        quality.add("json_unreadable", row_ids[unreadable])
        quality.add("json_irregular", row_ids[irregular])
        return pa.array(out, type=pa.string())
    if column.derive in ("hmac_email", "hmac_phone"):
        if context.pii_salt is None:
            raise BadDataError(
                f"{spec.name}: {column.name} needs PARTYHELP_PII_SALT",
                table=spec.name,
                column=column.name,
            )
        is_email = column.derive == "hmac_email"
        return _pii_column(
            source("email" if is_email else "phone").to_pylist(),
            normalise_email if is_email else normalise_au_phone,
            context.pii_salt,
            row_ids,
            "email_unusable" if is_email else "phone_not_e164",
            quality,
        )
    raise ValueError(f"{spec.name}: column {column.name} has an unknown derivation")
