"""SQL generated from the specs: each table's flattening and totals queries, and the views.

The exporter runs exactly these strings; ``python -m scripts.generate_docs`` also writes
them under ``sql/`` so a person can read them (a test fails when those files are stale).

Source queries bind values, never format them: ``%(first_id)s`` and ``%(last_id)s`` bound
the driving table's key (inclusive), ``%(include_pii)s`` is 1 only with the opt-in PII
hashes. Identifiers come from the specs, never from input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from partyhelp_pipeline.spec.tables import (
    LOOKUP_KEY,
    AuditViewSpec,
    Join,
    Lookup,
    PeriodViewSpec,
    QueryColumn,
    TableSpec,
    ViewSpec,
    split_source,
)
from partyhelp_pipeline.spec.types import TYPES

_ALIGN = 66  # select expressions are padded to this width, so the names line up
INT64_MAX = 2**63 - 1


def quote(name: str) -> str:
    """A MySQL identifier in backquotes. Every identifier of the source queries is quoted,
    not a list of reserved words: each MySQL release reserves new ones (8.0 added RANK,
    GROUPS, LATERAL ...), and a quoted name means the same on MySQL and MariaDB. The
    drivers format the queries with the parameters, so a name may hold no ``%``."""
    if not name or any(c in name for c in "`%\0"):
        raise ValueError(f"{name!r} is not a plain identifier")
    return f"`{name}`"


def mysql_source(source: str) -> str:
    """``alias.column`` quoted: `` `alias`.`column` ``."""
    alias, column = split_source(source)
    return f"{quote(alias)}.{quote(column)}"


def _select_item(column: QueryColumn) -> str:
    expression = TYPES[column.wire_type].wire_sql(mysql_source(column.source))
    if column.pii:
        expression = f"IF(%(include_pii)s, {expression}, NULL)"
    return f"    {expression:<{_ALIGN - 1}} AS {quote(column.name)}"


def _from_clause(table: str, alias: str, joins: Iterable[Join]) -> list[str]:
    lines = [f"FROM {quote(table)} AS {quote(alias)}"]
    for join in joins:
        key = mysql_source(f"{join.alias}.{join.key}")
        lines.append(
            f"LEFT JOIN {quote(join.table)} AS {quote(join.alias)} ON {key} = "
            f"{mysql_source(join.parent)}"
        )
    return lines


def _key_range(spec: TableSpec) -> str:
    key = mysql_source(f"{spec.alias}.{spec.key_column}")
    return f"WHERE {key} BETWEEN %(first_id)s AND %(last_id)s"


def flattening_query(spec: TableSpec, *, lookups_in_arrow: bool = True) -> str:
    """One row per driving row, in key order, every value in its wire form.

    The export reads the lookups' columns (``Join.lookup``) with ``lookup_query`` and joins
    them in Arrow; ``lookups_in_arrow=False`` makes every join here instead, returning every
    column: the same rows in one query (the benchmarks' floor, the tests' reference)."""
    plan = spec.main_plan if lookups_in_arrow else spec.query_plan
    joins = spec.main_joins if lookups_in_arrow else spec.joins
    return (
        "\n".join(
            [
                # no "%" in a comment: the drivers format the query with the parameters
                f"-- {spec.name}: {spec.description.replace('%', ' percent')}",
                "SELECT",
                ",\n".join(_select_item(column) for column in plan),
                *_from_clause(spec.source_table, spec.alias, joins),
                _key_range(spec),
                f"ORDER BY {mysql_source(f'{spec.alias}.{spec.key_column}')}",
            ]
        )
        + "\n"
    )


def lookup_query(spec: TableSpec, lookup: Lookup) -> str:
    """Every row of a lookup's table (with the joins made from it), keyed by the column the
    main query's rows join on; run once per chunk, in the chunk's snapshot. A key above
    int64 (a BIGINT UNSIGNED may hold one) is left out: no parent value the export can
    carry equals it, and a parent that large fails on its own column, naming its row."""
    join = lookup.join
    key = TYPES["INT64"].wire_sql(mysql_source(f"{join.alias}.{join.key}"))
    return (
        "\n".join(
            [
                f"-- {spec.name}: lookup {join.table}, joined in Arrow on {join.parent}",
                "SELECT",
                ",\n".join(
                    [f"    {key:<{_ALIGN - 1}} AS {quote(LOOKUP_KEY)}"]
                    + [_select_item(column) for column in lookup.columns]
                ),
                *_from_clause(join.table, join.alias, lookup.nested),
                f"WHERE {key} <= {INT64_MAX}",
            ]
        )
        + "\n"
    )


FRESHNESS_NEWEST = "freshness_newest"  # epoch seconds of the freshness column's newest value
SNAPSHOT_AT = "snapshot_at"  # epoch seconds of the source's clock in the snapshot


def totals_query(spec: TableSpec) -> str:
    """Row count and money sums in cents over one key range of the driving table; with a
    freshness column, its newest value and the server's clock, in epoch seconds (read in
    the same scan and snapshot: the age is the source's own, whatever the client's clock)."""
    items = [f"    COUNT(*) AS {quote('row_count')}"]
    for column in spec.money_columns:
        total = TYPES["NUMERIC"].wire_sql(f"SUM({mysql_source(column.source or '')})")
        items.append(f"    {total} AS {quote(column.name)}")
    if spec.freshness_source:
        items.append(f"    {newest_value(spec.freshness_source)} AS {quote(FRESHNESS_NEWEST)}")
        items.append(f"    UNIX_TIMESTAMP() AS {quote(SNAPSHOT_AT)}")
    return (
        "\n".join(
            [
                f"-- {spec.name}: reconciliation totals over one key range (money in cents),"
                " and the freshness column's newest value.",
                "SELECT",
                ",\n".join(items),
                f"FROM {quote(spec.source_table)} AS {quote(spec.alias)}",
                _key_range(spec),
            ]
        )
        + "\n"
    )


def newest_value(source: str) -> str:
    """The newest value of a TIMESTAMP column in epoch seconds, values more than an hour in
    the future left out: a row dated 2038 (a placeholder, a bug) says nothing of how fresh
    the source is, and must not hide that it stopped. The hour allows for the clocks of the
    app's servers. The session's time zone is UTC (``source.snapshot``)."""
    column = mysql_source(source)
    return f"UNIX_TIMESTAMP(MAX(IF({column} <= UTC_TIMESTAMP() + INTERVAL 1 HOUR, {column}, NULL)))"


def source_freshness_query(spec: TableSpec) -> str:
    """The freshness column's newest value over the whole driving table and the server's
    clock, in epoch seconds (``check``'s reading; a sync reads them per chunk)."""
    newest = newest_value(spec.freshness_source or "")
    return (
        f"SELECT {newest} AS {quote(FRESHNESS_NEWEST)}, UNIX_TIMESTAMP() AS {quote(SNAPSHOT_AT)}"
        f"\nFROM {quote(spec.source_table)} AS {quote(spec.alias)}\n"
    )


def bigquery_totals_query(spec: TableSpec, table_ref: str) -> str:
    """Row count and money sums of a loaded table (``table_ref``: quoted, validated)."""
    sums = "".join(f",\n    SUM(`{c.name}`) AS `{c.name}`" for c in spec.money_columns)
    return f"SELECT\n    COUNT(*) AS row_count{sums}\nFROM {table_ref}\n"


def view_query(view: ViewSpec, base_ref: str) -> str:
    """The view's SELECT over its base table (``base_ref``: quoted, validated)."""
    columns = ",\n    ".join(f"`{c.name}`" for c in view.columns)
    return f"SELECT\n    {columns}\nFROM {base_ref}\n"


# The freshness view's columns (FRESHNESS_VIEW, in its order), each an expression over one
# Completed audit row; ``newest_first`` orders a table's Completed runs, the last first.
_FRESHNESS_EXPRESSIONS = {
    "table_name": "table_name",
    "sync_date": "sync_date",
    "synced_at": "ended_at",
    "hours_since": "ROUND(TIMESTAMP_DIFF(CURRENT_TIMESTAMP(), ended_at, SECOND) / 3600, 2)",
    "rows_loaded": "rows_loaded",
    "previous_rows_loaded": "LEAD(rows_loaded) OVER newest_first",
    "rows_change": "rows_loaded - LEAD(rows_loaded) OVER newest_first",
    "flow_run_id": "flow_run_id",
}


def freshness_query(view: AuditViewSpec, audit_ref: str) -> str:
    """Per table, its last Completed run of the audit table and the change in rows against
    the Completed run before it (``audit_ref``: quoted, validated)."""
    items = ",\n".join(f"    {_FRESHNESS_EXPRESSIONS[c.name]} AS `{c.name}`" for c in view.columns)
    return (
        "\n".join(
            [
                "SELECT",
                items,
                f"FROM {audit_ref}",
                # a replay of an older day filled only its history: the current table is older
                "WHERE status = 'Completed' AND IFNULL(current_replaced, TRUE)",
                "QUALIFY ROW_NUMBER() OVER newest_first = 1",
                "WINDOW newest_first AS (PARTITION BY table_name ORDER BY ended_at DESC, "
                "sync_date DESC)",
            ]
        )
        + "\n"
    )


# The financial-period view's columns (in its order) over the inner query's ``local_date``
# (the moment's date in the reporting time zone) and ``fy_start`` (the calendar year in which
# its financial year starts: July to December count in their own year).
_PERIOD_EXPRESSIONS = {
    "financial_year": "CONCAT('FY', CAST(fy_start AS STRING), '-', "
    "LPAD(CAST(MOD(fy_start + 1, 100) AS STRING), 2, '0'))",
    "fy_quarter": "DIV(MOD(EXTRACT(MONTH FROM local_date) + 5, 12), 3) + 1",
    "month": "DATE_TRUNC(local_date, MONTH)",
    "purchases": "COUNT(*)",
    "revenue": "IFNULL(SUM(`{money}`), 0)",
    "average_sale": "ROUND(IFNULL(SUM(`{money}`), 0) / COUNT(*), 2)",
}
_MONEY = {"revenue", "average_sale"}
_AGGREGATES = {"purchases", "revenue", "average_sale"}
_TIME_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*$")


def period_view_query(view: PeriodViewSpec, base_ref: str, timezone: str) -> str:
    """The view's aggregate by period over its base table (``base_ref``: quoted, validated).

    ``timezone`` is an IANA name (validated by the settings, checked again here: it is the
    one value written into the SQL text: a view takes no parameters).
    """
    if not _TIME_ZONE_NAME.match(timezone):
        raise ValueError(f"{timezone!r} is not a time zone name")
    items, keys = [], []
    for column in view.columns:
        if column.name in _PERIOD_EXPRESSIONS:
            expression = _PERIOD_EXPRESSIONS[column.name].format(money=view.amount)
            if column.name in _MONEY:
                expression = f"CAST({expression} AS NUMERIC)"
        else:
            expression = f"`{column.name}`"
        items.append(f"    {expression} AS `{column.name}`")
        if column.name not in _AGGREGATES:
            keys.append(f"`{column.name}`")
    return (
        "\n".join(
            [
                "SELECT",
                ",\n".join(items),
                "FROM (",
                "    SELECT *, EXTRACT(YEAR FROM local_date)"
                " - IF(EXTRACT(MONTH FROM local_date) < 7, 1, 0) AS fy_start",
                f"    FROM (SELECT *, DATE(`{view.moment}`, '{timezone}') AS local_date"
                f" FROM {base_ref})",
                ")",
                f"GROUP BY {', '.join(keys)}",
            ]
        )
        + "\n"
    )


HEALTH_DAYS = 90  # the days of metrics ``ph_sync_health`` shows: today (UTC) and 89 before
# The health view's columns (HEALTH_VIEW, in its order), each an expression over one
# ``ph_sync_metrics`` row; the others are that row's own column.
_ANOMALY_COUNT = "IF(IFNULL(anomalies, '') = '', 0, ARRAY_LENGTH(SPLIT(anomalies, ',')))"
_HEALTH_EXPRESSIONS = {
    "anomaly_count": _ANOMALY_COUNT,
    # warn and stale are a source to look at; fresh, off (check off), unknown (no value to
    # judge) and NULL (a row from before freshness was recorded) are not
    "is_normal": f"{_ANOMALY_COUNT} = 0 AND IFNULL(freshness_status, '') NOT IN ('warn', 'stale')",
}


def health_view_query(view: AuditViewSpec, metrics_ref: str) -> str:
    """Each table's metrics rows of the last ``HEALTH_DAYS`` days, with their anomalies
    counted and judged (``metrics_ref``: quoted, validated)."""
    items = ",\n".join(
        f"    {_HEALTH_EXPRESSIONS[c.name]} AS `{c.name}`"
        if c.name in _HEALTH_EXPRESSIONS
        else f"    `{c.name}`"
        for c in view.columns
    )
    return (
        "\n".join(
            [
                "SELECT",
                items,
                f"FROM {metrics_ref}",
                f"WHERE sync_date > DATE_SUB(CURRENT_DATE(), INTERVAL {HEALTH_DAYS} DAY)",
            ]
        )
        + "\n"
    )
