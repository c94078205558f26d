"""The Prefect flows of the sync and its command line."""

import os

# Without PREFECT_API_URL a command starts a temporary Prefect server; Prefect gives it 20 s,
# which a busy 2-core machine can exceed. Set before any flow module imports Prefect.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
