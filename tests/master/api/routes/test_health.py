"""Route /health."""

from __future__ import annotations

from master import __version__
from tests.master.conftest import API, Master


def test_health_reports_the_database_dialect(master: Master) -> None:
    response = master.client.get(f"{API}/health")
    assert response.status_code == 200
    expected = "postgresql" if master.settings.database_url else "sqlite"
    assert response.json() == {"status": "ok", "database": expected, "version": __version__}


def test_health_needs_no_token_even_when_reads_do(master: Master) -> None:
    master.settings.auth_reads = True
    assert master.client.get(f"{API}/health").status_code == 200
