"""One declarative spec per reporting table; every schema is derived from it.

A ``TableSpec`` names the table, its source query (a ``.sql`` file) and its columns
(name, BigQuery type, mode, description). From that single list we derive:

- the Avro schema of the exported files (``avro_schema``),
- the BigQuery schema of the load job, with column descriptions (``bigquery_schema``),
- the columns the source query must return (``query_columns``),
- the reference docs (``docs/tables.md``, see ``scripts/generate_docs.py``).

Wire format. To keep per-cell Python work out of the hot loop, each source query
converts values in SQL into a few integer/string forms, chosen by the column's
BigQuery type: DATE arrives as a ``YYYYMMDD`` integer (``col + 0``), TIMESTAMP as
epoch microseconds (``UNIX_TIMESTAMP``), NUMERIC as the unscaled integer
(``amount * 100``), FLOAT64 as a double. ``tasks/batches.py`` turns those into
Arrow arrays; zero dates arrive as 0 and become NULL there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from tasks.avro_encoding import AvroField, Kind, LogicalType, field_schema

BigQueryType = Literal["INT64", "STRING", "DATE", "TIMESTAMP", "NUMERIC", "FLOAT64"]
Mode = Literal["NULLABLE", "REQUIRED"]
Derivation = Literal["occasion_label", "location_display", "sync_date", "hmac_email", "hmac_phone"]

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

# Money is exact: Avro decimal(18, 2) loads into NUMERIC. 18 digits keep the unscaled
# value inside an int64, which the columnar encoder needs; DECIMAL(p, s) with s <= 2 and
# p - s <= 16 fits exactly (see ``max_decimal_integer_digits``).
NUMERIC_PRECISION = 18
NUMERIC_SCALE = 2
max_decimal_integer_digits = NUMERIC_PRECISION - NUMERIC_SCALE


@dataclass(frozen=True)
class Column:
    """One column of a reporting table."""

    name: str
    type: BigQueryType
    description: str
    mode: Mode = "NULLABLE"
    derive: Derivation | None = None
    pii: bool = False

    @property
    def nullable(self) -> bool:
        """Whether the column admits NULL."""
        return self.mode == "NULLABLE"

    @property
    def query_inputs(self) -> tuple[str, ...]:
        """Names of the source query's columns that this column is computed from."""
        return DERIVATION_INPUTS.get(self.derive, (self.name,)) if self.derive else (self.name,)

    def avro_field(self) -> AvroField:
        """How the encoder writes this column (kind, logical type, decimal scale)."""
        kind, logical_type = AVRO_ENCODING[self.type]
        return AvroField(self.name, kind, self.nullable, logical_type,
                         NUMERIC_PRECISION, NUMERIC_SCALE)

    def avro_schema_field(self) -> dict[str, Any]:
        """This column's field in the Avro record schema, documented."""
        return {**field_schema(self.avro_field()), "doc": self.description}

    def bigquery_field(self) -> dict[str, str]:
        """The BigQuery schema field of this column, as the REST API spells it."""
        return {
            "name": self.name,
            "type": self.type,
            "mode": self.mode,
            "description": self.description,
        }


# BigQuery type -> (encoder kind, Avro logical type). DATE is an Avro int, whose varint
# encoding is the long's; NUMERIC is an Avro decimal(NUMERIC_PRECISION, NUMERIC_SCALE).
AVRO_ENCODING: dict[BigQueryType, tuple[Kind, LogicalType | None]] = {
    "INT64": ("long", None),
    "STRING": ("string", None),
    "FLOAT64": ("double", None),
    "DATE": ("long", "date"),
    "TIMESTAMP": ("long", "timestamp-micros"),
    "NUMERIC": ("decimal", None),
}

# Derived columns read other query columns (or none, for constants).
DERIVATION_INPUTS: dict[str, tuple[str, ...]] = {
    "occasion_label": ("occasion_type", "occasion_label"),
    "location_display": ("suburb_preferences", "location_selections"),
    "sync_date": (),
    "hmac_email": ("email",),
    "hmac_phone": ("phone",),
}


@dataclass(frozen=True)
class OrphanCheck:
    """A row is an orphan when ``key_column`` is set but its joined ``context_column`` is NULL."""

    parent: str
    key_column: str
    context_column: str


