from __future__ import annotations

from pathlib import Path

import pytest

STORE_ID = "1234567890"
ROLE_ARN = "arn:aws:iam::123456789012:role/OmicsImport"


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"
