"""The pre-flight check: is every setting, credential and resource the sync needs in place?

``main_check`` (the command ``python -m flows.partyhelp_sync check``) prints one line per
check, ``ok`` or ``FAIL`` with what was found, and returns 0 when every check passed, 1
otherwise. In order:

- ``settings``: every missing or bad setting, named at once (``load_settings``);
- ``prefect``: how this process reaches Prefect (``check_prefect``, run whatever the
  settings): Prefect Cloud with an API key; a server that took ``PREFECT_API_AUTH_STRING``
  (proved by one ``GET /version``); an open server, a FAIL unless on loopback, since anyone
  who reaches it reads the secrets through its API; or none (a temporary local server). A
  server that does not answer within ``PREFECT_TIMEOUT_SECONDS`` is a FAIL. The line also
  fails naming each deployment of ``partyhelp-bigquery-sync`` whose job variables (or their
  ``env``) hold a secret setting in plain text, and the variable, never its value;
- ``mysql``: the user connects, and has SELECT only on the database. A user that could
  write (anything beyond SELECT, USAGE and SHOW VIEW on the database, one of its tables or
  globally) is a FAIL: the sync never writes to MySQL, and its credentials must not be able
  to. The flow itself does not run this check, so such a user does not stop the sync;
- ``bucket``: it exists, and one create-only object (``PREFIX/_preflight/<time>-<random>``)
  can be written under the prefix; it is deleted again at once;
- ``location``: the bucket's location against the dataset's (or, for a dataset the flow
  will create, ``PARTYHELP_BQ_LOCATION``): BigQuery loads only from a bucket colocated with
  the dataset (except into its US multi-region, which loads from anywhere);
- ``bigquery``: a dry-run query of the dataset's ``INFORMATION_SCHEMA.TABLES`` (``SELECT 1``
  when the dataset does not exist yet): a job can be created and the tables listed. The
  BigQuery emulator runs dry runs (it parses and resolves the query, runs nothing) but
  checks no permissions, and the line says so;
- ``drift``: every spec against the source's columns (``drift.check_source_schema``);
- ``plan <table>``: the chunk plan of each table, with its row count, in one snapshot;
- ``freshness <table>``: the newest value of the table's freshness column and its age on
  the source's clock, against its limits (``freshness.py``): past ``warn_after`` is a
  WARNING; past ``error_after`` a FAIL when a sync would refuse it (the limit is
  ``PARTYHELP_MAX_SOURCE_AGE_HOURS``, or the table has been fresh on a published day).

A check that needs an earlier one that failed says ``not checked`` (and counts as failed).
Nothing is written but the test object; MySQL is only read (in ``READ ONLY`` snapshots).
Every call to GCS and BigQuery has a per-request timeout and a retry window of at most
``RETRY_WINDOW_SECONDS`` (less when ``PARTYHELP_GCS_RETRY_SECONDS`` /
``PARTYHELP_BQ_RETRY_SECONDS`` say so), so a dead endpoint fails its line within that.

The flow's first task calls ``cheap_checks``: GCS answers and the bucket exists (a
metadata read, nothing written), BigQuery answers and the bucket's location suits the
dataset's, before MySQL is read. A service that does not answer within its window fails
its line in one sentence naming it, its address and what to do
(``clients.unreachable_error``), carried as ``CheckResult.unreachable``: the flow fails
with it, before anything is exported. No function here raises for a failed check: each
returns ``CheckResult``s.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TextIO
from urllib.parse import urlsplit

import httpx
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import bigquery
from google.cloud.storage.retry import DEFAULT_RETRY as GCS_RETRY
from pydantic import SecretStr

from partyhelp_pipeline import freshness
from partyhelp_pipeline.clients import (
    bigquery_client,
    call_options,
    query_options,
    storage_client,
    unreachable_error,
)
from partyhelp_pipeline.clock import utc_now
from partyhelp_pipeline.drift import check_source_schema
from partyhelp_pipeline.errors import SchemaDriftError, ServiceUnreachableError
from partyhelp_pipeline.freshness import Limits
from partyhelp_pipeline.settings import ConfigError, Settings, load_settings
from partyhelp_pipeline.source import connect, fetch_one, plan_chunks, snapshot
from partyhelp_pipeline.spec import TABLES
from partyhelp_pipeline.spec.sql import FRESHNESS_NEWEST, SNAPSHOT_AT, source_freshness_query
from partyhelp_pipeline.warehouse import metrics
from partyhelp_pipeline.warehouse.target import open_warehouse

CALL_TIMEOUT_SECONDS = 10.0  # one HTTP request to GCS or BigQuery
RETRY_WINDOW_SECONDS = 30.0  # all the retries of one call
PREFLIGHT_FOLDER = "_preflight"  # under PARTYHELP_GCS_PREFIX: the one test object
READ_ONLY_PRIVILEGES = frozenset({"SELECT", "USAGE", "SHOW VIEW"})
SETUP = "run python -m scripts.setup (docs/OPERATIONS.md, section 1)"
IAM = "docs/OPERATIONS.md, section 8"
# The checks after ``settings``, named when they cannot run.
LATER_CHECKS = ("mysql", "bucket", "location", "bigquery", "drift", "plan")


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, and what was found (one line)."""

    name: str
    ok: bool
    detail: str
    # Set when the check's service did not answer for its whole window: the flow fails
    # with it, whatever else it lets pass (a location on the emulators).
    unreachable: ServiceUnreachableError | None = field(default=None, compare=False, repr=False)

    @property
    def line(self) -> str:
        """``ok    name: detail`` or ``FAIL  name: detail``, on one line."""
        detail = " ".join(self.detail.splitlines())
        return f"{'ok' if self.ok else 'FAIL':<6}{self.name}: {detail}"


