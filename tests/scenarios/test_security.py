"""Least privilege, secrets, PII and identifiers, checked on real runs of the flow.

- The sync runs as a SELECT-only MySQL user: writes with its credentials are refused, and
  whole runs succeed as that user without changing a byte of the source.
- Secrets never leave: the MySQL password, the PII salt (from a Prefect Secret block) and
  a service-account private key (in a GcpCredentials block named by
  PARTYHELP_GCP_CREDENTIALS_BLOCK) are searched for in every log line the Prefect API
  holds for the runs, every task run and flow run record, every exception (failures are
  forced: a wrong password, a closed port), the artifacts, the persisted task results,
  the command's output, every object in the bucket (Avro decoded) and every BigQuery row.
  Against the emulators the clients are anonymous, so the key block is named but never
  loaded: the check shows it is not echoed, not that it is used.
- PII is off by default (no email or phone anywhere); the opt-in adds email_sha256 and
  phone_sha256, equal to HMAC-SHA256(salt, normalised value) computed here independently,
  and the raw values appear nowhere in the bucket or in BigQuery.
- Identifiers from configuration are validated before use, naming the variable; an
  injection attempt in the dataset name stops the run before any task or query.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.clients import bigquery_client
from partyhelp_pipeline.settings import ConfigError, load_settings, quote_table_ref, validate_table
from tests.conftest import MYSQL_HOST, MYSQL_PORT, READER_PASSWORD, ROOT
from tests.faultkit import (
    Source,
    avro_records,
    bucket_objects,
    clock_at,
    decoded_text,
    env_vars,
    environment,
    flow_run_record,
    free_port,
    new_target,
    query,
    source_database,
    sync_on,
)

pytestmark = pytest.mark.usefixtures("stack", "emulators")  # emulators: conftest.py

DAY = dt.date(2026, 8, 1)
TABLES_SYNCED = ["ph_leads", "ph_venues", "ph_lead_purchases"]
SALT = "salt-" + secrets.token_hex(16)


def _throwaway_private_key() -> str:
    """A real RSA key made for this test (prefect-gcp parses the key when the block is
    built), in PKCS#8 PEM like a service-account file's ``private_key``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


FAKE_PRIVATE_KEY = _throwaway_private_key()
FAKE_KEY_BODY = FAKE_PRIVATE_KEY.splitlines()[5]  # one line of the key's base64 body
WRONG_PASSWORD = "wrong-" + secrets.token_hex(12)
SECRETS = {
    "mysql password": READER_PASSWORD,
    "pii salt": SALT,
    "private key": FAKE_KEY_BODY,
    "wrong password": WRONG_PASSWORD,
}


def _leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


@pytest.fixture(scope="module")
def source(stack: None) -> Iterator[Source]:
    with source_database("ph_sec", scale=0.01, seed=23, edge_cases=True) as src:
        yield src


def _checksums(source: Source) -> dict[str, Any]:
    tables = [r[0] for r in source.sql("SHOW TABLES")]
    return {t: source.sql(f"CHECKSUM TABLE `{t}` EXTENDED")[0][1] for t in tables}