@dataclass(frozen=True)
class TableSpec:
    """A reporting table: its name, its source query and its columns."""

    name: str
    description: str
    source_table: str
    primary_key: str
    columns: tuple[Column, ...]
    orphan_checks: tuple[OrphanCheck, ...] = ()
    sql_file: str = ""
    totals_sql_file: str = ""

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate column names")

    @property
    def query_path(self) -> Path:
        """The ``.sql`` file of the flattening query."""
        return SQL_DIR / "source" / (self.sql_file or f"{self.name}.sql")

    @property
    def totals_query_path(self) -> Path:
        """The ``.sql`` file of the reconciliation aggregate (row count and money sums)."""
        return SQL_DIR / "source" / "totals" / (self.totals_sql_file or f"{self.name}.sql")

    @cached_property
    def query(self) -> str:
        """The flattening query, with ``%(first_id)s``/``%(last_id)s``/``%(include_pii)s``."""
        return self.query_path.read_text(encoding="utf-8")

    @cached_property
    def totals_query(self) -> str:
        """The aggregate query over the same id range."""
        return self.totals_query_path.read_text(encoding="utf-8")

    def output_columns(self, include_pii: bool = False) -> tuple[Column, ...]:
        """The columns written to Avro and BigQuery."""
        return tuple(c for c in self.columns if include_pii or not c.pii)

    def column(self, name: str) -> Column:
        """The column called ``name``."""
        for candidate in self.columns:
            if candidate.name == name:
                return candidate
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def money_columns(self) -> tuple[Column, ...]:
        """Columns whose sums must reconcile to the cent."""
        return tuple(c for c in self.columns if c.type == "NUMERIC")

    @cached_property
    def query_columns(self) -> tuple[str, ...]:
        """The columns the source query returns, in order of first use."""
        seen: dict[str, None] = {}
        for column in self.columns:
            for name in column.query_inputs:
                seen.setdefault(name, None)
        return tuple(seen)

    @cached_property
    def source_columns(self) -> frozenset[tuple[str, str]]:
        """Every ``(table, column)`` of the source that the query reads."""
        return frozenset(referenced_source_columns(self.query))

    @cached_property
    def source_wire_types(self) -> dict[tuple[str, str], BigQueryType]:
        """The wire form each selected ``(table, column)`` is read in: the type of the query
        column it feeds (STRING for the inputs of derived columns). Columns read only in
        joins are absent. The drift check refuses source types that form cannot hold."""
        types: dict[str, BigQueryType] = {c.name: c.type for c in self.columns if not c.derive}
        wire: dict[tuple[str, str], BigQueryType] = {}
        for name, sources in select_list_sources(self.query).items():
            for source in sources:
                wire[source] = types.get(name, "STRING")
        return wire

    def avro_schema(self, include_pii: bool = False) -> dict[str, Any]:
        """The Avro record schema of the exported files."""
        return {
            "type": "record",
            "name": self.name,
            "namespace": "partyhelp.reporting",
            "doc": self.description,
            "fields": [c.avro_schema_field() for c in self.output_columns(include_pii)],
        }

    def bigquery_schema(self, include_pii: bool = False) -> list[dict[str, str]]:
        """The BigQuery schema (REST representation) with column descriptions."""
        return [c.bigquery_field() for c in self.output_columns(include_pii)]


