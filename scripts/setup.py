"""One-time setup of what the sync needs, idempotent: run it again to change or check.

    python -m scripts.setup [--results-block partyhelp-results] [--results-bucket BUCKET]
        [--results-folder prefect-results] [--mysql-password-block partyhelp-mysql-password]
        [--gcp-credentials-block NAME [--service-account-key-file KEY.json]]
        [--retention-days 400] [--settings-variable partyhelp_settings]
        [--notify-block NAME [--completed-within 4h]
         [--alert-deployment partyhelp-bigquery-sync/daily] [--ui-url URL]]

It reads the flow's own PARTYHELP_* variables for the export bucket and prefix and the
BigQuery project, dataset and location (MySQL is not contacted), and creates or updates:

in Prefect
  - with ``--settings-variable NAME``, the Prefect Variable NAME that the deployments of
    ``prefect.yaml`` read their settings from: every non-secret PARTYHELP_* setting set in
    this shell (and the password block's name), checked together first, exactly as a run
    checks them (a missing required one stops setup, naming it); a rerun replaces it whole;
  - the ``Secret`` block holding the MySQL password, from PARTYHELP_MYSQL_PASSWORD or else
    stdin (a prompt on a terminal; empty keeps the stored one); never printed;
  - optionally a ``GcpCredentials`` block from a service-account key file, or the use of an
    existing one (``--gcp-credentials-block``): the blocks and GCP calls below then use it;
  - the ``GcsBucket`` block where task results persist (prefect.yaml's
    PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK names it), so a retried run skips finished work
    (``--results-block ''`` skips it: a local process worker keeps results on its disk);
  - with ``--notify-block NAME``, the three automations of ``automations.yaml``, sending
    through the notification block NAME (Slack, Teams, email, custom webhook: whichever
    exists): a run of the flow ended Failed, Crashed or TimedOut; a run of the deployment has
    not Completed within ``--completed-within`` (default 4h) of its start; a run flagged a
    table's metric as an anomaly (event ``partyhelp.sync.anomaly``) (a paused automation
    stays paused);
in GCP
  - the BigQuery dataset, in its location, with its description;
  - the export bucket (if missing, in the dataset's location) and its lifecycle rule that
    deletes exports (``PREFIX/sync_date=...``) older than ``--retention-days`` (default 400).

Each step prints one line saying what it did: created, updated or unchanged.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import re
import string
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from google.api_core import exceptions as gexc

from partyhelp_pipeline import manifest as mf
from partyhelp_pipeline.clients import bigquery_client, storage_client
from partyhelp_pipeline.settings import (
    ConfigError,
    Settings,
    load_settings,
    validate_variable_name,
    variable_settings,
)
from partyhelp_pipeline.warehouse.target import DATASET_DESCRIPTION, ensure_dataset, open_warehouse

DEFAULT_RETENTION_DAYS = 400
AUTOMATIONS_FILE = Path(__file__).resolve().parent.parent / "automations.yaml"
DEFAULT_ALERT_DEPLOYMENT = "partyhelp-bigquery-sync/daily"
DEFAULT_COMPLETED_WITHIN = "4h"
MIN_COMPLETED_WITHIN = 10  # seconds: Prefect's minimum window of a proactive trigger
# Settings of the flow that setup does not use: MySQL is never contacted here.
_NOT_USED_HERE = {
    "PARTYHELP_MYSQL_HOST": "-",
    "PARTYHELP_MYSQL_USER": "-",
    "PARTYHELP_MYSQL_DATABASE": "-",
}


def say(what: str, name: str, outcome: str) -> None:
    print(f"{what} {name}: {outcome}", flush=True)


def export_prefix(gcs_prefix: str) -> str:
    """The object prefix every export lives under, e.g. ``partyhelp/sync_date=``."""
    return mf.date_folder(gcs_prefix, dt.date.min).rsplit("=", 1)[0] + "="


# ------------------------------------------------------------------ Prefect blocks


def _new_password(block_exists: bool) -> str | None:
    """The password to store: the environment's, else stdin's; None keeps the stored one."""
    value = os.environ.get("PARTYHELP_MYSQL_PASSWORD")
    if value:
        return value
    if sys.stdin.isatty():
        keep = " (empty: keep the stored one)" if block_exists else ""
        value = getpass.getpass(f"MySQL password of the sync's user{keep}: ")
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    return value or None


def setup_mysql_password(name: str) -> None:
    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    try:
        block: Secret[str] = Secret.load(name)  # type: ignore[assignment]  # sync context
        stored: str | None = str(block.get())
    except ValueError:  # no such block
        stored = None
    password = _new_password(stored is not None)
    if password is None:
        if stored is None:
            raise SystemExit(
                f"Secret block {name!r} does not exist and no password was given: "
                "set PARTYHELP_MYSQL_PASSWORD or pass it on stdin"
            )
        say("Secret block", name, "unchanged (no new password given)")
    elif password == stored:
        say("Secret block", name, "unchanged")
    else:
        Secret(value=SecretStr(password)).save(name, overwrite=True)
        say("Secret block", name, "created" if stored is None else "updated")


def setup_gcp_credentials(name: str, key_file: Path | None) -> Any:
    """The named ``GcpCredentials`` block, first saved from ``key_file`` if one is given."""
    from prefect_gcp import GcpCredentials

    if key_file is not None:
        info = json.loads(key_file.read_text())
        try:
            current = GcpCredentials.load(name)
            same = (
                current.service_account_info is not None
                and current.service_account_info.get_secret_value() == info
            )
        except ValueError:
            current, same = None, False
        if same:
            say("GcpCredentials block", name, "unchanged")
        else:
            GcpCredentials(service_account_info=info, project=info.get("project_id")).save(
                name, overwrite=True
            )
            say("GcpCredentials block", name, "created" if current is None else "updated")
    try:
        return GcpCredentials.load(name)
    except ValueError:
        raise SystemExit(
            f"GcpCredentials block {name!r} does not exist: create it in the "
            "Prefect UI or pass --service-account-key-file"
        ) from None


def _stored_results_block(name: str) -> tuple[str | None, str | None, str | None] | None:
    """(bucket, folder, credentials block name) of the stored GcsBucket block, if any.

    Read as a block document, so that no credentials are needed to look.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            document = client.read_block_document_by_name(name, "gcs-bucket", include_secrets=False)
        except ObjectNotFound:
            return None
    reference = document.block_document_references.get("gcp_credentials") or {}
    return (
        document.data.get("bucket"),
        document.data.get("bucket_folder"),
        (reference.get("block_document") or {}).get("name"),
    )