def _one_line(error: BaseException) -> str:
    """An error's first non-empty line (its type's name when it has none)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _guarded(name: str, check: Callable[[], CheckResult], context: str = "") -> CheckResult:
    """``check()``, or a FAIL naming the unexpected error (after ``context``, e.g. what was
    being asked of whom): a check never raises."""
    try:
        return check()
    except Exception as exc:
        lead = f"{context}: " if context else ""
        return CheckResult(name, False, f"{lead}{type(exc).__name__}: {_one_line(exc)}")


def _not_checked(name: str, needs: str) -> CheckResult:
    return CheckResult(name, False, f"not checked: needs {needs}")


def _unanswered(
    name: str, settings: Settings, service: str, exc: BaseException
) -> CheckResult | None:
    """A FAIL whose detail is the one sentence of a ``service`` that did not answer for
    its window (``clients.unreachable_error``), or None when it answered."""
    configured = settings.bq_retry_seconds if service == "BigQuery" else settings.gcs_retry_seconds
    error = unreachable_error(settings, service, _window(configured), exc)
    return None if error is None else CheckResult(name, False, str(error), error)


def _bigquery_guarded(
    name: str, check: Callable[[], CheckResult], settings: Settings
) -> CheckResult:
    """``_guarded`` for a check that asks BigQuery: a BigQuery that does not answer is
    named as such, with its address and what to do."""
    try:
        return check()
    except Exception as exc:
        down = _unanswered(name, settings, "BigQuery", exc)
        if down:
            return down
        return CheckResult(
            name,
            False,
            (
                f"BigQuery, asked for dataset {settings.bq_project}.{settings.bq_dataset}: "
                f"{type(exc).__name__}: {_one_line(exc)}"
            ),
        )


# ------------------------------------------------------------------ retry windows


def _window(configured: float | None) -> float:
    return RETRY_WINDOW_SECONDS if configured is None else min(configured, RETRY_WINDOW_SECONDS)


def bounded(settings: Settings) -> Settings:
    """``settings`` whose Google calls retry for at most ``RETRY_WINDOW_SECONDS``: the
    dataset lookup ``clients.bigquery_client`` makes when it builds the client included."""
    return settings.model_copy(
        update={
            "bq_retry_seconds": _window(settings.bq_retry_seconds),
            "gcs_retry_seconds": _window(settings.gcs_retry_seconds),
        }
    )


def _gcs_call(settings: Settings) -> dict[str, Any]:
    """``timeout`` and ``retry`` of one GCS call."""
    retry: Retry = GCS_RETRY
    return {
        "timeout": CALL_TIMEOUT_SECONDS,
        "retry": retry.with_timeout(_window(settings.gcs_retry_seconds)),
    }


def _bigquery(settings: Settings) -> bigquery.Client:
    """``bigquery_client`` for these settings, bounded: building it looks the dataset up, and
    that request too ends within the bounded window."""
    return bigquery_client(bounded(settings))


def _bq_call(settings: Settings) -> dict[str, Any]:
    """``timeout`` and ``retry`` of one BigQuery call (``clients.call_options``)."""
    return call_options(_window(settings.bq_retry_seconds), CALL_TIMEOUT_SECONDS)


def _bq_query(settings: Settings) -> dict[str, Any]:
    """``_bq_call`` and the ``job_retry`` of a query (``clients.query_options``)."""
    return query_options(_window(settings.bq_retry_seconds), CALL_TIMEOUT_SECONDS)


# ------------------------------------------------------------------ settings


def check_settings(
    env: Mapping[str, str] | None,
    mysql_password: str | None = None,
    pii_salt: str | None = None,
    load: Callable[[], Settings] | None = None,
) -> tuple[CheckResult, Settings | None]:
    """Every setting read and validated (by ``load`` when given: the flow's reader, with
    secrets from Prefect blocks); the settings when they are all good."""
    try:
        settings = (
            load() if load else load_settings(env, mysql_password=mysql_password, pii_salt=pii_salt)
        )
    except ConfigError as exc:
        return CheckResult("settings", False, str(exc)), None
    except Exception as exc:  # not expected: load_settings reports in ConfigErrors
        return CheckResult("settings", False, f"{type(exc).__name__}: {_one_line(exc)}"), None
    prefix = f"/{settings.gcs_prefix}/" if settings.gcs_prefix else "/"
    where = " (emulators)" if settings.uses_emulators else ""
    clock = (
        f"; WARNING: the test clock PARTYHELP_CLOCK_DATE={settings.clock_date} is set: "
        "every sync takes that day as today (unset it in production)"
        if settings.clock_date
        else ""
    )
    return CheckResult(
        "settings",
        True,
        (
            f"MySQL {settings.mysql_user}@{settings.mysql_host}:{settings.mysql_port}/"
            f"{settings.mysql_database}, gs://{settings.gcs_bucket}{prefix}, BigQuery "
            f"{settings.bq_project}.{settings.bq_dataset}{where}{clock}"
        ),
    ), settings


# ------------------------------------------------------------------ MySQL


_GRANT = re.compile(
    r"^GRANT (?P<privileges>.+?) ON (?:(?:PROCEDURE|FUNCTION|PACKAGE BODY|"
    r"PACKAGE) )?(?P<scope>\S+) TO ",
    re.IGNORECASE,
)
# MySQL 8 with partial_revokes on prints a privilege taken back from one database of a
# global grant as a REVOKE line: ``REVOKE INSERT ON `world`.* FROM `u1`@`%```.
_REVOKE = re.compile(r"^REVOKE (?P<privileges>.+?) ON (?P<scope>\S+) FROM ", re.IGNORECASE)
# A role granted: ``GRANT `r1`@`%`,`r2`@`%` TO `u`@`h``` (MySQL 8), ``GRANT `r1` TO ...``
# (MariaDB): no ON clause.
_ROLE_GRANT = re.compile(r"^GRANT (?P<roles>`.+?) TO (?P<grantee>\S+)", re.IGNORECASE)
_QUOTED = r"`(?:[^`]|``)*`"
_ROLE = re.compile(rf"{_QUOTED}(?:@{_QUOTED})?")
_SCOPE = re.compile(r"^(?:`(?P<quoted>(?:[^`]|``)+)`|(?P<plain>[^.`]+))\.(?P<table>.+)$")


def _database_matches(pattern: str, database: str) -> bool:
    """Whether a grant's database (``*``, a name, or a LIKE pattern: ``_`` and ``%`` are
    wildcards unless escaped, as MySQL reads database grants) covers ``database``."""
    if pattern == "*":
        return True
    regex = []
    for token in re.findall(r"\\.|%|_|[^\\%_]+|\\", pattern):
        if token in ("%", "_"):
            regex.append(".*" if token == "%" else ".")
        else:
            regex.append(re.escape(token[1:] if len(token) == 2 and token[0] == "\\" else token))
    return re.fullmatch("".join(regex), database, re.IGNORECASE | re.DOTALL) is not None


@dataclass(frozen=True)
class _Line:
    """One GRANT or REVOKE line of ``SHOW GRANTS`` on data, for one database."""

    revoke: bool
    privileges: tuple[str, ...]  # upper case, column lists dropped
    scope: str  # as printed: *.*, `db`.*, `db`.`table`
    table: str | None  # None for a global or database-wide line


def _lines_on(grants: list[str], database: str) -> list[_Line]:
    """The GRANT and REVOKE lines whose scope covers ``database`` (globally, the database,
    or one of its tables); role grants and proxies are not privileges on data."""
    found = []
    for grant in grants:
        match = _GRANT.match(grant) or _REVOKE.match(grant)
        scope = _SCOPE.match(match.group("scope")) if match else None
        if match is None or scope is None:
            continue
        db = scope.group("plain") or scope.group("quoted").replace("``", "`")
        if not _database_matches(db, database):
            continue
        named = re.sub(r"\s*\([^)]*\)", "", match.group("privileges"))  # column lists
        privileges = [p.strip().upper() for p in named.split(",") if p.strip()]
        if re.search(r"WITH GRANT OPTION", grant, re.IGNORECASE):
            privileges.append("GRANT OPTION")
        table = scope.group("table")
        found.append(
            _Line(
                grant.upper().startswith("REVOKE"),
                tuple(privileges),
                match.group("scope"),
                None if table == "*" else table.strip("`").replace("``", "`"),
            )
        )
    return found


def _revoked(lines: list[_Line]) -> set[str]:
    """Privileges a partial revoke takes back from the whole database."""
    return {p for line in lines if line.revoke for p in line.privileges}


def write_privileges(grants: list[str], database: str) -> list[str]:
    """``PRIVILEGES on scope`` for each ``SHOW GRANTS`` line that gives more than reading
    on ``database`` (there, on one of its tables, or globally).

    A global privilege that a partial revoke (MySQL 8 ``partial_revokes``) takes back from
    ``database`` still counts, marked so: it writes to every other schema, new ones and
    the ``mysql`` system schema included, and the sync's credentials must write nowhere."""
    lines = _lines_on(grants, database)
    revoked = _revoked(lines)
    found = []
    for line in lines:
        if line.revoke:
            continue
        extra = [p for p in line.privileges if p not in READ_ONLY_PRIVILEGES]
        if extra:
            note = (
                f" (revoked on `{database}` only)"
                if line.scope == "*.*" and set(extra) <= revoked
                else ""
            )
            found.append(f"{', '.join(extra)} on {line.scope}{note}")
    return found