def sql_template(path: Path) -> str:
    """A BigQuery SQL template without its ``--`` comment lines (they may name placeholders)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("--"))


_FROM_JOIN = re.compile(r"\b(?:FROM|JOIN)\s+`?(\w+)`?\s+(?:AS\s+)?(\w+)", re.IGNORECASE)
_ALIAS_COLUMN = re.compile(r"\b(\w+)\.`?(\w+)`?")


def referenced_source_columns(sql: str) -> Iterable[tuple[str, str]]:
    """Yield ``(table, column)`` for each ``alias.column`` the SQL reads.

    Our queries always alias their tables (``FROM leads AS l``), so the alias map is
    enough; comments are dropped first so prose cannot look like a reference.
    """
    code = re.sub(r"--[^\n]*", "", sql)
    aliases = {alias.lower(): table for table, alias in _FROM_JOIN.findall(code)}
    for alias, column in _ALIAS_COLUMN.findall(code):
        table = aliases.get(alias.lower())
        if table is not None:
            yield table, column


_SELECT_ITEM = re.compile(r"^\s*(.*\S)\s+AS\s+`?(\w+)`?\s*,?\s*$", re.IGNORECASE)


def select_list_sources(sql: str) -> dict[str, frozenset[tuple[str, str]]]:
    """For each column the query returns, the ``(table, column)`` pairs its expression reads.

    Relies on the layout of ``sql/source/README.md``: one ``expression AS name`` per line
    between ``SELECT`` and ``FROM``.
    """
    code = re.sub(r"--[^\n]*", "", sql)
    aliases = {alias.lower(): table for table, alias in _FROM_JOIN.findall(code)}
    select_list = re.search(r"\bSELECT\b(.*?)^\s*FROM\b", code,
                            re.IGNORECASE | re.DOTALL | re.MULTILINE)
    out: dict[str, frozenset[tuple[str, str]]] = {}
    for line in (select_list.group(1) if select_list else "").splitlines():
        item = _SELECT_ITEM.match(line)
        if item:
            expression, name = item.groups()
            out[name] = frozenset((aliases[a.lower()], c) for a, c in
                                  _ALIAS_COLUMN.findall(expression) if a.lower() in aliases)
    return out


def _id(name: str, what: str) -> Column:
    return Column(name, "INT64", what, mode="REQUIRED")


SYNC_DATE = Column(
    "sync_date",
    "DATE",
    "Day this row was synced (the sync's reporting date, Australia/Melbourne).",
    mode="REQUIRED",
    derive="sync_date",
)


def _ts(name: str, what: str) -> Column:
    return Column(name, "TIMESTAMP", what + " UTC; NULL where the source held a zero date.")


PH_LEADS = TableSpec(
    name="ph_leads",
    description="One row per lead (a customer event request), with readable labels.",
    source_table="leads",
    primary_key="lead_id",
    columns=(
        _id("lead_id", "Primary key: source leads.id."),
        Column("occasion_type", "STRING", "Occasion key, e.g. 21st_birthday, wedding_reception."),
        Column(
            "occasion_label",
            "STRING",
            "Human label: occasion_types.label, or derived from the key where that table "
            "lacks it (murder_mystery_night -> Murder Mystery Night).",
            derive="occasion_label",
        ),
        Column("guest_count", "INT64", "Numeric guest count."),
        Column("guest_count_display", "STRING", "Guest count as the customer chose it: 50-80."),
        Column("preferred_date", "DATE", "Customer's preferred event date; NULL for zero dates."),
        Column("suburb", "STRING", "Primary suburb of the event."),
        Column(
            "location_display",
            "STRING",
            "Preferred locations in one string: the suburbs of suburb_preferences, then of "
            "location_selections, comma-separated, without repeats; NULL when there are none.",
            derive="location_display",
        ),
        Column(
            "status",
            "STRING",
            "new, distributed, partially_fulfilled, fulfilled, expired or cancelled "
            "(legacy values pass through).",
        ),
        Column("base_price", "NUMERIC", "List price from the pricing matrix, AUD."),
        Column("current_price", "NUMERIC", "Price after discount, AUD."),
        Column("discount_percent", "INT64", "Current discount, percent.", mode="REQUIRED"),
        Column("purchase_target", "INT64", "Fulfilment target, e.g. 3.", mode="REQUIRED"),
        Column("purchase_count", "INT64", "Number of purchases so far.", mode="REQUIRED"),
        _ts("distributed_at", "When the lead was distributed to venues,"),
        _ts("fulfilled_at", "When the fulfilment target was met,"),
        _ts("expires_at", "When the lead expires,"),
        _ts("created_at", "Source leads.created_at,"),
        SYNC_DATE,
        Column(
            "email_sha256",
            "STRING",
            "Opt-in (PARTYHELP_INCLUDE_PII_HASHES): HMAC-SHA256 of the trimmed, lower-cased "
            "email, keyed with a secret salt; never the raw value.",
            derive="hmac_email",
            pii=True,
        ),
        Column(
            "phone_sha256",
            "STRING",
            "Opt-in (PARTYHELP_INCLUDE_PII_HASHES): HMAC-SHA256 of the phone number in "
            "E.164 form (+61...), keyed with a secret salt; never the raw value.",
            derive="hmac_phone",
            pii=True,
        ),
    ),
)

PH_VENUES = TableSpec(
    name="ph_venues",
    description="One row per venue, flattened with its area name; balance as at the sync.",
    source_table="venues",
    primary_key="venue_id",
    columns=(
        _id("venue_id", "Primary key: source venues.id."),
        Column("business_name", "STRING", "Venue's business name."),
        Column("area_id", "INT64", "Source venues.area_id; may point to a missing area."),
        Column("area_name", "STRING", "areas.name; NULL when the venue has no (existing) area."),
        Column("suburb", "STRING", "Venue suburb."),
        Column("state", "STRING", "Australian state, e.g. VIC."),
        Column("postcode", "STRING", "Postcode."),
        Column(
            "status",
            "STRING",
            "pending, active, inactive or suspended (legacy values pass through).",
        ),
        Column("credit_balance", "NUMERIC", "Prepaid credit balance as at the sync, AUD; signed."),
        _ts("approved_at", "When the venue was approved,"),
        _ts("last_activity_at", "Last activity of the venue,"),
        _ts("created_at", "Source venues.created_at,"),
        SYNC_DATE,
    ),
    orphan_checks=(OrphanCheck("area", "area_id", "area_name"),),
)

_LEAD_CONTEXT = "from the purchased lead; NULL when the lead no longer exists."
_VENUE_CONTEXT = "NULL when the venue no longer exists."

PH_LEAD_PURCHASES = TableSpec(
    name="ph_lead_purchases",
    description="Core sales fact: one row per lead purchase with its event and venue context.",
    source_table="lead_purchases",
    primary_key="lead_purchase_id",
    columns=(
        _id("lead_purchase_id", "Primary key: source lead_purchases.id."),
        Column("lead_id", "INT64", "Purchased lead (source lead_purchases.lead_id)."),
        Column("venue_id", "INT64", "Buying venue (source lead_purchases.venue_id)."),
        Column("occasion_type", "STRING", "Occasion key " + _LEAD_CONTEXT),
        Column(
            "occasion_label",
            "STRING",
            "Event name, e.g. 21st Birthday: occasion_types.label or derived from the key; "
            "NULL when the lead no longer exists.",
            derive="occasion_label",
        ),
        Column("preferred_date", "DATE", "Event date " + _LEAD_CONTEXT),
        Column("guest_count", "INT64", "Guest count " + _LEAD_CONTEXT),
        Column("lead_suburb", "STRING", "Event suburb " + _LEAD_CONTEXT),
        Column(
            "lead_status",
            "STRING",
            "The venue's progress with the lead: contacted, quoted, booked, lost or pending.",
        ),
        Column("venue_business_name", "STRING", "Venue business name; " + _VENUE_CONTEXT),
        Column("venue_area_name", "STRING", "Venue's area name; NULL when it has none."),
        Column("amount_paid", "NUMERIC", "Revenue for this purchase, AUD."),
        Column(
            "discount_percent", "INT64", "Discount at the time of purchase, percent.",
            mode="REQUIRED",
        ),
        _ts("purchased_at", "Purchase time (source lead_purchases.created_at),"),
        SYNC_DATE,
    ),
    orphan_checks=(
        OrphanCheck("lead", "lead_id", "occasion_type"),
        OrphanCheck("venue", "venue_id", "venue_business_name"),
    ),
)

PH_CREDIT_TRANSACTIONS = TableSpec(
    name="ph_credit_transactions",
    description="One row per credit movement of a venue: top-ups, purchases, refunds.",
    source_table="credit_transactions",
    primary_key="credit_transaction_id",
    columns=(
        _id("credit_transaction_id", "Primary key: source credit_transactions.id."),
        Column("venue_id", "INT64", "Venue whose balance moved."),
        Column("venue_business_name", "STRING", "Venue business name; " + _VENUE_CONTEXT),
        Column(
            "type",
            "STRING",
            "topup, auto_topup, purchase, refund or adjustment (legacy values pass through).",
        ),
        Column("amount", "NUMERIC", "Signed amount, AUD: negative for a purchase."),
        Column("balance_after", "NUMERIC", "Venue balance after this transaction, AUD."),
        Column("lead_purchase_id", "INT64", "Set for type = purchase."),
        Column("stripe_payment_intent_id", "STRING", "Stripe PaymentIntent, for reconciliation."),
        Column("description", "STRING", "Free-text description."),
        Column("admin_note", "STRING", "Note by a Partyhelp admin."),
        _ts("created_at", "Source credit_transactions.created_at,"),
        SYNC_DATE,
    ),
    orphan_checks=(OrphanCheck("venue", "venue_id", "venue_business_name"),),
)

PH_LEAD_MATCHES = TableSpec(
    name="ph_lead_matches",
    description="One row per lead-venue match, for the notified -> viewed -> purchased funnel.",
    source_table="lead_matches",
    primary_key="lead_match_id",
    columns=(
        _id("lead_match_id", "Primary key: source lead_matches.id."),
        Column("lead_id", "INT64", "Matched lead."),
        Column("venue_id", "INT64", "Matched venue."),
        Column("venue_business_name", "STRING", "Venue business name; " + _VENUE_CONTEXT),
        Column("match_score", "FLOAT64", "Matching score (source DECIMAL(5,2))."),
        Column(
            "status",
            "STRING",
            "notified, viewed, purchased, expired or declined (legacy values pass through).",
        ),
        _ts("notified_at", "When the venue was notified,"),
        _ts("viewed_at", "When the venue viewed the lead,"),
        _ts("purchased_at", "When the venue bought the lead,"),
        SYNC_DATE,
    ),
    orphan_checks=(OrphanCheck("venue", "venue_id", "venue_business_name"),),
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (PH_LEADS, PH_VENUES, PH_LEAD_PURCHASES, PH_CREDIT_TRANSACTIONS, PH_LEAD_MATCHES)
}


@dataclass(frozen=True)
class ViewSpec:
    """A BigQuery view over one reporting table; its columns are that table's."""

    name: str
    description: str
    base: TableSpec
    column_names: tuple[str, ...]

    @property
    def columns(self) -> tuple[Column, ...]:
        """The view's columns, with the base table's types and descriptions."""
        return tuple(self.base.column(name) for name in self.column_names)

    @property
    def query_path(self) -> Path:
        """The ``.sql`` template of the view."""
        return SQL_DIR / "bigquery" / f"{self.name}.sql"


