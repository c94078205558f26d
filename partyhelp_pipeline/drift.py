"""Schema drift: refuse a source that a spec can no longer export exactly.

What each wire form can carry exactly is the type table's (``spec/types.py``,
``TypeRule.mysql_types``); which source columns a table reads, and in which wire form,
is its spec's. An added column changes nothing; a renamed or dropped one, a type that
its wire form cannot hold, or a join of two text columns whose collations differ, fails the
run before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from partyhelp_pipeline.errors import SchemaDriftError
from partyhelp_pipeline.settings import MySQLSettings
from partyhelp_pipeline.source import snapshot
from partyhelp_pipeline.spec import MAX_DECIMAL_INTEGER_DIGITS, NUMERIC_SCALE, TYPES, TableSpec

Problem = tuple[str, str, str]  # (table, column, message)


@dataclass(frozen=True)
class SourceColumn:
    """What information_schema says of one column."""

    table: str
    column: str
    data_type: str
    numeric_precision: int | None
    numeric_scale: int | None
    collation: str | None = None  # text columns only


SourceSchema = Mapping[tuple[str, str], SourceColumn]


def describe_source(connection: Any, database: str) -> dict[tuple[str, str], SourceColumn]:
    """Every column of the source database, keyed by ``(table, column)`` in lower case."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, "
            "COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %(schema)s",
            {"schema": database},
        )
        rows = cursor.fetchall()
    return {
        (str(t).lower(), str(c).lower()): SourceColumn(
            str(t), str(c), str(d).lower(), p, s, None if k is None else str(k)
        )
        for t, c, d, p, s, k in rows
    }


def check_schema(spec: TableSpec, source: SourceSchema) -> None:
    """Fail before anything is written when a column the spec reads is gone or too wide."""
    raise_drift(schema_problems(spec, source))


def check_source_schema(settings: MySQLSettings, specs: Sequence[TableSpec]) -> None:
    """Check every spec against the source in one look at information_schema; the error
    names every table and column that drifted."""
    with snapshot(settings) as connection:
        source = describe_source(connection, settings.database)
    raise_drift([problem for spec in specs for problem in schema_problems(spec, source)])


def raise_drift(problems: list[Problem]) -> None:
    """One ``SchemaDriftError`` naming every ``(table, column, message)`` problem, if any."""
    if problems:
        table, column, _ = problems[0]
        raise SchemaDriftError(
            "; ".join(message for _, _, message in problems), table=table, column=column
        )


def schema_problems(spec: TableSpec, source: SourceSchema) -> list[Problem]:
    """Every drift of the source that ``spec`` cannot export exactly, all listed, so that
    one failed run shows the whole of a migration."""
    return (
        _missing(spec, source)
        + _wrong_types(spec, source)
        + _money_too_wide(spec, source)
        + _mixed_collations(spec, source)
    )


def _lookup(source: SourceSchema, table: str, column: str) -> SourceColumn | None:
    return source.get((table.lower(), column.lower()))


def _missing(spec: TableSpec, source: SourceSchema) -> list[Problem]:
    missing = sorted(f"{t}.{c}" for t, c in spec.source_columns if not _lookup(source, t, c))
    if not missing:
        return []
    return [
        (
            spec.name,
            missing[0],
            f"{spec.name}: source column {', '.join(missing)} is "
            "missing (renamed or dropped in the source database?)",
        )
    ]


def _wrong_types(spec: TableSpec, source: SourceSchema) -> list[Problem]:
    problems = []
    for (table, column), wire in sorted(spec.source_wire_types.items()):
        info = _lookup(source, table, column)
        allowed = TYPES[wire].mysql_types
        if info is not None and info.data_type not in allowed:
            problems.append(
                (
                    spec.name,
                    f"{table}.{column}",
                    f"{spec.name}: source column {table}.{column} is now "
                    f"{info.data_type.upper()}; it is read as {wire}, which holds "
                    f"exactly only {', '.join(sorted(t.upper() for t in allowed))}",
                )
            )
    return problems


def _money_too_wide(spec: TableSpec, source: SourceSchema) -> list[Problem]:
    problems = []
    for (table, column), wire in sorted(spec.source_wire_types.items()):
        info = _lookup(source, table, column)
        # Only money travels as exact cents; a DECIMAL read as FLOAT64 (match_score) is a
        # double by contract, whatever its scale.
        if info is None or info.data_type != "decimal" or wire != "NUMERIC":
            continue
        scale = info.numeric_scale or 0
        if (
            scale > NUMERIC_SCALE
            or (info.numeric_precision or 0) - scale > MAX_DECIMAL_INTEGER_DIGITS
        ):
            problems.append(
                (
                    spec.name,
                    f"{table}.{column}",
                    f"{spec.name}: source column {table}.{column} is DECIMAL("
                    f"{info.numeric_precision},{scale}); the export holds at most "
                    f"{MAX_DECIMAL_INTEGER_DIGITS} integer digits and {NUMERIC_SCALE} "
                    "decimals exactly, and refuses to round",
                )
            )
    return problems


def _mixed_collations(spec: TableSpec, source: SourceSchema) -> list[Problem]:
    """A join of two text columns in different collations. MySQL 8 refuses most such
    comparisons (error 1267, "Illegal mix of collations": a table created there without a
    collation gets utf8mb4_0900_ai_ci, Laravel's get utf8mb4_unicode_ci), and where a server
    resolves the mix itself, the winning collation decides which keys match (``_bin`` is
    case-sensitive) and the joined table's index goes unused. So any difference fails."""
    problems = []
    for join in spec.joins:
        key = _lookup(source, join.table, join.key)
        parent_table, parent_column = spec.source_column(join.parent)
        parent = _lookup(source, parent_table, parent_column)
        if (
            key is None
            or parent is None
            or not key.collation
            or not parent.collation
            or key.collation.lower() == parent.collation.lower()
        ):
            continue
        problems.append(
            (
                spec.name,
                f"{key.table}.{key.column}",
                f"{spec.name}: the join {key.table}.{key.column} "
                f"({key.collation}) = {parent.table}.{parent.column} "
                f"({parent.collation}) mixes collations, which MySQL refuses (error "
                "1267, illegal mix of collations): ALTER one column to the other's "
                "collation",
            )
        )
    return problems
