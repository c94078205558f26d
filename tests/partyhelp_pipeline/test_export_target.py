"""An export's target is resolved once from the settings: the source, the bucket, the sizes
and the PII choice, with the secrets kept out of its text."""

from __future__ import annotations

from partyhelp_pipeline.export_target import ExportTarget
from partyhelp_pipeline.settings import load_settings
from tests.conftest import READER_PASSWORD, sync_environment

SALT = "salt-" + "5" * 32


def _target(**overrides: str) -> ExportTarget:
    env = sync_environment("ph_db", "reader", "ph-bucket", "ph_dataset", **overrides)
    return ExportTarget.from_settings(load_settings(env))


def test_the_target_holds_what_the_settings_say() -> None:
    target = _target(
        PARTYHELP_CHUNK_ROWS="500",
        PARTYHELP_BATCH_ROWS="50",
        PARTYHELP_PART_MAX_BYTES="4096",
        PARTYHELP_PROGRESS_SECONDS="7",
    )
    assert (target.bucket, target.prefix) == ("ph-bucket", "exports")
    assert (target.source.database, target.source.user) == ("ph_db", "reader")
    assert (target.chunk_rows, target.batch_rows, target.part_max_bytes) == (500, 50, 4096)
    assert target.progress_seconds == 7
    assert not target.include_pii_hashes and target.salt_bytes is None


def test_the_pii_salt_and_the_password_never_show_in_its_text() -> None:
    target = _target(PARTYHELP_INCLUDE_PII_HASHES="true", PARTYHELP_PII_SALT=SALT)
    assert target.include_pii_hashes and target.salt_bytes == SALT.encode()
    for text in (repr(target), str(target), str(target.pii_salt), repr(target.source)):
        assert SALT not in text and READER_PASSWORD not in text