@pytest.fixture(scope="module")
def runs(source: Source, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Four runs as the reader: PII off, PII on (salt from a Secret block), a wrong
    password, and MySQL unreachable; plus the command with a wrong password."""
    from prefect.blocks.system import Secret
    from prefect_gcp import GcpCredentials

    token = secrets.token_hex(4)
    salt_block, key_block = f"ph-test-salt-{token}", f"ph-test-gcp-{token}"
    Secret(value=SALT).save(salt_block)
    GcpCredentials(
        service_account_info={
            "type": "service_account",
            "project_id": "partyhelp-test",
            "private_key_id": secrets.token_hex(20),
            "private_key": FAKE_PRIVATE_KEY,
            "client_email": "sync@partyhelp-test.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    ).save(key_block)
    results_dir = Path(os.environ["PREFECT_LOCAL_STORAGE_PATH"])
    started = time.time()
    checksums_before = _checksums(source)
    base = new_target(
        source, "sec", PARTYHELP_CHUNK_ROWS="2000000000", PARTYHELP_GCP_CREDENTIALS_BLOCK=key_block
    )
    pii = {
        **new_target(
            source,
            "pii",
            PARTYHELP_CHUNK_ROWS="2000000000",
            PARTYHELP_GCP_CREDENTIALS_BLOCK=key_block,
        ),
        "PARTYHELP_INCLUDE_PII_HASHES": "true",
        "PARTYHELP_PII_SALT_BLOCK": salt_block,
    }
    out: dict[str, Any] = {"base": base, "pii": pii, "states": {}}
    try:
        for name, env in (
            ("default", base),
            ("pii", pii),
            ("wrong_password", {**base, "PARTYHELP_MYSQL_PASSWORD": WRONG_PASSWORD}),
            ("mysql_down", {**base, "PARTYHELP_MYSQL_PORT": str(free_port())}),
        ):
            with environment(env):
                out["states"][name] = sync_on(DAY, tables=TABLES_SYNCED)
        command = subprocess.run(
            [
                sys.executable,
                "-m",
                "flows.partyhelp_sync",
                "--date",
                DAY.isoformat(),
                "--tables",
                "ph_venues",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, **base, **clock_at(DAY), "PARTYHELP_MYSQL_PASSWORD": WRONG_PASSWORD},
        )
        out["command"] = command
        out["checksums"] = (checksums_before, _checksums(source))
        out["results"] = [
            p for p in results_dir.rglob("*") if p.is_file() and p.stat().st_mtime >= started
        ]
        yield out
    finally:
        for block, name in ((Secret, salt_block), (GcpCredentials, key_block)):
            with contextlib.suppress(Exception):  # never saved, if setup failed early
                block.delete(name)


# ---------------------------------------------------------------- least privilege


def test_the_sync_user_can_only_select(source: Source) -> None:
    connection = pymysql.connect(
        host=MYSQL_HOST,
        port=MYSQL_PORT,
        user=source.user,
        password=READER_PASSWORD,
        database=source.database,
        autocommit=True,
    )
    with connection, connection.cursor() as cursor:
        cursor.execute("SHOW GRANTS FOR CURRENT_USER()")
        grants = [row[0] for row in cursor.fetchall()]
        privileges = [g for g in grants if not g.startswith("GRANT USAGE")]
        assert len(privileges) == 1
        assert re.fullmatch(
            rf"GRANT SELECT ON `{source.database}`\.\* TO `{source.user}`@`[^`]+`", privileges[0]
        ), privileges
        cursor.execute("SELECT COUNT(*) FROM venues")
        assert cursor.fetchone()[0] > 0
        for statement in (
            "INSERT INTO areas (name) VALUES ('x')",
            "UPDATE venues SET credit_balance = 0",
            "DELETE FROM credit_transactions",
            "CREATE TABLE stolen (id INT)",
            "DROP TABLE leads",
            "ALTER TABLE leads ADD COLUMN x INT",
            "TRUNCATE TABLE lead_purchases",
            f"GRANT SELECT ON `{source.database}`.* TO CURRENT_USER()",
        ):
            with pytest.raises(pymysql.err.OperationalError) as refused:
                cursor.execute(statement)
            assert refused.value.args[0] in (1044, 1142, 1227), statement  # denied


def test_whole_runs_succeed_as_that_user_and_change_nothing_in_the_source(
    runs: dict[str, Any], source: Source
) -> None:
    for name in ("default", "pii"):
        assert runs["states"][name].is_completed(), runs["states"][name].message
        assert runs[name if name == "pii" else "base"]["PARTYHELP_MYSQL_USER"] == source.user
    before, after = runs["checksums"]
    assert before == after


# ---------------------------------------------------------------- secrets


def _flow_run_texts(state: Any) -> list[str]:
    """Everything the Prefect API and the state hold about one run, as text."""
    record = flow_run_record(state.state_details.flow_run_id, final_log="Finished in state")
    texts = [record.flow_run.model_dump_json()]
    texts += [t.model_dump_json() for t in record.task_runs]
    texts += [a.model_dump_json() for a in record.artifacts]
    texts += [log.model_dump_json() for log in record.logs]
    texts.append(str(state.message))
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        texts.append("".join(traceback.format_exception(result)))
    else:
        texts.append(repr(result))
    return texts


def test_secrets_appear_in_no_log_record_exception_or_artifact(runs: dict[str, Any]) -> None:
    states = runs["states"]
    assert states["wrong_password"].is_failed()
    assert "error 1045: Access denied for user" in states["wrong_password"].message
    assert states["mysql_down"].is_failed()
    assert "cannot connect to MySQL" in states["mysql_down"].message
    for name, state in states.items():
        texts = _flow_run_texts(state)
        assert any("Finished in state" in t for t in texts), name  # the logs were read
        leaked = {leak for text in texts for leak in _leaks(text)}
        assert not leaked, (name, leaked)
    command = runs["command"]
    assert command.returncode == 1
    assert "partyhelp sync: FAILED: cannot connect to MySQL" in command.stderr
    assert not _leaks(command.stdout + command.stderr)


def test_secrets_appear_in_no_persisted_result(runs: dict[str, Any]) -> None:
    assert runs["results"], "the runs persisted no task results"
    for path in runs["results"]:
        data = path.read_bytes()
        assert not [n for n, v in SECRETS.items() if v.encode() in data], path


def test_secrets_appear_in_no_avro_file_manifest_or_bigquery_row(runs: dict[str, Any]) -> None:
    for env in (runs["base"], runs["pii"]):
        with environment(env) as settings:
            objects = bucket_objects(settings)
            assert any(n.endswith(mf.MANIFEST_NAME) for n in objects)
            assert any(n.endswith(".avro") for n in objects)
            for name, data in objects.items():
                assert not _leaks(decoded_text(name, data)), name
                assert not [n for n, v in SECRETS.items() if v.encode() in data], name
            for table in [*TABLES_SYNCED, "ph_sync_runs"]:
                rows = query(settings, f"SELECT * FROM {settings.quoted_table_ref(table)}")
                assert rows and not _leaks(repr(rows)), table


def test_settings_and_their_repr_hold_no_secret(runs: dict[str, Any]) -> None:
    settings = load_settings({**runs["pii"], "PARTYHELP_PII_SALT": SALT})  # salt from env
    assert settings.mysql.password.get_secret_value() == READER_PASSWORD
    assert settings.pii_salt is not None and settings.pii_salt.get_secret_value() == SALT
    assert not _leaks(repr(settings)) and not _leaks(str(settings))


# ---------------------------------------------------------------- PII


def _e164(phone: str) -> str | None:
    """This test's own normalisation of the generator's Australian phone formats."""
    digits = re.sub(r"\D", "", phone)
    if phone.strip().startswith("+"):
        return "+" + digits if digits.startswith("61") and len(digits) == 11 else None
    return "+61" + digits[1:] if len(digits) == 10 and digits.startswith("0") else None


def _keyed(value: str | None) -> str | None:
    return (
        None if not value else hmac.new(SALT.encode(), value.encode(), hashlib.sha256).hexdigest()
    )


def _pii_values(source: Source) -> set[str]:
    """Every email and phone in the source, as stored and as normalised."""
    values: set[str] = set()
    for table, columns in (("leads", "email, phone"), ("venues", "contact_email, contact_phone")):
        for email, phone in source.sql(f"SELECT {columns} FROM {table}"):
            if email and email.strip():
                values |= {email, email.strip().lower()}
            if phone and phone.strip():
                values |= {phone} | ({_e164(phone)} - {None})
    return values


def test_pii_is_off_by_default(runs: dict[str, Any], source: Source) -> None:
    with environment(runs["base"]) as settings:
        client = bigquery_client(settings)
        fields = [f.name for f in client.get_table(settings.table_ref("ph_leads")).schema]
        assert not {"email", "phone", "email_sha256", "phone_sha256"} & set(fields)
        objects = bucket_objects(settings)
        schemas = [
            avro_records(d)[0]
            for n, d in objects.items()
            if n.endswith(".avro") and "/ph_leads/" in n
        ]
        assert schemas and all(
            "email_sha256" not in str(s) and '"phone' not in str(s) for s in schemas
        )
        _assert_nowhere(settings, objects, _pii_values(source))


def _assert_nowhere(settings: Any, objects: dict[str, bytes], values: set[str]) -> None:
    assert len(values) > 20
    texts = {name: decoded_text(name, data) for name, data in objects.items()}
    for table in [*TABLES_SYNCED, "ph_sync_runs"]:
        texts[table] = repr(query(settings, f"SELECT * FROM {settings.quoted_table_ref(table)}"))
    for name, text in texts.items():
        found = sorted(v for v in values if v in text)
        assert not found, (name, found[:5])


def test_pii_opt_in_adds_only_keyed_hashes_of_normalised_values(
    runs: dict[str, Any], source: Source
) -> None:
    with environment(runs["pii"]) as settings:
        rows = {
            r["lead_id"]: r
            for r in query(
                settings,
                f"SELECT lead_id, email_sha256, phone_sha256 FROM "
                f"{settings.quoted_table_ref('ph_leads')}",
            )
        }
        expected = {
            lead_id: (
                _keyed(email.strip().lower() if email else None),
                _keyed(_e164(phone) if phone else None),
            )
            for lead_id, email, phone in source.sql("SELECT id, email, phone FROM leads")
        }
        assert {k: (r["email_sha256"], r["phone_sha256"]) for k, r in rows.items()} == expected
        assert sum(1 for e, p in expected.values() if e and p) > 5
        _assert_nowhere(settings, bucket_objects(settings), _pii_values(source))


# ---------------------------------------------------------------- identifiers

INJECTION = "x`; DROP TABLE y; --"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PARTYHELP_BQ_DATASET", INJECTION),
        ("PARTYHELP_BQ_DATASET", "my-dataset"),
        ("PARTYHELP_BQ_DATASET", "a.b"),
        ("PARTYHELP_BQ_PROJECT", "x`; DROP TABLE y; --"),
        ("PARTYHELP_BQ_PROJECT", "Upper-Case-Project"),
        ("PARTYHELP_BQ_PROJECT", "abc"),
        ("PARTYHELP_GCS_BUCKET", "Bad_Bucket"),
        ("PARTYHELP_GCS_BUCKET", "goog-exports"),
        ("PARTYHELP_GCS_BUCKET", "a..b"),
        ("PARTYHELP_GCS_BUCKET", "ab"),
        ("PARTYHELP_GCS_BUCKET", "bucket/with/slash"),
        ("PARTYHELP_GCS_BUCKET", "my-google-exports"),
        ("PARTYHELP_GCS_BUCKET", "192.168.5.4"),
        ("PARTYHELP_GCS_BUCKET", "x" * 64),
        ("PARTYHELP_GCS_PREFIX", "../outside"),
        ("PARTYHELP_GCS_PREFIX", "a//b"),
        ("PARTYHELP_GCS_PREFIX", "with space"),
        ("PARTYHELP_GCS_PREFIX", "x`y"),
        ("PARTYHELP_GCP_CREDENTIALS_BLOCK", "Not A Block!"),
    ],
)
def test_invalid_identifiers_are_refused_naming_the_variable(variable: str, value: str) -> None:
    env = {
        "PARTYHELP_MYSQL_HOST": "h",
        "PARTYHELP_MYSQL_USER": "u",
        "PARTYHELP_MYSQL_DATABASE": "d",
        "PARTYHELP_GCS_BUCKET": "ok-bucket",
        "PARTYHELP_BQ_PROJECT": "ok-project",
        variable: value,
    }
    with pytest.raises(ConfigError, match=rf"^{variable}="):
        load_settings(env)


def test_table_names_are_validated_before_they_are_quoted() -> None:
    assert (
        quote_table_ref("ok-project", "ok_dataset", "ph_leads")
        == "`ok-project.ok_dataset.ph_leads`"
    )
    for bad in ("ph_leads`; DROP TABLE x; --", "a.b", "a-b", ""):
        with pytest.raises(ConfigError):
            validate_table(bad)
        with pytest.raises(ConfigError):
            quote_table_ref("ok-project", "ok_dataset", bad)


def test_an_injection_in_the_dataset_name_never_reaches_a_query(runs: dict[str, Any]) -> None:
    with environment(runs["base"]) as settings:
        client = bigquery_client(settings)
        sentinel = f"{settings.bq_project}.{settings.bq_dataset}.y"
        client.query(f"CREATE TABLE `{sentinel}` AS SELECT 1 AS kept").result()
        datasets = {d.dataset_id for d in client.list_datasets()}
    with env_vars({**runs["base"], "PARTYHELP_BQ_DATASET": INJECTION}):
        state = sync_on(DAY, tables=["ph_venues"])
    assert state.is_failed()
    assert f"PARTYHELP_BQ_DATASET={INJECTION!r} is not a valid BigQuery dataset id" in state.message
    record = flow_run_record(state.state_details.flow_run_id)
    assert record.task_runs == []  # refused before any task, so before any query
    assert {d.dataset_id for d in client.list_datasets()} == datasets
    assert [dict(r.items()) for r in client.query(f"SELECT kept FROM `{sentinel}`").result()] == [
        {"kept": 1}
    ]