def setup_results_block(
    name: str, bucket: str, folder: str, credentials: tuple[str, Any] | None
) -> None:
    """The GcsBucket block of task results, using the named credentials block if given."""
    from prefect_gcp import GcpCredentials, GcsBucket

    folder = folder.strip("/") + "/"
    wanted = (bucket, folder, credentials[0] if credentials else None)
    stored = _stored_results_block(name)
    what = f"{name} (gs://{bucket}/{folder})"
    if stored == wanted:
        say("GcsBucket block", what, "unchanged")
        return
    # Without a named block: application default credentials, wherever the block is loaded.
    GcsBucket(
        bucket=bucket,
        bucket_folder=folder,
        gcp_credentials=credentials[1] if credentials else GcpCredentials(),
    ).save(name, overwrite=True)
    say("GcsBucket block", what, "created" if stored is None else "updated")


# ------------------------------------------------------------------ Prefect Variable


def production_settings(env: Mapping[str, str], password_block: str | None) -> dict[str, str]:
    """What a deployment's runs read from the settings Variable: every setting a Variable
    may hold that is set in ``env``, plus the password block's name; checked as a run
    checks them (the Secret blocks stand for the secrets)."""
    values = {name: env[name].strip() for name in variable_settings() if env.get(name, "").strip()}
    if password_block:
        values["PARTYHELP_MYSQL_PASSWORD_BLOCK"] = password_block
    if "PARTYHELP_CLOCK_DATE" in values:
        raise SystemExit(
            "setup: PARTYHELP_CLOCK_DATE is a test clock: unset it before "
            "writing the production settings"
        )
    salt = "in-its-block" if values.get("PARTYHELP_PII_SALT_BLOCK") else None
    try:
        load_settings(values, pii_salt=salt)
    except ConfigError as exc:
        raise SystemExit(f"setup: --settings-variable: {exc}") from None
    return values


