"""Settings: defaults, environment, derived URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from master.settings import Settings


def test_defaults_derive_from_data_dir_host_and_port(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'mlbench.db'}"
    assert settings.resolved_public_url == "http://127.0.0.1:8000"
    assert settings.admin_token is None and settings.auth_reads is False
    assert (settings.stop_grace_s, settings.metrics_grace_s) == (10, 60)
    assert settings.max_points_per_read == 50_000


def test_every_field_is_documented() -> None:
    assert all(field.description for field in Settings.model_fields.values())


def test_environment_with_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLBENCH_ADMIN_TOKEN", "s3cret")
    monkeypatch.setenv("MLBENCH_AUTH_READS", "true")
    monkeypatch.setenv("MLBENCH_PORT", "9001")
    monkeypatch.setenv("MLBENCH_HOST", "0.0.0.0")
    settings = Settings()
    assert settings.data_dir == tmp_path
    assert settings.admin_token is not None and settings.admin_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.auth_reads is True
    # A wildcard bind address is not reachable as such: local workers use the loopback.
    assert settings.resolved_public_url == "http://127.0.0.1:9001"


def test_public_url_and_postgres_urls() -> None:
    settings = Settings(public_url="http://master.svc:8000/", database_url="postgresql://u@h/db")
    assert settings.resolved_public_url == "http://master.svc:8000"
    assert settings.resolved_database_url == "postgresql+psycopg://u@h/db"
    assert Settings(database_url="postgres://h/db").resolved_database_url == (
        "postgresql+psycopg://h/db"
    )
    explicit = "postgresql+psycopg://h/db"
    assert Settings(database_url=explicit).resolved_database_url == explicit