def read_problem(grants: list[str], database: str, tables: frozenset[str]) -> str | None:
    """Why the ``SHOW GRANTS`` lines give no SELECT on ``database`` (every one of
    ``tables``), or None when they do. SELECT reaches the database from a global grant
    that no partial revoke takes back, a grant on the database, or one on each table."""
    lines = _lines_on(grants, database)
    revoked = _revoked(lines)
    granted = [
        line
        for line in lines
        if not line.revoke and {"SELECT", "ALL PRIVILEGES", "ALL"} & set(line.privileges)
    ]
    if any(
        line.table is None and not (line.scope == "*.*" and "SELECT" in revoked) for line in granted
    ):
        return None
    if "SELECT" in revoked and any(line.scope == "*.*" for line in granted):
        return f"SELECT on `{database}`.* is revoked (partial_revokes)"
    missing = sorted(
        t for t in tables if not any((line.table or "").lower() == t.lower() for line in granted)
    )
    if not missing:
        return None
    return f"no SELECT on `{database}`.* nor on {', '.join(missing)}"


def granted_roles(grants: list[str]) -> list[str]:
    """The roles (as printed, quoted) that ``SHOW GRANTS`` lines grant to a user account
    (``user@host``), in order; not those MariaDB lists as granted to another role."""
    roles: list[str] = []
    for line in grants:
        match = _ROLE_GRANT.match(line)
        if match is None or "@" not in match.group("grantee"):
            continue
        roles += [r for r in _ROLE.findall(match.group("roles")) if r not in roles]
    return roles


