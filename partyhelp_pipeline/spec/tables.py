"""One declarative spec per reporting table: the spec owns the whole table.

A ``TableSpec`` names the table, its driving source table and joins, its primary key and
its columns. Each ``Column`` declares its BigQuery type, its description and its source
expression (``lp.amount_paid``: an aliased column of the FROM/JOIN clause). From that one
list, with the rules of ``spec/types.py``, everything else is derived:

- the flattening, lookup and totals queries (``spec/sql.py``, rendered into ``sql/source/``),
- the columns the drift check looks for in the source and the types it accepts,
- the Arrow wire types (``batches.py``), the Avro schema (``avro_encoding.py``), the
  BigQuery schema with descriptions, and ``docs/tables.md``.

To add a column: add one ``Column(...)`` line to its table below, then run
``python -m scripts.generate_docs`` and teach the test oracle (``tests/oracle.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from partyhelp_pipeline.spec.types import DERIVATION_INPUT_TYPE, TYPES, BigQueryType

Mode = Literal["NULLABLE", "REQUIRED"]
Derivation = Literal["occasion_label", "location_display", "sync_date", "hmac_email", "hmac_phone"]

# Derived columns read these query columns (their own source, if any, is one of them).
DERIVATION_INPUTS: dict[str, tuple[str, ...]] = {
    "occasion_label": ("occasion_type", "occasion_label"),
    "location_display": ("suburb_preferences", "location_selections"),
    "sync_date": (),
    "hmac_email": ("email",),
    "hmac_phone": ("phone",),
}


def split_source(source: str) -> tuple[str, str]:
    """``(alias, column)`` of a source expression ``alias.column``."""
    alias, dot, column = source.partition(".")
    if not (dot and alias.isidentifier() and column.isidentifier()):
        raise ValueError(f"source {source!r} is not of the form alias.column")
    return alias, column


@dataclass(frozen=True)
class Column:
    """One column of a reporting table, and where its value comes from."""

    name: str
    type: BigQueryType
    description: str
    source: str | None = None  # ``alias.column`` in the spec's FROM/JOIN clause
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
        return DERIVATION_INPUTS[self.derive] if self.derive else (self.name,)

    def bigquery_field(self) -> dict[str, str]:
        """The BigQuery schema field of this column, as the REST API spells it."""
        return {
            "name": self.name,
            "type": self.type,
            "mode": self.mode,
            "description": self.description,
        }


@dataclass(frozen=True)
class QueryInput:
    """A value the query reads only to derive a column from it (never written as such).
    With ``pii`` it leaves MySQL only when the opt-in PII hashes are on."""

    name: str
    source: str
    pii: bool = False


@dataclass(frozen=True)
class Join:
    """``LEFT JOIN table AS alias ON alias.key = parent``: on a unique key, so a row is
    never dropped nor repeated."""

    table: str
    alias: str
    key: str
    parent: str  # ``alias.column`` of a table joined before
    # A lookup: a small table on an integer key, read whole once per chunk in the chunk's
    # snapshot (with the joins made from it) and joined in Arrow, instead of probed by the
    # server once per row. Its parent must be an INT64 query column of the main query.
    lookup: bool = False


@dataclass(frozen=True)
class QueryColumn:
    """One column the flattening query returns: its source and its wire type."""

    name: str
    source: str
    wire_type: BigQueryType
    pii: bool = False


LOOKUP_KEY = "lookup_key"  # the name of a lookup query's key column


@dataclass(frozen=True)
class Lookup:
    """A lookup join (``Join.lookup``), the joins made from its table, and the query
    columns they provide: one query per chunk, joined in Arrow on ``parent_column``."""

    join: Join
    nested: tuple[Join, ...]
    parent_column: str  # the main query's column that holds ``join.parent``
    columns: tuple[QueryColumn, ...]


@dataclass(frozen=True)
class OrphanCheck:
    """A row is an orphan when ``key_column`` is set but its joined ``context_column`` is NULL."""

    parent: str
    key_column: str
    context_column: str


@dataclass(frozen=True)
class Freshness:
    """How fresh the source must be: ``column`` (a TIMESTAMP of the driving table, the app's
    ``created_at``, or ``updated_at`` where rows change) is read in the export's snapshot;
    a newest value older than ``warn_after_hours`` is a warning, older than
    ``error_after_hours`` fails the table before it is published."""

    column: str
    warn_after_hours: float
    error_after_hours: float


@dataclass(frozen=True)
class TableSpec:
    """A reporting table: its source (driving table, joins), primary key and columns."""

    name: str
    description: str
    source_table: str
    alias: str
    primary_key: str  # the output column that holds the driving table's key
    columns: tuple[Column, ...]
    joins: tuple[Join, ...] = ()
    inputs: tuple[QueryInput, ...] = ()
    orphan_checks: tuple[OrphanCheck, ...] = ()
    # BigQuery clustering of the current table and of its history (at most 4 columns): the
    # columns reports filter on, so a query reads only their blocks at 100x today's size.
    cluster_by: tuple[str, ...] = ()
    freshness: Freshness | None = None

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate column names")
        if unruled := [c.name for c in self.columns if c.type not in TYPES]:
            raise ValueError(f"{self.name}: no type rule for {', '.join(unruled)}")
        if len(self.cluster_by) > 4 or not set(self.cluster_by) <= set(names):
            raise ValueError(f"{self.name}: cluster_by names at most 4 of its columns")
        for source in self._sources():
            if split_source(source)[0] not in self.tables_by_alias:
                raise ValueError(f"{self.name}: source {source!r} names an unknown alias")
        for column in self.money_columns:  # the totals query reads the driving table only
            if column.source is None or split_source(column.source)[0] != self.alias:
                raise ValueError(f"{self.name}.{column.name}: money must come from {self.alias}.*")
        if self.column(self.primary_key).source is None:
            raise ValueError(f"{self.name}: primary key {self.primary_key} has no source")
        if self.freshness and not (
            0 < self.freshness.warn_after_hours <= self.freshness.error_after_hours
        ):
            raise ValueError(f"{self.name}: freshness needs 0 < warn_after <= error_after")
        if self.lookups and LOOKUP_KEY in self.query_columns:
            raise ValueError(f"{self.name}: {LOOKUP_KEY} is the name of a lookup's key")

    @property
    def freshness_source(self) -> str | None:
        """``alias.column`` of the freshness column in the driving table, if any."""
        return f"{self.alias}.{self.freshness.column}" if self.freshness else None

    @property
    def history_name(self) -> str:
        """Its history table: one partition per ``sync_date``, ``ph_<table>_history``."""
        return f"{self.name}_history"

    def _sources(self) -> list[str]:
        return (
            [c.source for c in self.columns if c.source]
            + [i.source for i in self.inputs]
            + [j.parent for j in self.joins]
            + ([self.freshness_source] if self.freshness_source else [])
        )

    @cached_property
    def tables_by_alias(self) -> dict[str, str]:
        """Source table of each alias of the FROM/JOIN clause."""
        return {self.alias: self.source_table, **{j.alias: j.table for j in self.joins}}

    @property
    def key_column(self) -> str:
        """The driving table's primary-key column (chunks are ranges of it)."""
        return split_source(self.column(self.primary_key).source or "")[1]

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
    def query_plan(self) -> tuple[QueryColumn, ...]:
        """The columns the source query returns, in order of first use, with their wire
        types (text for the inputs of derived columns)."""
        sources = {c.name: c for c in self.columns if c.source}
        inputs = {i.name: i for i in self.inputs}
        planned: dict[str, QueryColumn] = {}
        for column in self.columns:
            for name in column.query_inputs:
                if name in planned:
                    continue
                if name in inputs:
                    item = inputs[name]
                    planned[name] = QueryColumn(name, item.source, DERIVATION_INPUT_TYPE, item.pii)
                else:
                    own = sources[name]
                    wire = DERIVATION_INPUT_TYPE if own.derive else own.type
                    planned[name] = QueryColumn(name, own.source or "", wire)
        return tuple(planned.values())

    @cached_property
    def lookups(self) -> tuple[Lookup, ...]:
        """The lookup joins, each with the joins made from its table (see ``Join.lookup``)."""
        groups: list[tuple[Join, list[Join]]] = []
        for join in self.joins:
            parent_alias = split_source(join.parent)[0]
            group = next((g for g in groups if parent_alias in _aliases(*g)), None)
            if group is not None:
                group[1].append(join)
            elif join.lookup:
                groups.append((join, []))
        return tuple(self._lookup(join, nested) for join, nested in groups)

    def _lookup(self, join: Join, nested: list[Join]) -> Lookup:
        aliases = _aliases(join, nested)
        parents = [q for q in self.query_plan if q.source == join.parent]
        if not parents or parents[0].wire_type != "INT64":
            raise ValueError(
                f"{self.name}: lookup {join.table} needs {join.parent} as an INT64 query column"
            )
        if any(j.lookup for j in nested):
            raise ValueError(f"{self.name}: a join from lookup {join.table} is made in its query")
        columns = tuple(q for q in self.query_plan if split_source(q.source)[0] in aliases)
        return Lookup(join, tuple(nested), parents[0].name, columns)

    @property
    def main_joins(self) -> tuple[Join, ...]:
        """The joins the main query makes: those of no lookup."""
        in_lookups = {j for lookup in self.lookups for j in (lookup.join, *lookup.nested)}
        return tuple(j for j in self.joins if j not in in_lookups)

    @property
    def main_plan(self) -> tuple[QueryColumn, ...]:
        """The query columns the main query returns: those no lookup provides."""
        provided = {q.name for lookup in self.lookups for q in lookup.columns}
        return tuple(q for q in self.query_plan if q.name not in provided)

    @property
    def query_columns(self) -> tuple[str, ...]:
        """The names of the columns the source query returns."""
        return tuple(q.name for q in self.query_plan)

    def source_column(self, source: str) -> tuple[str, str]:
        """``(table, column)`` of a source expression ``alias.column``."""
        alias, column = split_source(source)
        return self.tables_by_alias[alias], column

    @cached_property
    def source_columns(self) -> frozenset[tuple[str, str]]:
        """Every ``(table, column)`` of the source that the queries read, joins included."""
        keys = [f"{j.alias}.{j.key}" for j in self.joins]
        return frozenset(self.source_column(s) for s in self._sources() + keys)

    @cached_property
    def source_wire_types(self) -> dict[tuple[str, str], BigQueryType]:
        """The wire type each selected ``(table, column)`` is read in. Columns read only in
        joins are absent. The drift check refuses source types that form cannot hold."""
        return {self.source_column(q.source): q.wire_type for q in self.query_plan}

    def bigquery_schema(self, include_pii: bool = False) -> list[dict[str, str]]:
        """The BigQuery schema (REST representation) with column descriptions."""
        return [c.bigquery_field() for c in self.output_columns(include_pii)]