SALES_BILLING_SUMMARY = ViewSpec(
    name="ph_sales_billing_summary",
    description="One row per purchase with every identifier, event label and amount needed "
    "for invoices and revenue reports; a view over ph_lead_purchases.",
    base=PH_LEAD_PURCHASES,
    column_names=(
        "lead_purchase_id",
        "lead_id",
        "venue_id",
        "occasion_label",
        "occasion_type",
        "preferred_date",
        "guest_count",
        "venue_business_name",
        "venue_area_name",
        "amount_paid",
        "discount_percent",
        "lead_status",
        "purchased_at",
        "sync_date",
    ),
)


def select_tables(names: Iterable[str] | None) -> list[TableSpec]:
    """The specs for ``names`` (all five when None), refusing unknown names."""
    if names is None:
        return list(TABLES.values())
    chosen = []
    for name in names:
        name = name.strip()
        if name not in TABLES:
            raise ValueError(f"unknown table {name!r}; choose from {', '.join(TABLES)}")
        if TABLES[name] not in chosen:
            chosen.append(TABLES[name])
    if not chosen:
        raise ValueError("no tables chosen")
    return chosen


@dataclass(frozen=True)
class AuditTableSpec:
    """A table the flow writes itself (no source query)."""

    name: str
    description: str
    columns: tuple[Column, ...]