def _show(cursor: Any, statement: str) -> list[str]:
    cursor.execute(statement)
    return [str(row[0]) for row in cursor.fetchall()]


@dataclass(frozen=True)
class OwnGrants:
    """The session user's ``SHOW GRANTS`` lines: with its active roles' (what this session
    may do: a read needs these), and with every role granted to it (what it could do
    after a ``SET ROLE``: a write privilege in any of them counts)."""

    active: list[str]
    every: list[str]


def _roles_grants(cursor: Any, lines: list[str], roles: list[str], mariadb: bool) -> list[str]:
    """``lines`` with the privileges of ``roles`` (granted to the session user)."""
    if not roles:
        return lines
    if not mariadb:  # the role names are the server's own quoted output
        return _show(cursor, f"SHOW GRANTS FOR CURRENT_USER() USING {', '.join(roles)}")
    # MariaDB shows a role's grants only while it is active (``SHOW GRANTS FOR role`` of an
    # inactive one needs the mysql schema): activate each in turn, in this session only.
    more = list(lines)
    for role in roles:
        cursor.execute(f"SET ROLE {role}")
        more += [line for line in _show(cursor, "SHOW GRANTS") if line not in more]
    return more


def _own_grants(connection: Any) -> OwnGrants:
    """The session user's grants, its roles' included.

    MySQL 8 lists a role's privileges only with ``USING`` (``SHOW GRANTS FOR CURRENT_USER()
    USING `r`@`%```), and its active roles are ``CURRENT_ROLE()`` (at login: the default
    roles, or all with ``activate_all_roles_on_login``). MariaDB has no USING: its
    ``SHOW GRANTS`` lists the active role's privileges, so each granted role is activated
    in turn (``SET ROLE``, in this session, which is closed afterwards). (MySQL's
    ``mandatory_roles``, given to every account without a grant, are not read.)"""
    try:
        with connection.cursor() as cursor:
            lines = _show(cursor, "SHOW GRANTS")
            roles = granted_roles(lines)
            if not roles:
                return OwnGrants(lines, lines)
            cursor.execute("SELECT VERSION(), CURRENT_ROLE()")
            version, current = cursor.fetchone()
            mariadb = "mariadb" in str(version).lower()
            active = (
                lines
                if mariadb
                else _roles_grants(
                    cursor,
                    lines,
                    [r for r in _ROLE.findall(str(current or "")) if r in roles],
                    mariadb,
                )
            )
            return OwnGrants(active, _roles_grants(cursor, lines, roles, mariadb))
    finally:
        connection.close()


def check_mysql(settings: Settings) -> tuple[CheckResult, bool]:
    """The user connects, can read the database and can only read (its own grants and its
    roles'); and whether it connected."""
    mysql = settings.mysql
    try:
        connection = connect(mysql)
    except Exception as exc:
        return CheckResult("mysql", False, _one_line(exc)), False
    where = f"connected to {mysql.host}:{mysql.port} as {mysql.user}"
    try:
        grants = _own_grants(connection)
    except Exception as exc:
        return CheckResult(
            "mysql", False, f"{where}, but SHOW GRANTS failed: {_one_line(exc)}"
        ), True
    tables = frozenset(t for spec in TABLES.values() for t in spec.tables_by_alias.values())
    unreadable = read_problem(grants.active, mysql.database, tables)
    if unreadable:
        return CheckResult(
            "mysql",
            False,
            (
                f"{where}, which cannot read `{mysql.database}`: {unreadable}. The sync needs "
                f"GRANT SELECT ON `{mysql.database}`.* (directly or through a role)"
            ),
        ), True
    extra = write_privileges(grants.every, mysql.database)
    if extra:
        return CheckResult(
            "mysql",
            False,
            (
                f"{where}, which could write: {'; '.join(extra)}. The sync needs SELECT only on "
                f"`{mysql.database}`: revoke the rest"
            ),
        ), True
    return CheckResult("mysql", True, f"{where}; SELECT only on `{mysql.database}`"), True


# ------------------------------------------------------------------ GCS