def _aliases(join: Join, nested: Iterable[Join]) -> set[str]:
    return {join.alias, *(j.alias for j in nested)}


def _id(name: str, source: str, what: str) -> Column:
    return Column(name, "INT64", what, source, mode="REQUIRED")


def _ts(name: str, source: str, what: str) -> Column:
    return Column(name, "TIMESTAMP", what + " UTC; NULL where the source held a zero date.", source)


SYNC_DATE = Column(
    "sync_date",
    "DATE",
    "Day this row was synced (the sync's reporting date, Australia/Melbourne).",
    mode="REQUIRED",
    derive="sync_date",
)
_OCCASION_LABEL = Join("occasion_types", "ot", "key", "l.occasion_type")

PH_LEADS = TableSpec(
    name="ph_leads",
    description="One row per lead (a customer event request), with readable labels.",
    source_table="leads",
    alias="l",
    joins=(_OCCASION_LABEL,),
    primary_key="lead_id",
    cluster_by=("occasion_type", "status"),
    # Leads arrive all day, every day: a day without one is worth a look, three a fault.
    freshness=Freshness("updated_at", warn_after_hours=24, error_after_hours=72),
    columns=(
        _id("lead_id", "l.id", "Primary key: source leads.id."),
        Column(
            "occasion_type",
            "STRING",
            "Occasion key, e.g. 21st_birthday, wedding_reception.",
            "l.occasion_type",
        ),
        Column(
            "occasion_label",
            "STRING",
            "Human label: occasion_types.label, or derived from the key where that table "
            "lacks it (murder_mystery_night -> Murder Mystery Night).",
            "ot.label",
            derive="occasion_label",
        ),
        Column("guest_count", "INT64", "Numeric guest count.", "l.guest_count"),
        Column(
            "guest_count_display",
            "STRING",
            "Guest count as the customer chose it: 50-80.",
            "l.guest_count_display",
        ),
        Column(
            "preferred_date",
            "DATE",
            "Customer's preferred event date; NULL for zero dates.",
            "l.preferred_date",
        ),
        Column("suburb", "STRING", "Primary suburb of the event.", "l.suburb"),
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
            "l.status",
        ),
        Column("base_price", "NUMERIC", "List price from the pricing matrix, AUD.", "l.base_price"),
        Column("current_price", "NUMERIC", "Price after discount, AUD.", "l.current_price"),
        Column(
            "discount_percent",
            "INT64",
            "Current discount, percent.",
            "l.discount_percent",
            mode="REQUIRED",
        ),
        Column(
            "purchase_target",
            "INT64",
            "Fulfilment target, e.g. 3.",
            "l.purchase_target",
            mode="REQUIRED",
        ),
        Column(
            "purchase_count",
            "INT64",
            "Number of purchases so far.",
            "l.purchase_count",
            mode="REQUIRED",
        ),
        _ts("distributed_at", "l.distributed_at", "When the lead was distributed to venues,"),
        _ts("fulfilled_at", "l.fulfilled_at", "When the fulfilment target was met,"),
        _ts("expires_at", "l.expires_at", "When the lead expires,"),
        _ts("created_at", "l.created_at", "Source leads.created_at,"),
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
    inputs=(
        QueryInput("suburb_preferences", "l.suburb_preferences"),
        QueryInput("location_selections", "l.location_selections"),
        # PII leaves MySQL only when the opt-in hashes are on, and is hashed before writing.
        QueryInput("email", "l.email", pii=True),
        QueryInput("phone", "l.phone", pii=True),
    ),
)