def setup_settings_variable(name: str, values: dict[str, str]) -> None:
    """The Prefect Variable ``name`` holds exactly ``values``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import VariableCreate, VariableUpdate

    with get_client(sync_client=True) as client:
        stored = client.read_variable_by_name(name)
        if stored is None:
            client.create_variable(VariableCreate(name=name, value=values))
            outcome = "created"
        elif stored.value == values:
            outcome = "unchanged"
        else:
            client.update_variable(VariableUpdate(name=name, value=values))
            outcome = "updated"
    say("Prefect Variable", f"{name} ({len(values)} settings)", outcome)


# ------------------------------------------------------------------ Prefect automations


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UNIT_WORDS = {"d": "day", "h": "hour", "m": "minute", "s": "second"}


def parse_duration(text: str) -> int:
    """Seconds of ``4h``, ``90m``, ``20s``, ``1d`` or a plain number of seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 4h, 90m, 20s)")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def duration_text(seconds: int) -> str:
    """``14400`` -> ``4 hours``; ``90`` -> ``90 seconds``."""
    for unit in "dhm":
        if seconds % _UNITS[unit] == 0:
            count = seconds // _UNITS[unit]
            return f"{count} {_UNIT_WORDS[unit]}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def find_notification_block(name: str) -> UUID:
    """The id of the notification block ``NAME`` (any type that can notify) or ``TYPE/NAME``."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    slug, _, block_name = name.rpartition("/")
    with get_client(sync_client=True) as client:
        if slug:
            try:
                found = [
                    client.read_block_document_by_name(block_name, slug, include_secrets=False)
                ]
            except ObjectNotFound:
                found = []
        else:
            found, offset = [], 0
            while page := client.read_block_documents(
                offset=offset, limit=200, include_secrets=False
            ):
                found += [doc for doc in page if doc.name == block_name]
                offset += len(page)
    found = [doc for doc in found if doc.block_schema and "notify" in doc.block_schema.capabilities]
    if not found:
        raise SystemExit(
            f"setup: no notification block named {name!r}: make one (Slack, "
            "Teams, email or custom webhook), see docs/OPERATIONS.md, Alerts"
        )
    if len(found) > 1:
        kinds = ", ".join(f"{doc.block_type.slug}/{block_name}" for doc in found if doc.block_type)
        raise SystemExit(
            f"setup: several notification blocks are named {name!r}: pass one of {kinds}"
        )
    return found[0].id


def declared_automations(values: Mapping[str, object], path: Path = AUTOMATIONS_FILE) -> list[Any]:
    """The automations of ``automations.yaml``, its ``$placeholders`` filled in."""
    import yaml
    from prefect.automations import Automation

    text = string.Template(path.read_text()).substitute(
        {key: str(value) for key, value in values.items()}
    )
    return [Automation.model_validate(item) for item in yaml.safe_load(text)["automations"]]


def _comparable(automation: Any) -> dict[str, Any]:
    """What setup declares of an automation: not its id, owner, nor whether it is paused."""
    # Python mode: the trigger's event sets compare as sets, whatever their order.
    data: dict[str, Any] = automation.model_dump(exclude={"id", "enabled", "owner_resource"})
    return data


def setup_automation(wanted: Any) -> None:
    """Create the automation, or update the one of that name; a paused one stays paused.
    Others of the same name (a second `prefect automation create`) are deleted."""
    from prefect.automations import Automation
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        stored = [
            Automation(**a.model_dump()) for a in client.read_automations_by_name(wanted.name)
        ]
    extra = ""
    for duplicate in stored[1:]:
        duplicate.delete()
        extra = f", {len(stored) - 1} duplicate(s) of that name deleted"
    if not stored:
        wanted.create()
        say("Automation", wanted.name, "created")
        return
    current = stored[0]
    paused = "" if current.enabled else " (paused)"
    if _comparable(current) == _comparable(wanted):
        say("Automation", wanted.name, f"unchanged{paused}{extra}")
        return
    wanted.id, wanted.enabled = current.id, current.enabled
    wanted.update()
    say("Automation", wanted.name, f"updated{paused}{extra}")


def setup_automations(block: str, deployment: str, within: int, ui_url: str) -> None:
    """The automations of ``automations.yaml``, sending through the block ``block``."""
    flow, _, deployment_name = deployment.partition("/")
    values = {
        "notify_block_id": find_notification_block(block),
        "flow": flow,
        "deployment": deployment_name,
        "completed_within": within,
        "within_text": duration_text(within),
        "ui_url": ui_url.rstrip("/"),
    }
    for automation in declared_automations(values):
        setup_automation(automation)


# ------------------------------------------------------------------ GCP


def setup_dataset(settings: Settings) -> None:
    client = bigquery_client(settings)
    reference = f"{settings.bq_project}.{settings.bq_dataset}"
    try:
        dataset = client.get_dataset(reference)
    except gexc.NotFound:
        ensure_dataset(open_warehouse(settings))
        say("BigQuery dataset", f"{reference} ({settings.bq_location})", "created")
        return
    if (dataset.location or "").lower() != settings.bq_location.lower():
        raise SystemExit(
            f"dataset {reference} is in {dataset.location}, not "
            f"PARTYHELP_BQ_LOCATION={settings.bq_location}: a dataset cannot move"
        )
    if dataset.description == DATASET_DESCRIPTION:
        say("BigQuery dataset", reference, "unchanged")
        return
    dataset.description = DATASET_DESCRIPTION
    client.update_dataset(dataset, ["description"])
    say("BigQuery dataset", reference, "updated (description)")


def retention_rule(prefix: str, days: int) -> dict[str, Any]:
    """The lifecycle rule, as the JSON API holds it."""
    return {"action": {"type": "Delete"}, "condition": {"age": days, "matchesPrefix": [prefix]}}


def setup_bucket(settings: Settings, days: int) -> None:
    client = storage_client(settings)
    try:
        bucket = client.get_bucket(settings.gcs_bucket)
    except gexc.NotFound:
        bucket = client.bucket(settings.gcs_bucket)
        bucket.iam_configuration.uniform_bucket_level_access_enabled = True  # for IAM conditions
        bucket.iam_configuration.public_access_prevention = "enforced"
        bucket = client.create_bucket(bucket, location=settings.bq_location)
        say("GCS bucket", f"gs://{bucket.name} ({settings.bq_location})", "created")
    prefix = export_prefix(settings.gcs_prefix)
    rules = [dict(rule) for rule in bucket.lifecycle_rules]
    ours = [
        r
        for r in rules
        if r.get("action", {}).get("type") == "Delete"
        and r.get("condition", {}).get("matchesPrefix") == [prefix]
    ]
    what = f"gs://{bucket.name}/{prefix}* deleted after {days} days"
    if ours == [retention_rule(prefix, days)]:
        say("GCS lifecycle rule", what, "unchanged")
        return
    bucket.lifecycle_rules = [r for r in rules if r not in ours]  # other rules are kept
    bucket.add_lifecycle_delete_rule(age=days, matches_prefix=[prefix])
    bucket.patch()
    say("GCS lifecycle rule", what, "updated" if ours else "created")


# ------------------------------------------------------------------ command


def _add_alert_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--notify-block",
        default=None,
        metavar="NAME",
        help="create or update the automations of automations.yaml, sending "
        "through this notification block (NAME or TYPE/NAME; default: "
        "leave the automations alone)",
    )
    parser.add_argument(
        "--completed-within",
        type=parse_duration,
        default=parse_duration(DEFAULT_COMPLETED_WITHIN),
        metavar="DURATION",
        help="alert when a run of --alert-deployment has not Completed this "
        "long after it started or became Late, e.g. 4h, 90m, 20s "
        f"(default: {DEFAULT_COMPLETED_WITHIN})",
    )
    parser.add_argument(
        "--alert-deployment",
        default=DEFAULT_ALERT_DEPLOYMENT,
        metavar="FLOW/DEPLOYMENT",
        help="the deployment watched for missing runs (default: %(default)s)",
    )
    parser.add_argument(
        "--ui-url",
        default=None,
        help="the Prefect UI's address in the links of notifications "
        "(default: PREFECT_UI_URL, which follows PREFECT_API_URL)",
    )


def parse_args(argv: Sequence[str], env: Mapping[str, str]) -> argparse.Namespace:
    """The options, checked; ``env`` gives the defaults the settings name."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.setup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--results-block",
        default="partyhelp-results",
        help="GcsBucket block for task results; '' to skip, e.g. for a "
        "local process worker, which keeps them in local storage "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--results-bucket", default=None, help="its bucket (default: PARTYHELP_GCS_BUCKET)"
    )
    parser.add_argument(
        "--results-folder",
        default="prefect-results",
        help="its folder in that bucket (default: %(default)s)",
    )
    parser.add_argument(
        "--mysql-password-block",
        default=env.get("PARTYHELP_MYSQL_PASSWORD_BLOCK") or "partyhelp-mysql-password",
        help="Secret block of the MySQL password; '' to skip "
        "(default: PARTYHELP_MYSQL_PASSWORD_BLOCK or %(default)s)",
    )
    parser.add_argument(
        "--gcp-credentials-block",
        default=env.get("PARTYHELP_GCP_CREDENTIALS_BLOCK") or None,
        help="GcpCredentials block to use (default: "
        "PARTYHELP_GCP_CREDENTIALS_BLOCK; none: application default "
        "credentials)",
    )
    parser.add_argument(
        "--service-account-key-file",
        type=Path,
        default=None,
        help="save this key into --gcp-credentials-block first",
    )
    parser.add_argument(
        "--retention-days",
        type=int,
        default=DEFAULT_RETENTION_DAYS,
        help="delete exports older than this (default: %(default)s)",
    )
    parser.add_argument(
        "--settings-variable",
        default=None,
        metavar="NAME",
        help="write this shell's PARTYHELP_* settings (no secret) into the "
        "Prefect Variable NAME, which the deployments of prefect.yaml "
        "read (partyhelp_settings); default: leave it alone",
    )
    _add_alert_args(parser)
    args = parser.parse_args(argv)
    _check_args(parser, args)
    return args


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse values argparse cannot check alone, each naming its option."""
    if args.completed_within < MIN_COMPLETED_WITHIN:
        parser.error(f"--completed-within must be at least {MIN_COMPLETED_WITHIN}s")
    if not re.fullmatch(r"[^/]+/[^/]+", args.alert_deployment):
        parser.error("--alert-deployment must be FLOW/DEPLOYMENT")
    if args.retention_days < 1:
        parser.error("--retention-days must be at least 1")
    if args.service_account_key_file and not args.gcp_credentials_block:
        parser.error("--service-account-key-file needs --gcp-credentials-block NAME")
    if args.settings_variable is not None:
        try:
            validate_variable_name(args.settings_variable, "--settings-variable")
        except ConfigError as exc:
            parser.error(str(exc))


def _prefect_ui_url() -> str:
    from prefect.settings import PREFECT_UI_URL

    url = PREFECT_UI_URL.value()
    if not url:
        raise SystemExit(
            "setup: no Prefect UI address for the links in notifications: set "
            "PREFECT_API_URL (or PREFECT_UI_URL), or pass --ui-url"
        )
    return str(url)


def main(argv: Sequence[str] | None = None) -> int:
    env = dict(os.environ)
    args = parse_args(sys.argv[1:] if argv is None else argv, env)
    if args.gcp_credentials_block:
        env["PARTYHELP_GCP_CREDENTIALS_BLOCK"] = args.gcp_credentials_block
    try:
        settings = load_settings({**_NOT_USED_HERE, **env})
    except ConfigError as exc:
        raise SystemExit(f"setup: {exc}") from None
    production = (
        production_settings(env, args.mysql_password_block) if args.settings_variable else None
    )  # checked before anything changes
    credentials = None
    if args.gcp_credentials_block:
        credentials = (
            args.gcp_credentials_block,
            setup_gcp_credentials(args.gcp_credentials_block, args.service_account_key_file),
        )
    if args.mysql_password_block:
        setup_mysql_password(args.mysql_password_block)
    if args.settings_variable and production is not None:
        setup_settings_variable(args.settings_variable, production)
    if args.results_block:
        setup_results_block(
            args.results_block,
            args.results_bucket or settings.gcs_bucket,
            args.results_folder,
            credentials,
        )
    if args.notify_block:
        setup_automations(
            args.notify_block,
            args.alert_deployment,
            args.completed_within,
            args.ui_url or _prefect_ui_url(),
        )
    setup_dataset(settings)
    setup_bucket(settings, args.retention_days)
    return 0


if __name__ == "__main__":
    sys.exit(main())