def _read_bucket(settings: Settings) -> tuple[CheckResult, Any]:
    """The bucket's metadata (a read, no write), or a FAIL naming the bucket."""
    name = f"gs://{settings.gcs_bucket}"
    try:
        bucket = storage_client(settings).get_bucket(settings.gcs_bucket, **_gcs_call(settings))
    except gexc.NotFound:
        return CheckResult("bucket", False, f"{name} does not exist: {SETUP}"), None
    except gexc.Forbidden as exc:
        return CheckResult(
            "bucket",
            False,
            (
                f"{name}: no permission to read the bucket ({_one_line(exc)}): grant "
                f"roles/storage.legacyBucketReader on it ({IAM})"
            ),
        ), None
    except Exception as exc:
        down = _unanswered("bucket", settings, "GCS", exc)
        return down or CheckResult(
            "bucket", False, f"{name}: GCS did not answer: {_one_line(exc)}"
        ), None
    return CheckResult("bucket", True, f"{name} exists ({bucket.location})"), bucket


def preflight_object_name(prefix: str) -> str:
    """A new, unique name for the test object, under ``prefix``."""
    stamp = f"{utc_now():%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    return "/".join(part for part in (prefix, PREFLIGHT_FOLDER, stamp) if part)


def _write_test(settings: Settings, bucket: Any, found: CheckResult) -> CheckResult:
    """One create-only object written under the prefix, then deleted."""
    uri = f"gs://{settings.gcs_bucket}/{preflight_object_name(settings.gcs_prefix)}"
    blob = bucket.blob(uri.split("/", 3)[3])
    try:
        blob.upload_from_string(
            b"partyhelp pre-flight check\n",
            content_type="text/plain",
            if_generation_match=0,
            **_gcs_call(settings),
        )
    except Exception as exc:
        hint = (
            f": grant roles/storage.objectCreator under the prefix ({IAM})"
            if isinstance(exc, gexc.Forbidden)
            else ""
        )
        return CheckResult(
            "bucket", False, f"{found.detail}, but writing {uri} failed: {_one_line(exc)}{hint}"
        )
    try:
        blob.delete(**_gcs_call(settings))  # this generation only: blob holds it
    except gexc.NotFound:
        pass  # a retried delete that had succeeded
    except Exception as exc:
        return CheckResult(
            "bucket",
            False,
            (
                f"{found.detail} and can be written, but the test object {uri} could not be "
                f"deleted ({_one_line(exc)}): delete it, and allow the deletion under "
                f"{PREFLIGHT_FOLDER}/ (docs/OPERATIONS.md, Pre-flight check)"
            ),
        )
    return CheckResult(
        "bucket", True, f"{found.detail} and can be written (wrote and deleted {uri})"
    )


# ------------------------------------------------------------------ BigQuery


def _find_dataset(settings: Settings, client: bigquery.Client) -> bigquery.Dataset | None:
    try:
        return client.get_dataset(
            f"{settings.bq_project}.{settings.bq_dataset}", **_bq_call(settings)
        )
    except gexc.NotFound:
        return None


# Regions are compared as BigQuery names them (lower case); GCS says ``AUSTRALIA-SOUTHEAST1``.
def location_problem(bucket_location: str, dataset_location: str) -> str | None:
    """Why BigQuery would refuse to load this bucket's objects into this dataset, or None.

    BigQuery's rule: a dataset in the US multi-region loads from any bucket; any other
    dataset loads from a bucket in its own region, or, for the EU multi-region, from a
    bucket inside it (taken here as a ``europe-*`` region or an ``eur*`` dual-region).
    """
    bucket, dataset = bucket_location.lower(), dataset_location.lower()
    if dataset == "us" or bucket == dataset:
        return None
    if dataset == "eu" and bucket.startswith(("europe-", "eur")):
        return None
    return "BigQuery loads into it only from a bucket in that location" + (
        " or inside it" if dataset == "eu" else ""
    )


def _location(settings: Settings, bucket: Any) -> CheckResult:
    client = _bigquery(settings)
    reference = f"{settings.bq_project}.{settings.bq_dataset}"
    dataset = _find_dataset(settings, client)
    if dataset is None:
        where = settings.bq_location
        subject = (
            f"dataset {reference} does not exist: it will be created in "
            f"PARTYHELP_BQ_LOCATION={where}"
        )
    else:
        where = dataset.location or "US"  # BigQuery's default location
        subject = f"dataset {reference} is in {where}"
    held = f"bucket gs://{settings.gcs_bucket} is in {bucket.location}"
    problem = location_problem(str(bucket.location), where)
    if problem:
        return CheckResult("location", False, f"{subject}, but {held}: {problem}")
    return CheckResult("location", True, f"{subject}; {held}: BigQuery can load from it")


def check_location(settings: Settings, bucket: Any) -> CheckResult:
    """The location of ``bucket`` (as ``get_bucket`` returned it) against the dataset's."""
    return _bigquery_guarded("location", partial(_location, settings, bucket), settings)