PH_VENUES = TableSpec(
    name="ph_venues",
    description="One row per venue, flattened with its area name; balance as at the sync.",
    source_table="venues",
    alias="v",
    joins=(Join("areas", "a", "id", "v.area_id", lookup=True),),
    primary_key="venue_id",
    cluster_by=("venue_id",),
    # A venue row changes with each purchase (its balance): quiet for days is possible.
    freshness=Freshness("updated_at", warn_after_hours=72, error_after_hours=168),
    columns=(
        _id("venue_id", "v.id", "Primary key: source venues.id."),
        Column("business_name", "STRING", "Venue's business name.", "v.business_name"),
        Column(
            "area_id", "INT64", "Source venues.area_id; may point to a missing area.", "v.area_id"
        ),
        Column(
            "area_name",
            "STRING",
            "areas.name; NULL when the venue has no (existing) area.",
            "a.name",
        ),
        Column("suburb", "STRING", "Venue suburb.", "v.suburb"),
        Column("state", "STRING", "Australian state, e.g. VIC.", "v.state"),
        Column("postcode", "STRING", "Postcode.", "v.postcode"),
        Column(
            "status",
            "STRING",
            "pending, active, inactive or suspended (legacy values pass through).",
            "v.status",
        ),
        Column(
            "credit_balance",
            "NUMERIC",
            "Prepaid credit balance as at the sync, AUD; signed.",
            "v.credit_balance",
        ),
        _ts("approved_at", "v.approved_at", "When the venue was approved,"),
        _ts("last_activity_at", "v.last_activity_at", "Last activity of the venue,"),
        _ts("created_at", "v.created_at", "Source venues.created_at,"),
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
    alias="lp",
    joins=(
        Join("leads", "l", "id", "lp.lead_id"),
        _OCCASION_LABEL,
        Join("venues", "v", "id", "lp.venue_id", lookup=True),
        Join("areas", "a", "id", "v.area_id"),  # in the venues lookup's query
    ),
    primary_key="lead_purchase_id",
    cluster_by=("venue_id", "occasion_type"),
    # Purchases are rows written once; a quiet Sunday is normal, five days are not.
    freshness=Freshness("created_at", warn_after_hours=48, error_after_hours=120),
    columns=(
        _id("lead_purchase_id", "lp.id", "Primary key: source lead_purchases.id."),
        Column("lead_id", "INT64", "Purchased lead (source lead_purchases.lead_id).", "lp.lead_id"),
        Column(
            "venue_id", "INT64", "Buying venue (source lead_purchases.venue_id).", "lp.venue_id"
        ),
        Column("occasion_type", "STRING", "Occasion key " + _LEAD_CONTEXT, "l.occasion_type"),
        Column(
            "occasion_label",
            "STRING",
            "Event name, e.g. 21st Birthday: occasion_types.label or derived from the key; "
            "NULL when the lead no longer exists.",
            "ot.label",
            derive="occasion_label",
        ),
        Column("preferred_date", "DATE", "Event date " + _LEAD_CONTEXT, "l.preferred_date"),
        Column("guest_count", "INT64", "Guest count " + _LEAD_CONTEXT, "l.guest_count"),
        Column("lead_suburb", "STRING", "Event suburb " + _LEAD_CONTEXT, "l.suburb"),
        Column(
            "lead_status",
            "STRING",
            "The venue's progress with the lead: contacted, quoted, booked, lost or pending.",
            "lp.lead_status",
        ),
        Column(
            "venue_business_name",
            "STRING",
            "Venue business name; " + _VENUE_CONTEXT,
            "v.business_name",
        ),
        Column("venue_area_name", "STRING", "Venue's area name; NULL when it has none.", "a.name"),
        Column("amount_paid", "NUMERIC", "Revenue for this purchase, AUD.", "lp.amount_paid"),
        Column(
            "discount_percent",
            "INT64",
            "Discount at the time of purchase, percent.",
            "lp.discount_percent",
            mode="REQUIRED",
        ),
        _ts("purchased_at", "lp.created_at", "Purchase time (source lead_purchases.created_at),"),
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
    alias="ct",
    joins=(Join("venues", "v", "id", "ct.venue_id", lookup=True),),
    primary_key="credit_transaction_id",
    cluster_by=("venue_id", "type"),
    freshness=Freshness("created_at", warn_after_hours=48, error_after_hours=120),
    columns=(
        _id("credit_transaction_id", "ct.id", "Primary key: source credit_transactions.id."),
        Column("venue_id", "INT64", "Venue whose balance moved.", "ct.venue_id"),
        Column(
            "venue_business_name",
            "STRING",
            "Venue business name; " + _VENUE_CONTEXT,
            "v.business_name",
        ),
        Column(
            "type",
            "STRING",
            "topup, auto_topup, purchase, refund or adjustment (legacy values pass through).",
            "ct.type",
        ),
        Column("amount", "NUMERIC", "Signed amount, AUD: negative for a purchase.", "ct.amount"),
        Column(
            "balance_after",
            "NUMERIC",
            "Venue balance after this transaction, AUD.",
            "ct.balance_after",
        ),
        Column("lead_purchase_id", "INT64", "Set for type = purchase.", "ct.lead_purchase_id"),
        Column(
            "stripe_payment_intent_id",
            "STRING",
            "Stripe PaymentIntent, for reconciliation.",
            "ct.stripe_payment_intent_id",
        ),
        Column("description", "STRING", "Free-text description.", "ct.description"),
        Column("admin_note", "STRING", "Note by a Partyhelp admin.", "ct.admin_note"),
        _ts("created_at", "ct.created_at", "Source credit_transactions.created_at,"),
        SYNC_DATE,
    ),
    orphan_checks=(OrphanCheck("venue", "venue_id", "venue_business_name"),),
)

PH_LEAD_MATCHES = TableSpec(
    name="ph_lead_matches",
    description="One row per lead-venue match, for the notified -> viewed -> purchased funnel.",
    source_table="lead_matches",
    alias="lm",
    joins=(Join("venues", "v", "id", "lm.venue_id", lookup=True),),
    primary_key="lead_match_id",
    cluster_by=("venue_id", "status"),
    # Matches are written when a lead is distributed, and change when a venue acts.
    freshness=Freshness("updated_at", warn_after_hours=24, error_after_hours=72),
    columns=(
        _id("lead_match_id", "lm.id", "Primary key: source lead_matches.id."),
        Column("lead_id", "INT64", "Matched lead.", "lm.lead_id"),
        Column("venue_id", "INT64", "Matched venue.", "lm.venue_id"),
        Column(
            "venue_business_name",
            "STRING",
            "Venue business name; " + _VENUE_CONTEXT,
            "v.business_name",
        ),
        Column("match_score", "FLOAT64", "Matching score (source DECIMAL(5,2)).", "lm.match_score"),
        Column(
            "status",
            "STRING",
            "notified, viewed, purchased, expired or declined (legacy values pass through).",
            "lm.status",
        ),
        _ts("notified_at", "lm.notified_at", "When the venue was notified,"),
        _ts("viewed_at", "lm.viewed_at", "When the venue viewed the lead,"),
        _ts("purchased_at", "lm.purchased_at", "When the venue bought the lead,"),
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


@dataclass(frozen=True)
class PeriodViewSpec:
    """An aggregate view over one reporting table by reporting period: its columns here, its
    SQL in ``spec/sql.py`` (periods from local dates in the reporting time zone)."""

    name: str
    description: str
    base: TableSpec
    moment: str  # the base table's TIMESTAMP column that places a row in a period
    amount: str  # the base table's money column that revenue sums
    columns: tuple[Column, ...]


SALES_BY_FINANCIAL_PERIOD = PeriodViewSpec(
    name="ph_sales_by_financial_period",
    description="Lead sales by Australian financial year (1 July to 30 June), quarter and "
    "month, per occasion and venue; periods from purchased_at's local date in the reporting "
    "time zone (PARTYHELP_TIMEZONE). Purchases without purchased_at form rows whose period "
    "is NULL. A view over ph_lead_purchases.",
    base=PH_LEAD_PURCHASES,
    moment="purchased_at",
    amount="amount_paid",
    columns=(
        Column(
            "financial_year",
            "STRING",
            "Australian financial year of the purchase's "
            "local date, e.g. FY2026-27 (1 July 2026 to 30 June 2027); NULL without "
            "purchased_at.",
        ),
        Column(
            "fy_quarter",
            "INT64",
            "Quarter of the financial year: 1 = July to September, "
            "4 = April to June; NULL without purchased_at.",
        ),
        Column(
            "month", "DATE", "First day of the purchase's local month; NULL without purchased_at."
        ),
        PH_LEAD_PURCHASES.column("occasion_type"),
        PH_LEAD_PURCHASES.column("occasion_label"),
        PH_LEAD_PURCHASES.column("venue_id"),
        PH_LEAD_PURCHASES.column("venue_business_name"),
        PH_LEAD_PURCHASES.column("venue_area_name"),
        Column("purchases", "INT64", "Purchases in the period.", mode="REQUIRED"),
        Column(
            "revenue",
            "NUMERIC",
            "Sum of amount_paid, AUD (0 when every amount is NULL).",
            mode="REQUIRED",
        ),
        Column(
            "average_sale",
            "NUMERIC",
            "revenue / purchases, AUD, rounded to the cent (half away from zero).",
            mode="REQUIRED",
        ),
    ),
)
VIEWS: tuple[ViewSpec | PeriodViewSpec, ...] = (SALES_BILLING_SUMMARY, SALES_BY_FINANCIAL_PERIOD)


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
        Column(
            "load_job_id",
            "STRING",
            "BigQuery load job id (several, comma-separated, "
            "when the parts took more than one job).",
        ),
        Column(
            "copy_job_id",
            "STRING",
            "BigQuery copy job that published the table; NULL "
            "when the run left the current table alone (an older day's replay).",
        ),
        Column("started_at", "TIMESTAMP", "When the table's export (or replay) started."),
        Column("ended_at", "TIMESTAMP", "When the table's load finished or failed."),
        Column("error", "STRING", "First line of the error, for a failed table."),
        Column(
            "current_replaced",
            "BOOL",
            "Whether the run replaced the current table; "
            "false when it filled only its day's history partition (a replay of an "
            "older day). NULL in rows written before the history tables existed.",
        ),
    ),
)


@dataclass(frozen=True)
class AuditViewSpec:
    """A view over the audit table: its columns here, its SQL in ``spec/sql.py``."""

    name: str
    description: str
    base: AuditTableSpec
    columns: tuple[Column, ...]


FRESHNESS_VIEW = AuditViewSpec(
    name="ph_sync_freshness",
    description="Freshness: one row per reporting table with its last completed sync, the "
    "hours since, its rows and the change against the completed run before; a view over "
    "ph_sync_runs.",
    base=AUDIT_TABLE,
    columns=(
        Column("table_name", "STRING", "Reporting table, e.g. ph_leads."),
        Column("sync_date", "DATE", "Reporting day of the last completed run."),
        Column(
            "synced_at",
            "TIMESTAMP",
            "When the last completed run published the table (its ended_at).",
        ),
        Column("hours_since", "FLOAT64", "Hours from synced_at to the time of the query, to 0.01."),
        Column("rows_loaded", "INT64", "Rows the last completed run published."),
        Column(
            "previous_rows_loaded",
            "INT64",
            "Rows the completed run before it "
            "published; NULL while the table has completed only once.",
        ),
        Column(
            "rows_change",
            "INT64",
            "rows_loaded - previous_rows_loaded: negative when "
            "rows went away; NULL while the table has completed only once.",
        ),
        Column("flow_run_id", "STRING", "Prefect flow run of the last completed run."),
    ),
)


METRICS_TABLE = AuditTableSpec(
    name="ph_sync_metrics",
    description="Volume and freshness metrics: one row per reporting table per published "
    "day, replaced when the day is synced or replayed again; DAY-partitioned on sync_date.",
    columns=(
        Column("sync_date", "DATE", "Published day the metrics describe.", mode="REQUIRED"),
        Column("table_name", "STRING", "Reporting table, e.g. ph_leads.", mode="REQUIRED"),
        Column("mode", "STRING", "sync (read MySQL) or replay (reloaded kept exports)."),
        Column("flow_run_id", "STRING", "Prefect flow run that measured the day."),
        Column("export_id", "STRING", "Export attempt the day was loaded from."),
        Column("rows", "INT64", "Rows of the day's history partition.", mode="REQUIRED"),
        Column(
            "rows_added",
            "INT64",
            "Primary keys in the day that the previous published day lacked; NULL on the "
            "table's first published day.",
        ),
        Column(
            "rows_removed",
            "INT64",
            "Primary keys of the previous published day gone from the day; NULL on the "
            "table's first published day.",
        ),
        Column(
            "previous_sync_date",
            "DATE",
            "The published day rows_added and rows_removed compare with (the latest earlier "
            "partition of the history); NULL on the first.",
        ),
        Column("money_totals", "STRING", 'JSON: money column -> exported total, "1234.50" AUD.'),
        Column("null_counts", "STRING", "JSON: output column -> NULL cells in the day."),
        Column("freshness_column", "STRING", "Source column the freshness is judged on."),
        Column("newest_at", "TIMESTAMP", "Newest value of the freshness column, UTC."),
        Column("snapshot_at", "TIMESTAMP", "The source server's clock at the export's snapshot."),
        Column("freshness_hours", "FLOAT64", "snapshot_at - newest_at, in hours."),
        Column("freshness_status", "STRING", "fresh, warn, stale, unknown or off."),
        Column("anomalies", "STRING", "Metrics flagged on the day, comma-separated; empty: none."),
        Column("recorded_at", "TIMESTAMP", "When the row was written."),
    ),
)


HEALTH_VIEW = AuditViewSpec(
    name="ph_sync_health",
    description="Health: each reporting table's metrics for its published days of the last "
    "90 days, with its anomalies counted and whether the day looks normal; a view over "
    "ph_sync_metrics, for dashboards.",
    base=METRICS_TABLE,
    columns=(
        Column("sync_date", "DATE", "Published day."),
        Column("table_name", "STRING", "Reporting table, e.g. ph_leads."),
        Column("rows", "INT64", "Rows of the day."),
        Column("rows_added", "INT64", "New primary keys since the previous published day."),
        Column("rows_removed", "INT64", "Primary keys gone since the previous published day."),
        Column("freshness_column", "STRING", "Source column the freshness is judged on."),
        Column("newest_at", "TIMESTAMP", "Newest value of the freshness column, UTC."),
        Column("freshness_hours", "FLOAT64", "Age of the newest value at the snapshot, hours."),
        Column("freshness_status", "STRING", "fresh, warn, stale, unknown or off."),
        Column("anomalies", "STRING", "Metrics flagged on the day, comma-separated."),
        Column("anomaly_count", "INT64", "How many metrics were flagged; 0 when none."),
        Column(
            "is_normal",
            "BOOL",
            "No anomaly and a source neither warn nor stale (fresh, off, unknown or not "
            "recorded count as normal).",
        ),
        Column("mode", "STRING", "sync or replay."),
        Column("recorded_at", "TIMESTAMP", "When the metrics row was written."),
    ),
)
