"""`python -m scripts.setup` on the local stack: what it creates, and that a rerun changes
nothing (it is idempotent)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts import setup
from tests.alerting import NotificationReceiver, private_prefect_server, using_prefect_server
from tests.conftest import ROOT

PASSWORD, NEW_PASSWORD = "pw-" + secrets.token_hex(8), "pw2-" + secrets.token_hex(8)


def fake_service_account_key(path: Path) -> dict[str, str]:
    """A well-formed key of a service account that does not exist (never used to sign in)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info = {
        "type": "service_account",
        "project_id": "partyhelp-test",
        "private_key_id": secrets.token_hex(8),
        "private_key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "client_email": "partyhelp-sync@partyhelp-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path.write_text(json.dumps(info))
    return info


@pytest.fixture()
def names(stack: None, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Blocks, bucket and dataset of this test's own; the blocks are deleted afterwards."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    token = secrets.token_hex(4)
    blocks = {
        "results": f"ph-setup-results-{token}",
        "password": f"ph-setup-mysql-{token}",
        "credentials": f"ph-setup-gcp-{token}",
    }
    key_file = tmp_path / "key.json"
    yield {
        **blocks,
        "key_file": key_file,
        "key": fake_service_account_key(key_file),
        "bucket": f"ph-setup-{token}",
        "dataset": f"ph_setup_{token}",
    }
    with get_client(sync_client=True) as client:
        for slug, name in (
            ("gcs-bucket", blocks["results"]),
            ("secret", blocks["password"]),
            ("gcp-credentials", blocks["credentials"]),
        ):
            with contextlib.suppress(ObjectNotFound):
                client.delete_block_document(client.read_block_document_by_name(name, slug).id)


def run_setup(
    names: dict[str, Any], *extra: str, password: str | None = PASSWORD, stdin: str = ""
) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARTYHELP_")}
    env.update(
        PARTYHELP_GCS_BUCKET=names["bucket"],
        PARTYHELP_GCS_PREFIX="exports",
        PARTYHELP_BQ_PROJECT="partyhelp-test",
        PARTYHELP_BQ_DATASET=names["dataset"],
        PARTYHELP_BQ_LOCATION="US",
    )
    if password is not None:
        env["PARTYHELP_MYSQL_PASSWORD"] = password
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.setup",
            "--results-block",
            names["results"],
            "--mysql-password-block",
            names["password"],
            "--gcp-credentials-block",
            names["credentials"],
            "--service-account-key-file",
            str(names["key_file"]),
            *extra,
        ],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for secret in (PASSWORD, NEW_PASSWORD, names["key"]["private_key"].splitlines()[1]):
        assert secret not in output  # never echoed
    return result.stdout.splitlines()


KINDS = (
    "GcpCredentials block",
    "Secret block",
    "GcsBucket block",
    "BigQuery dataset",
    "GCS bucket",
    "GCS lifecycle rule",
)


def outcomes(lines: list[str]) -> dict[str, str]:
    """``{"Secret block": "created", ...}`` from setup's one line per step."""
    found = {}
    for line in lines:
        [kind] = [k for k in KINDS if line.startswith(k + " ")]
        found[kind] = line.rpartition(": ")[2]
    return found


def test_setup_creates_everything_then_a_rerun_changes_nothing(names: dict[str, Any]) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery, storage
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client

    from partyhelp_pipeline.warehouse.target import DATASET_DESCRIPTION

    first = outcomes(run_setup(names, "--retention-days", "30"))
    assert first == {
        "GcpCredentials block": "created",
        "Secret block": "created",
        "GcsBucket block": "created",
        "BigQuery dataset": "created",
        "GCS bucket": "created",
        "GCS lifecycle rule": "created",
    }
    second = outcomes(run_setup(names, "--retention-days", "30"))
    assert second == {
        "GcpCredentials block": "unchanged",
        "Secret block": "unchanged",
        "GcsBucket block": "unchanged",
        "BigQuery dataset": "unchanged",
        # fake-gcs-server drops lifecycle rules (below), so each run sets it
        # again; on GCS the rerun finds it and says "unchanged"
        # (test_lifecycle_rule_request_and_replacement).
        "GCS lifecycle rule": "created",
    }

    assert Secret.load(names["password"]).get() == PASSWORD
    with get_client(sync_client=True) as client:
        results = client.read_block_document_by_name(names["results"], "gcs-bucket")
    assert results.data["bucket"] == names["bucket"]
    assert results.data["bucket_folder"] == "prefect-results/"
    reference = results.block_document_references["gcp_credentials"]["block_document"]
    assert reference["name"] == names["credentials"]  # rotating that block rotates this one
    dataset = bigquery.Client(
        project="partyhelp-test", credentials=AnonymousCredentials()
    ).get_dataset(f"partyhelp-test.{names['dataset']}")
    assert (dataset.location, dataset.description) == ("US", DATASET_DESCRIPTION)
    bucket = storage.Client(
        project="partyhelp-test", credentials=AnonymousCredentials()
    ).get_bucket(names["bucket"])
    assert list(bucket.lifecycle_rules) == []  # what fake-gcs-server does with the rule

    # A new password from stdin (no PARTYHELP_MYSQL_PASSWORD), a new retention period.
    third = outcomes(
        run_setup(names, "--retention-days", "45", password=None, stdin=NEW_PASSWORD + "\n")
    )
    assert third["Secret block"] == "updated"
    assert Secret.load(names["password"]).get() == NEW_PASSWORD


def test_no_password_given_keeps_the_stored_one(
    names: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect.blocks.system import Secret

    monkeypatch.delenv("PARTYHELP_MYSQL_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(SystemExit, match="does not exist and no password was given"):
        setup.setup_mysql_password(names["password"])
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    setup.setup_mysql_password(names["password"])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    setup.setup_mysql_password(names["password"])
    assert capsys.readouterr().out.splitlines() == [
        f"Secret block {names['password']}: created",
        f"Secret block {names['password']}: unchanged (no new password given)",
    ]
    assert Secret.load(names["password"]).get() == PASSWORD


def test_lifecycle_rule_request_and_replacement(
    names: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PATCH setup sends, as GCS would receive it; its other rules are kept, its own
    rule replaced, not repeated, and nothing is sent when the rule is already there."""
    from google.cloud import storage

    from partyhelp_pipeline.clients import storage_client
    from partyhelp_pipeline.settings import load_settings

    env = {
        **os.environ,
        "PARTYHELP_MYSQL_HOST": "-",
        "PARTYHELP_MYSQL_USER": "-",
        "PARTYHELP_MYSQL_DATABASE": "-",
        "PARTYHELP_GCS_BUCKET": names["bucket"],
        "PARTYHELP_GCS_PREFIX": "exports",
        "PARTYHELP_BQ_PROJECT": "partyhelp-test",
    }
    settings = load_settings(env)
    client = storage_client(settings)
    client.create_bucket(names["bucket"])
    sent: list[dict[str, Any]] = []
    send = client._http.request

    def record(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method == "PATCH":
            sent.append(json.loads(kwargs["data"]))
        return send(method, url, *args, **kwargs)

    monkeypatch.setattr(client._http, "request", record)
    ours = setup.retention_rule("exports/sync_date=", 400)
    assert ours == {
        "action": {"type": "Delete"},
        "condition": {"age": 400, "matchesPrefix": ["exports/sync_date="]},
    }

    setup.setup_bucket(settings, 400)
    assert [body["lifecycle"] for body in sent] == [{"rule": [ours]}]

    # As GCS would hold it: another team's rule and ours with another age.
    other = {
        "action": {"type": "SetStorageClass", "storageClass": "NEARLINE"},
        "condition": {"age": 30},
    }
    held = [other, setup.retention_rule("exports/sync_date=", 30)]

    def bucket_holding(rules: list[dict[str, Any]]) -> Any:
        def get_bucket(name: str) -> storage.Bucket:
            bucket = storage.Bucket(client, name=name)
            bucket._set_properties({"name": name, "lifecycle": {"rule": rules}})
            return bucket

        return get_bucket

    sent.clear()
    monkeypatch.setattr(client, "get_bucket", bucket_holding(held))
    setup.setup_bucket(settings, 400)
    assert [body["lifecycle"] for body in sent] == [{"rule": [other, ours]}]

    sent.clear()
    monkeypatch.setattr(client, "get_bucket", bucket_holding([other, ours]))
    setup.setup_bucket(settings, 400)
    assert sent == []  # already as wanted: nothing is written


def test_export_prefix_matches_where_exports_live() -> None:
    import datetime as dt

    from partyhelp_pipeline import manifest as mf

    for prefix in ("partyhelp", "a/b", ""):
        folder = mf.table_folder(prefix, dt.date(2026, 11, 25), "ph_leads")
        assert folder.startswith(setup.export_prefix(prefix))
    assert setup.export_prefix("") == "sync_date="  # never the whole bucket
    with pytest.raises(SystemExit):
        setup.parse_args(["--retention-days", "0"], {})


def test_alert_options_and_the_declaration_they_fill() -> None:
    """`--notify-block`'s companions, and automations.yaml with every placeholder filled in
    (the automations themselves, on a real server: tests/scenarios/test_alerts.py)."""
    import datetime as dt
    import uuid

    args = setup.parse_args([], {})
    assert (args.notify_block, args.completed_within, args.alert_deployment) == (
        None,
        4 * 3600,
        "partyhelp-bigquery-sync/daily",
    )  # no --notify-block: left alone
    assert setup.parse_args(["--completed-within", "90m"], {}).completed_within == 5400
    for wrong in (
        ["--completed-within", "5s"],
        ["--completed-within", "4 hours"],
        ["--alert-deployment", "daily"],
    ):
        with pytest.raises(SystemExit):
            setup.parse_args(wrong, {})
    assert [setup.duration_text(s) for s in (14400, 86400, 5400, 20, 61)] == [
        "4 hours",
        "1 day",
        "90 minutes",
        "20 seconds",
        "61 seconds",
    ]

    block = uuid.uuid4()
    failed, missing, anomaly = setup.declared_automations(
        {
            "notify_block_id": block,
            "flow": "partyhelp-bigquery-sync",
            "deployment": "daily",
            "completed_within": 14400,
            "within_text": "4 hours",
            "ui_url": "https://prefect.example",
        }
    )
    assert (failed.name, missing.name) == (
        "partyhelp-sync-run-failed",
        "partyhelp-sync-daily-not-completed",
    )
    assert missing.trigger.within == dt.timedelta(hours=4)
    assert missing.trigger.after == {
        "prefect.flow-run.Late",
        "prefect.flow-run.Pending",
        "prefect.flow-run.Running",
        "prefect.flow-run.AwaitingRetry",
    }
    for automation in (failed, missing, anomaly):
        assert automation.actions[0].block_document_id == block
        text = json.dumps(automation.model_dump(mode="json"))
        assert "$" not in text  # every placeholder filled
        assert "https://prefect.example/runs/flow-run/{{ " in text
    assert anomaly.name == "partyhelp-sync-anomaly"
    assert (anomaly.trigger.expect, anomaly.trigger.match.model_dump()) == (
        {"partyhelp.sync.anomaly"},
        {"prefect.resource.id": "partyhelp.table.*"},
    )


ANOMALY_ALERT = "partyhelp-sync-anomaly"


@pytest.fixture()
def own_prefect_server(stack: None) -> Iterator[str]:
    """A Prefect server of this test's own: automations are server-wide, and these carry their
    production names."""
    with private_prefect_server() as url, using_prefect_server(url):
        yield url


def test_an_anomaly_event_reaches_the_notification_block(
    own_prefect_server: str, names: dict[str, Any]
) -> None:
    """`--notify-block` creates the anomaly automation beside the two others, and a real
    `partyhelp.sync.anomaly` event, as a run emits it, reaches a custom-webhook block's
    receiver, naming the table, the metric and the run."""
    import datetime as dt
    import uuid

    from prefect.automations import Automation
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events import emit_event

    from partyhelp_pipeline.anomalies import event_payload
    from partyhelp_pipeline.health import MetricCheck

    receiver = NotificationReceiver()
    try:
        CustomWebhookNotificationBlock(  # type: ignore[call-arg]  # the others have defaults
            name="partyhelp alerts (test receiver)",
            url=receiver.url,
            method="POST",
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
        ).save("ph-setup-alerts")

        def setup_alerts() -> list[str]:
            lines = run_setup(
                names, "--results-block", "", "--mysql-password-block", "", "--notify-block",
                "ph-setup-alerts",
            )  # fmt: skip
            return [line for line in lines if line.startswith("Automation ")]

        alerts = ["partyhelp-sync-run-failed", "partyhelp-sync-daily-not-completed", ANOMALY_ALERT]
        assert setup_alerts() == [f"Automation {name}: created" for name in alerts]
        assert setup_alerts() == [f"Automation {name}: unchanged" for name in alerts]
        automation: Any = Automation.read(name=ANOMALY_ALERT)  # sync context
        assert automation.enabled
        check = MetricCheck(
            table="ph_purchases",
            metric="rows_added",
            value=0,
            median=173,
            low=112.45,
            high=233.55,
            history_days=4,
            same_weekday=True,
            flagged=True,
        )
        run_id = uuid.uuid4()
        emit_event(**event_payload(check, dt.date(2026, 12, 6), str(run_id)))
        notification = receiver.wait_for(
            "about the anomaly", lambda body: "ph_purchases" in body["subject"], 60
        )
    finally:
        receiver.close()
    assert notification["subject"] == (
        "Partyhelp sync anomaly: ph_purchases rows_added on 2026-12-06"
    )
    assert notification["body"].splitlines() == [
        "ph_purchases: rows_added is 0, outside its usual range 112..234 (median 173 of 4 "
        "published days, the same weekday).",
        "Sync date: 2026-12-06",
        "Table: ph_purchases",
        "Metric: rows_added",
        "The run was not failed for it: is the source or the sync wrong, or was the day unusual?",
        f"Open: {own_prefect_server.removesuffix('/api')}/runs/flow-run/{run_id}",
    ]