def _dry_run(settings: Settings) -> CheckResult:
    client = _bigquery(settings)
    reference = f"{settings.bq_project}.{settings.bq_dataset}"
    exists = _find_dataset(settings, client) is not None
    what = f"{reference}.INFORMATION_SCHEMA.TABLES" if exists else "SELECT 1"
    sql = f"SELECT table_name FROM `{what}`" if exists else what
    config = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False)
    try:
        client.query(sql, job_config=config, **_bq_query(settings))
    except (gexc.Forbidden, gexc.Unauthorized) as exc:
        return CheckResult(
            "bigquery",
            False,
            (
                f"dry-run query of {what} refused: {_one_line(exc)}: grant roles/bigquery.jobUser "
                f"on the project and roles/bigquery.dataEditor on {reference} ({IAM})"
            ),
        )
    proves = (
        "jobs can be created and its tables listed"
        if exists
        else f"jobs can be created ({reference} does not exist yet)"
    )
    if settings.bigquery_emulator_host:
        return CheckResult(
            "bigquery",
            True,
            (
                f"dry-run query of {what} accepted by the BigQuery emulator, which checks no "
                f"permissions; on BigQuery it proves {proves}"
            ),
        )
    return CheckResult("bigquery", True, f"dry-run query of {what} accepted: {proves}")


def check_bigquery(settings: Settings) -> CheckResult:
    """A dry-run query: BigQuery answers, and this identity may run jobs on the dataset."""
    return _bigquery_guarded("bigquery", partial(_dry_run, settings), settings)


# ------------------------------------------------------------------ the source


def check_drift(settings: Settings) -> CheckResult:
    """Every spec against the source's columns, in one look at information_schema."""
    specs = list(TABLES.values())
    try:
        check_source_schema(settings.mysql, specs)
    except SchemaDriftError as exc:
        return CheckResult("drift", False, str(exc))
    columns = sum(len(spec.source_columns) for spec in specs)
    return CheckResult(
        "drift",
        True,
        f"the {columns} source columns of the {len(specs)} "
        "tables are present, in types the export holds exactly",
    )


