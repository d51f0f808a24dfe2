"""Admin token generation and worker token hashing."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from master.auth import ensure_admin_token, hash_token, new_token, token_matches
from master.settings import Settings


def test_admin_token_is_generated_once_into_a_private_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    token = ensure_admin_token(settings)
    path = tmp_path / "data" / "admin-token"
    assert path.read_text().strip() == token and len(token) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert capsys.readouterr().err == f"mlbench admin token written to {path}\n"

    assert ensure_admin_token(settings) == token  # read back, not printed again
    assert capsys.readouterr().err == ""


def test_admin_token_from_settings_wins(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, admin_token="from-env")
    assert ensure_admin_token(settings) == "from-env"
    assert not (tmp_path / "admin-token").exists()


def test_an_empty_token_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "admin-token").write_text("\n")
    token = ensure_admin_token(Settings(data_dir=tmp_path))
    assert token and (tmp_path / "admin-token").read_text().strip() == token


def test_worker_tokens_are_compared_by_hash() -> None:
    token = new_token()
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token_matches(token, hash_token(token))
    assert not token_matches(token + "x", hash_token(token))
    assert new_token() != token
