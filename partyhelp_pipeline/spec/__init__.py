"""The table specs (stage 1): every column of every reporting table, declared once.

``types`` holds the one table of type rules, ``tables`` the specs, ``sql`` the queries
generated from them.
"""

from partyhelp_pipeline.spec.tables import (
    AUDIT_TABLE,
    FRESHNESS_VIEW,
    HEALTH_VIEW,
    LOOKUP_KEY,
    METRICS_TABLE,
    SALES_BILLING_SUMMARY,
    SALES_BY_FINANCIAL_PERIOD,
    TABLES,
    VIEWS,
    AuditTableSpec,
    Column,
    Freshness,
    Join,
    Lookup,
    OrphanCheck,
    PeriodViewSpec,
    QueryColumn,
    QueryInput,
    TableSpec,
    ViewSpec,
    select_tables,
)
from partyhelp_pipeline.spec.types import (
    MAX_DECIMAL_INTEGER_DIGITS,
    NUMERIC_PRECISION,
    NUMERIC_SCALE,
    TYPES,
    BigQueryType,
    TypeRule,
)

__all__ = [
    "AUDIT_TABLE",
    "FRESHNESS_VIEW",
    "HEALTH_VIEW",
    "LOOKUP_KEY",
    "MAX_DECIMAL_INTEGER_DIGITS",
    "METRICS_TABLE",
    "NUMERIC_PRECISION",
    "NUMERIC_SCALE",
    "SALES_BILLING_SUMMARY",
    "SALES_BY_FINANCIAL_PERIOD",
    "TABLES",
    "TYPES",
    "VIEWS",
    "AuditTableSpec",
    "BigQueryType",
    "Column",
    "Freshness",
    "Join",
    "Lookup",
    "OrphanCheck",
    "PeriodViewSpec",
    "QueryColumn",
    "QueryInput",
    "TableSpec",
    "TypeRule",
    "ViewSpec",
    "select_tables",
]