def _plan_one(settings: Settings, connection: Any, table: str) -> CheckResult:
    spec = TABLES[table]
    chunks = plan_chunks(connection, spec.source_table, settings.chunk_rows, spec.key_column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM `{spec.source_table}`")  # a spec's own name
        (rows,) = cursor.fetchone()
    first, last = chunks[0][0], chunks[-1][1]
    span = f"ids {first:,}..{last:,}" if rows else "empty"
    return CheckResult(
        f"plan {table}",
        True,
        (
            f"{int(rows):,} rows of {spec.source_table} in {len(chunks)} chunk"
            f"{'' if len(chunks) == 1 else 's'} of at most {settings.chunk_rows:,} rows ({span})"
        ),
    )


def _freshness_one(settings: Settings, connection: Any, table: str) -> CheckResult:
    spec = TABLES[table]
    limits = Limits.for_table(spec, settings.max_source_age_hours, settings.warn_source_age_hours)
    if limits.error_after_hours is None:
        return CheckResult(
            f"freshness {table}", True, "not checked (PARTYHELP_MAX_SOURCE_AGE_HOURS=0)"
        )
    reading = fetch_one(connection, source_freshness_query(spec), {})
    measured = freshness.measure(spec, [(reading[FRESHNESS_NEWEST], reading[SNAPSHOT_AT])], limits)
    assert measured is not None
    detail = f"{measured.describe()} ({freshness.limits_text(measured)})"
    if measured.status == "warn":
        return CheckResult(f"freshness {table}", True, f"WARNING: {detail}")
    if measured.status != "stale":
        return CheckResult(f"freshness {table}", True, detail)
    enforced = measured.error_after_set or _was_fresh(settings, table, limits)
    if enforced:
        return CheckResult(f"freshness {table}", False, f"stale: {detail}; a sync fails it")
    return CheckResult(
        f"freshness {table}",
        True,
        f"WARNING: stale: {detail}; not enforced yet (no published day of {table} was fresh)",
    )


def _was_fresh(settings: Settings, table: str, limits: Limits) -> bool:
    try:
        warehouse = open_warehouse(bounded(settings))
        return metrics.was_fresh(warehouse, table, limits.error_after_hours or 0)
    except Exception:  # BigQuery's own line says why it does not answer
        return False


def check_plan(settings: Settings) -> list[CheckResult]:
    """Each table's chunk plan and row count, and its source freshness, read in one
    consistent snapshot."""
    try:
        with snapshot(settings.mysql) as connection:
            return [
                _guarded(f"{name} {table}", partial(check, settings, connection, table))
                for table in TABLES
                for name, check in (("plan", _plan_one), ("freshness", _freshness_one))
            ]
    except Exception as exc:
        return [CheckResult("plan", False, _one_line(exc))]


# ------------------------------------------------------------------ Prefect

PREFECT_TIMEOUT_SECONDS = 10.0  # one request to the Prefect API
SYNC_FLOW = "partyhelp-bigquery-sync"
CONTROL_PLANE = "docs/OPERATIONS.md, 'The control plane'"
# A secret setting found in a deployment's job variables, and where it belongs instead.
SECRET_VARIABLES = {
    "PARTYHELP_MYSQL_PASSWORD": "a Secret block named by PARTYHELP_MYSQL_PASSWORD_BLOCK",
    "PARTYHELP_PII_SALT": "a Secret block named by PARTYHELP_PII_SALT_BLOCK",
    "PARTYHELP_MYSQL_SSL_KEY": "a Secret block named by PARTYHELP_MYSQL_SSL_KEY_BLOCK",
    "PREFECT_API_KEY": "a secret mounted into the job's environment, e.g. from Secret Manager",
    "PREFECT_API_AUTH_STRING": (
        "a secret mounted into the job's environment, e.g. from Secret Manager"
    ),
}


def _secret_text(value: Any) -> str | None:
    """A setting's value as text (a ``SecretStr`` revealed, for comparing only), or None."""
    if value is None:
        return None
    text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    return text or None


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine only (127.0.0.0/8, ::1, localhost)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _on_cloud(api_url: str) -> bool:
    from prefect.settings import PREFECT_CLOUD_API_URL

    cloud = str(PREFECT_CLOUD_API_URL.value() or "")
    host = urlsplit(api_url).hostname or ""
    return host == "api.prefect.cloud" or bool(cloud and api_url.startswith(cloud))


def _version_status(api_url: str, auth: tuple[str, str] | None) -> int | str:
    """The HTTP status of ``GET {api_url}/version``, or why there was none (one line)."""
    try:
        response = httpx.get(f"{api_url}/version", auth=auth, timeout=PREFECT_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {_one_line(exc)}" if str(exc) else type(exc).__name__
    return response.status_code


def _unanswered_prefect(api_url: str, status: int | str) -> CheckResult:
    """A FAIL for a server that did not answer ``GET /version`` (or answered an error)."""
    if status == 401:
        why = (
            f"the server at {api_url} asks for authentication: set PREFECT_API_AUTH_STRING "
            f"to the string of its PREFECT_SERVER_API_AUTH_STRING ({CONTROL_PLANE})"
        )
    elif isinstance(status, int):
        why = f"the Prefect server at {api_url} answered GET /version with HTTP {status}"
    else:
        why = (
            f"the Prefect server at {api_url} did not answer within "
            f"{PREFECT_TIMEOUT_SECONDS:.0f} s ({status}): start it, or set PREFECT_API_URL to "
            "the server the sync runs on"
        )
    return CheckResult("prefect", False, why)


def _open_server(api_url: str, note: str = "") -> CheckResult:
    """The line of a server that answers without credentials: fine on loopback only."""
    if is_loopback(api_url):
        return CheckResult(
            "prefect",
            True,
            f"open server at {api_url} (no authentication; fine on loopback only){note}",
        )
    return CheckResult(
        "prefect",
        False,
        (
            f"open server at {api_url}{note}: anyone who reaches it reads the MySQL password "
            "through its API (POST /api/block_documents/filter); turn on basic authentication "
            "(PREFECT_SERVER_API_AUTH_STRING on the server, PREFECT_API_AUTH_STRING here) and "
            f"keep it inside your network: {CONTROL_PLANE}"
        ),
    )


def _reach_server(api_url: str, auth_string: str | None) -> tuple[CheckResult, bool]:
    """How a self-hosted server at ``api_url`` answers (with the string, or open), and
    whether it let this process in."""
    if auth_string is None:
        status = _version_status(api_url, None)
        if status != 200:
            return _unanswered_prefect(api_url, status), False
        return _open_server(api_url), True
    user, _, password = auth_string.partition(":")
    status = _version_status(api_url, (user, password))
    if status == 401:
        return CheckResult(
            "prefect",
            False,
            f"the server at {api_url} refused PREFECT_API_AUTH_STRING: set the string its "
            f"PREFECT_SERVER_API_AUTH_STRING holds ({CONTROL_PLANE})",
        ), False
    if status != 200:
        return _unanswered_prefect(api_url, status), False
    if _version_status(api_url, None) == 200:  # the string is set here, the server ignores it
        ignored = " (PREFECT_API_AUTH_STRING is set, but the server does not ask for it)"
        return _open_server(api_url, ignored), True
    return CheckResult(
        "prefect", True, f"authenticated server at {api_url} (basic authentication)"
    ), True


def _plain_secrets(job_variables: Mapping[str, Any]) -> list[str]:
    """The secret settings ``job_variables`` (or its ``env``) hold a plain value for; a
    ``{{ ... }}`` template (a block reference) is not a plain value."""
    env = job_variables.get("env")
    places = [("job_variables", job_variables)]
    if isinstance(env, Mapping):
        places.append(("job_variables.env", env))
    return [
        f"{name} (in {where})"
        for where, values in places
        for name in SECRET_VARIABLES
        if values.get(name) not in (None, "")
        and not str(values.get(name)).lstrip().startswith("{{")
    ]


def _deployment_secrets() -> list[str]:
    """One phrase per deployment of the sync's flow that holds a secret in plain text,
    naming the deployment, the variables and the fix (never a value)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    flow_filter = FlowFilter(name=FlowFilterName(any_=[SYNC_FLOW]))
    with get_client(
        sync_client=True, httpx_settings={"timeout": PREFECT_TIMEOUT_SECONDS}
    ) as client:
        deployments = client.read_deployments(flow_filter=flow_filter)
    found = []
    for deployment in deployments:
        names = _plain_secrets(deployment.job_variables or {})
        if names:
            fixes = sorted({SECRET_VARIABLES[name.split(" ", 1)[0]] for name in names})
            found.append(
                f"deployment {SYNC_FLOW}/{deployment.name} holds {', '.join(names)} in plain "
                f"text, readable by anyone who may read deployments: remove it and keep it in "
                f"{'; '.join(fixes)}"
            )
    return found


def _with_deployments(reached: CheckResult) -> CheckResult:
    """``reached``, failed by any secret in plain text in the sync's deployments."""
    try:
        found = _deployment_secrets()
    except Exception as exc:
        found = [f"the deployments of {SYNC_FLOW} could not be read: {_one_line(exc)}"]
    if not found:
        return reached
    return CheckResult("prefect", False, "; ".join([reached.detail, *found]))


def check_prefect() -> CheckResult:
    """How this process reaches Prefect (Cloud, an authenticated server, an open one), and
    no deployment of the sync holding a secret in plain text. Prints no secret."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY, PREFECT_API_URL

    api_url = str(PREFECT_API_URL.value() or "").rstrip("/")
    if not api_url:
        return CheckResult("prefect", True, "no PREFECT_API_URL: a temporary local server")
    if _on_cloud(api_url):
        if not _secret_text(PREFECT_API_KEY.value()):
            return CheckResult(
                "prefect",
                False,
                f"PREFECT_API_URL {api_url} is on Prefect Cloud, but PREFECT_API_KEY is not set",
            )
        return _with_deployments(CheckResult("prefect", True, "Prefect Cloud (API key)"))
    reached, answered = _reach_server(api_url, _secret_text(PREFECT_API_AUTH_STRING.value()))
    return _with_deployments(reached) if answered else reached


def _redact_prefect(result: CheckResult) -> CheckResult:
    """``result`` with the Prefect credentials of this process, should one appear, hidden."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY

    detail = result.detail
    for value in (PREFECT_API_AUTH_STRING.value(), PREFECT_API_KEY.value()):
        secret = _secret_text(value)
        if secret:
            detail = detail.replace(secret, "***")
    return CheckResult(result.name, result.ok, detail)


# ------------------------------------------------------------------ all of them


def cheap_checks(settings: Settings) -> list[CheckResult]:
    """What the flow checks first, before MySQL is read: the bucket exists (a metadata
    read) and its location suits the dataset's. Nothing is written."""
    found, bucket = _read_bucket(settings)
    if bucket is None:
        return [found, _not_checked("location", "the bucket (see bucket)")]
    return [found, check_location(settings, bucket)]


def _checks(settings: Settings) -> Iterator[CheckResult]:
    mysql, connected = check_mysql(settings)
    yield mysql
    found, bucket = _read_bucket(settings)
    if bucket is None:
        yield found
        yield _not_checked("location", "the bucket (see bucket)")
    else:
        yield _guarded(
            "bucket", partial(_write_test, settings, bucket, found), f"gs://{settings.gcs_bucket}"
        )
        location = check_location(settings, bucket)
        yield location
        if location.unreachable:  # asking again would wait a second window for nothing
            yield _not_checked("bigquery", "BigQuery to answer (see location)")
            yield from _rest(settings, connected)
            return
    yield check_bigquery(settings)
    yield from _rest(settings, connected)


def _rest(settings: Settings, connected: bool) -> Iterator[CheckResult]:
    """The checks of the source: drift and the chunk plans."""
    if not connected:
        yield from (_not_checked(name, "MySQL (see mysql)") for name in ("drift", "plan"))
        return
    yield _guarded("drift", partial(check_drift, settings))
    yield from check_plan(settings)


def iter_checks(
    env: Mapping[str, str] | None = None,
    *,
    mysql_password: str | None = None,
    pii_salt: str | None = None,
    load: Callable[[], Settings] | None = None,
) -> Iterator[CheckResult]:
    """Every check in order, each as it finishes. ``env``: ``os.environ`` when None;
    ``mysql_password``/``pii_salt`` as ``load_settings`` takes them (from Secret blocks);
    ``load``: how to read the settings instead (see ``check_settings``)."""
    result, settings = check_settings(env, mysql_password, pii_salt, load)
    yield result
    yield _redact_prefect(_guarded("prefect", check_prefect, "Prefect"))
    if settings is None:
        yield from (_not_checked(name, "valid settings (see settings)") for name in LATER_CHECKS)
        return
    secret = settings.mysql_password.get_secret_value()
    for result in _checks(settings):
        yield CheckResult(
            result.name,
            result.ok,
            result.detail.replace(secret, "***") if secret else result.detail,
        )


def run_checks(
    env: Mapping[str, str] | None = None,
    *,
    mysql_password: str | None = None,
    pii_salt: str | None = None,
) -> list[CheckResult]:
    """Every check, in order (see the module's docstring)."""
    return list(iter_checks(env, mysql_password=mysql_password, pii_salt=pii_salt))


def main_check(
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    *,
    mysql_password: str | None = None,
    pii_salt: str | None = None,
    load: Callable[[], Settings] | None = None,
) -> int:
    """Print one line per check as it finishes (to ``out``, default ``sys.stdout``);
    0 when every check passed, 1 otherwise."""
    stream = sys.stdout if out is None else out
    passed = True
    for result in iter_checks(env, mysql_password=mysql_password, pii_salt=pii_salt, load=load):
        print(result.line, file=stream, flush=True)
        passed = passed and result.ok
    return 0 if passed else 1