AUDIT_TABLE = AuditTableSpec(
    name="ph_sync_runs",
    description="Audit trail: one row per table per sync or replay run, appended by the flow.",
    columns=(
        Column("sync_date", "DATE", "Reporting day of the run.", mode="REQUIRED"),
        Column("flow_run_id", "STRING", "Prefect flow run id."),
        Column("table_name", "STRING", "Reporting table, e.g. ph_leads.", mode="REQUIRED"),
        Column("mode", "STRING", "sync (read MySQL) or replay (reloaded kept exports)."),
        Column("status", "STRING", "Completed or Failed.", mode="REQUIRED"),
        Column("export_id", "STRING", "Export attempt (folder under the table's GCS prefix)."),
        Column("manifest_uri", "STRING", "gs:// URI of the manifest that was loaded."),
        Column("source_rows", "INT64", "Rows the source counted in the export's snapshot."),
        Column("rows_exported", "INT64", "Rows written to Avro."),
        Column("rows_loaded", "INT64", "Rows in the BigQuery table after the load."),
        Column("files", "INT64", "Avro parts."),
        Column("bytes", "INT64", "Bytes of the Avro parts."),
        Column("checksums", "STRING", "CRC32C (base64) of each part, in order, comma-separated."),
        Column("zero_dates_nulled", "INT64", "Zero dates written as NULL."),
        Column("orphan_rows", "INT64", "Rows whose lead, venue or area no longer exists."),
        Column("quality", "STRING", "JSON: every data-quality counter with example row ids."),
        Column("load_job_id", "STRING", "BigQuery load job id (several, comma-separated, "
               "when the parts took more than one job)."),
        Column("copy_job_id", "STRING", "BigQuery copy job that published the table."),
        Column("started_at", "TIMESTAMP", "When the table's export (or replay) started."),
        Column("ended_at", "TIMESTAMP", "When the table's load finished or failed."),
        Column("error", "STRING", "First line of the error, for a failed table."),
    ),
)
