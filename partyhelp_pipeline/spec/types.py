"""The one table of types: what each BigQuery column type means at every stage.

For each BigQuery type of a reporting column, ``TYPES`` says
- how the source query converts it into a wire form in SQL (``TypeRule.sql``), so the
  exporter converts whole batches instead of single cells;
- the Arrow type that wire form arrives in (``TypeRule.arrow``);
- how the Avro encoder writes it (``TypeRule.avro_kind``, ``TypeRule.avro_logical_type``);
- which MySQL column types (information_schema ``DATA_TYPE``) that wire form carries
  exactly (``TypeRule.mysql_types``), which the schema-drift check enforces.

Everything else (the generated SQL, the Avro and BigQuery schemas, the drift check, the
docs) reads these rules; none repeats them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

# BOOL is for the tables the flow writes itself (the audit): no reporting column has it, so
# it has no rule in ``TYPES`` (a TableSpec refuses a column type without one).
BigQueryType = Literal["INT64", "STRING", "DATE", "TIMESTAMP", "NUMERIC", "FLOAT64", "BOOL"]
AvroKind = Literal["long", "string", "decimal", "double"]
AvroLogicalType = Literal["date", "timestamp-micros"]

# Money is exact: Avro decimal(18, 2) loads into NUMERIC. 18 digits keep the unscaled
# value inside an int64, which the columnar encoder needs; DECIMAL(p, s) with s <= 2 and
# p - s <= 16 fits exactly (see ``MAX_DECIMAL_INTEGER_DIGITS``).
NUMERIC_PRECISION = 18
NUMERIC_SCALE = 2
MAX_DECIMAL_INTEGER_DIGITS = NUMERIC_PRECISION - NUMERIC_SCALE

_INTEGERS = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
_TEXT = frozenset(
    {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json", "enum", "set"}
)


@dataclass(frozen=True)
class TypeRule:
    """What one BigQuery type is at every stage, MySQL to BigQuery."""

    sql: str  # the wire conversion; ``{expr}`` is the column's source expression
    arrow: pa.DataType
    avro_kind: AvroKind
    avro_logical_type: AvroLogicalType | None
    mysql_types: frozenset[str]
    wire_meaning: str  # for the docs: what the wire value is

    def wire_sql(self, expression: str) -> str:
        """The select expression that reads ``expression`` in this type's wire form."""
        return self.sql.format(expr=expression)


# DATETIME is not a TIMESTAMP: its UNIX_TIMESTAMP is NULL after 2038 and 0 before 1970, and a
# DATE read as DATETIME + 0 is no longer YYYYMMDD, so such a drift fails the run instead of
# turning values into NULL. Integers of any width are checked row by row against int64;
# DECIMAL's precision and scale are checked by the drift check (money only).
# FLOAT64 adds the DOUBLE literal 0E0 rather than CAST(... AS DOUBLE), which MySQL before
# 8.0.17 refuses: an arithmetic operation with a floating-point operand is evaluated in
# double precision on MySQL and MariaDB alike, and adding zero changes no value.
TYPES: dict[BigQueryType, TypeRule] = {
    "INT64": TypeRule("{expr}", pa.int64(), "long", None, _INTEGERS, "as is"),
    "STRING": TypeRule("{expr}", pa.string(), "string", None, _TEXT, "as is"),
    "FLOAT64": TypeRule(
        "{expr} + 0E0",
        pa.float64(),
        "double",
        None,
        _INTEGERS | {"decimal", "float", "double"},
        "double",
    ),
    "DATE": TypeRule(
        "{expr} + 0",
        pa.int64(),
        "long",
        "date",
        frozenset({"date"}),
        "YYYYMMDD integer; 0 (or a zero month or day) is a zero date",
    ),
    "TIMESTAMP": TypeRule(
        "CAST(UNIX_TIMESTAMP({expr}) * 1000000 AS SIGNED)",
        pa.int64(),
        "long",
        "timestamp-micros",
        frozenset({"timestamp"}),
        "epoch microseconds; 0 is a zero date",
    ),
    "NUMERIC": TypeRule(
        "CAST({expr} * 100 AS SIGNED)",
        pa.int64(),
        "decimal",
        None,
        _INTEGERS | {"decimal"},
        "cents; exact because the drift check allows only DECIMAL scale <= 2",
    ),
}
# The inputs of derived columns (JSON text, email, phone) travel as text.
DERIVATION_INPUT_TYPE: BigQueryType = "STRING"
