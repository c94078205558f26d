"""Create the demo source database, its SELECT-only reader and the demo bucket.

Reads the same PARTYHELP_* variables as the sync (``eval "$(scripts/stack.sh env --demo)"``
sets the demo's, as ``scripts/demo.sh`` does); the database is rebuilt from scratch each
time with the synthetic generator, its dates moved to end an hour ago.
"""

from __future__ import annotations

import argparse
import contextlib
import os

import pymysql
from google.api_core import exceptions as gexc

from partyhelp_pipeline.clients import storage_client
from partyhelp_pipeline.settings import load_settings
from scripts import synthetic

ADMIN = {
    "host": os.environ.get("PARTYHELP_MYSQL_HOST", "127.0.0.1"),
    "port": int(os.environ.get("PARTYHELP_MYSQL_PORT", "3306")),
    "user": os.environ.get("PARTYHELP_DEMO_ADMIN_USER", "root"),
    "password": os.environ.get("PARTYHELP_DEMO_ADMIN_PASSWORD", ""),
}


def main() -> None:
    """Rebuild the demo database and make sure the reader and bucket exist."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    settings = load_settings()
    database, user = settings.mysql.database, settings.mysql.user
    with pymysql.connect(**ADMIN, autocommit=True) as connection, connection.cursor() as cur:
        # Identifiers come from the demo's own defaults; values go in as parameters.
        cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        for host in ("localhost", "127.0.0.1"):
            cur.execute(
                f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY %s",
                (settings.mysql.password.get_secret_value(),),
            )
    # Dated to end today, so the demo's source is fresh whatever the day (README, "Source
    # freshness").
    counts = synthetic.load(
        ADMIN,
        database,
        scale=args.scale,
        seed=args.seed,
        edge_cases=False,
        create_schema=True,
        ends_now=True,
    )
    with pymysql.connect(**ADMIN, autocommit=True) as connection, connection.cursor() as cur:
        for host in ("localhost", "127.0.0.1"):
            cur.execute(f"GRANT SELECT ON `{database}`.* TO '{user}'@'{host}'")
    print(f"demo database {database}: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    # A bucket kept from an earlier demo stays, with its exports, as in production. A new one
    # goes where the dataset will be: BigQuery loads only from a colocated bucket (the flow's
    # first check), as scripts.setup does for production.
    with contextlib.suppress(gexc.Conflict):
        storage_client(settings).create_bucket(settings.gcs_bucket, location=settings.bq_location)
    print(f"bucket gs://{settings.gcs_bucket} ready; user {user} may only SELECT")


if __name__ == "__main__":
    main()
