"""Master configuration, read from ``MLBENCH_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def normalize_database_url(url: str) -> str:
    """Pin PostgreSQL URLs to psycopg 3, the only PostgreSQL driver we install.

    ``postgresql://`` (and Heroku-style ``postgres://``) would otherwise select psycopg2.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Settings(BaseSettings):
    """Everything the master can be configured with; each field is ``MLBENCH_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="MLBENCH_", extra="ignore")

    data_dir: Path = Field(
        default_factory=lambda: Path(user_data_dir("mlbench")),
        description="Directory for the SQLite database, the admin token and run logs.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/mlbench.db. "
        "postgresql:// URLs are served with psycopg 3.",
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Admin bearer token; when unset one is generated into <data_dir>/admin-token.",
    )
    auth_reads: bool = Field(False, description="Require a valid token for read routes too.")
    host: str = Field("127.0.0.1", description="Interface the HTTP server binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port the HTTP server binds to.")
    public_url: str | None = Field(
        None,
        description="Base URL workers use to reach the master; default http://<host>:<port>.",
    )
    stop_grace_s: float = Field(
        10, ge=0, description="Seconds workers get to end after a stop before they are killed."
    )
    metrics_grace_s: float = Field(
        60, ge=0, description="Metrics are still accepted this many seconds after a run ended."
    )
    max_points_per_read: int = Field(
        50_000, ge=1, description="Upper bound on the points one metrics read scans and returns."
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite:///{self.data_dir / 'mlbench.db'}"

    @property
    def resolved_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        # A wildcard bind address is not something a client can connect to; local workers can
        # always reach the loopback interface.
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        return f"http://{host}:{self.port}"
