"""Labels: of every BigQuery job of a run (cost and lineage), and of the dataset, tables and
views (where the data comes from, whether it holds hashed personal data)."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType

from partyhelp_pipeline.manifest import Manifest
from partyhelp_pipeline.spec import TableSpec

PIPELINE_LABEL = "partyhelp-bigquery-sync"  # the flow's name
SOURCE_LABEL = "partyhelp-mysql"
_NOT_LABEL_TEXT = re.compile(r"[^a-z0-9_-]")
_JOB_LABELS: ContextVar[Mapping[str, str]] = ContextVar(
    "partyhelp_job_labels", default=MappingProxyType({})
)


def label_value(text: str) -> str:
    """``text`` as BigQuery accepts a label value: lowercase letters, digits, ``_`` and
    ``-`` (anything else becomes ``-``), at most 63 characters."""
    return _NOT_LABEL_TEXT.sub("-", text.lower())[:63]


def job_labels(table: str, sync_date: dt.date, flow_run_id: str | None) -> dict[str, str]:
    """The labels of every BigQuery job of a run, for cost and lineage: the pipeline, the
    table the job is for, the reporting day (``2026-11-25``) and the Prefect flow run
    (``local`` outside one)."""
    return {
        "pipeline": PIPELINE_LABEL,
        "table": label_value(table),
        "sync_date": label_value(sync_date.isoformat()),
        "flow_run": label_value(str(flow_run_id or "local")),
    }


@contextlib.contextmanager
def labelled_jobs(labels: Mapping[str, str]) -> Iterator[None]:
    """Every job this context (thread, task) starts inside the block carries ``labels``:
    load, copy and query jobs, whichever helper starts them."""
    token = _JOB_LABELS.set(MappingProxyType(dict(labels)))
    try:
        yield
    finally:
        _JOB_LABELS.reset(token)


def current_job_labels() -> dict[str, str]:
    """The labels of ``labelled_jobs`` around the caller; none outside it."""
    return dict(_JOB_LABELS.get())


def resource_labels(pii: bool) -> dict[str, str]:
    """The labels of the dataset and of a table or view: where the data comes from, and
    whether it holds (hashed) personal data."""
    return {"source": SOURCE_LABEL, "pii": "hashed" if pii else "none"}


def pii_labels(spec: TableSpec, column_names: Iterable[str]) -> dict[str, str]:
    """``resource_labels`` of a table of ``spec`` with these columns: ``pii`` is ``hashed``
    when one of them is one of the spec's hashed PII columns."""
    hashed = {column.name for column in spec.columns if column.pii}
    return resource_labels(bool(hashed & set(column_names)))


def loaded_table_labels(spec: TableSpec, manifest: Manifest) -> dict[str, str]:
    """``pii_labels`` of a table loaded from ``manifest``."""
    return pii_labels(spec, (field["name"] for field in manifest.bigquery_schema))


def labels_differ(current: Mapping[str, str] | None, wanted: Mapping[str, str]) -> bool:
    """Whether a resource's labels lack one of ``wanted`` (other labels are left alone)."""
    return any((current or {}).get(key) != value for key, value in wanted.items())
