"""Dashboard configuration, read from ``MLBENCH_*`` environment variables (pydantic-settings).

The dashboard finds its master the way the CLI does (master/cli/connect.py): ``MLBENCH_API_URL``,
else ``http://<MLBENCH_HOST>:<MLBENCH_PORT>``; the admin token from ``MLBENCH_ADMIN_TOKEN``, else
the ``admin-token`` file a local master wrote into its data dir.
"""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DashboardSettings(BaseSettings):
    """Each field is ``MLBENCH_<FIELD>``; the names the master uses mean the same thing here."""

    model_config = SettingsConfigDict(env_prefix="MLBENCH_", extra="ignore")

    api_url: str | None = Field(
        None, description="Master URL as the dashboard reaches it; default http://<host>:<port>."
    )
    host: str = Field("127.0.0.1", description="The master's address (when api_url is unset).")
    port: int = Field(8000, ge=1, le=65535, description="The master's port (api_url unset).")
    admin_token: SecretStr | None = Field(
        None, description="Admin token; default: <data_dir>/admin-token of a local master."
    )
    data_dir: Path = Field(
        default_factory=lambda: Path(user_data_dir("mlbench")),
        description="The local master's data dir, where its admin-token file is.",
    )
    dashboard_host: str = Field("127.0.0.1", description="Interface the dashboard binds to.")
    dashboard_port: int = Field(
        5006, ge=0, le=65535, description="Dashboard port; 0 = no dashboard (mlbench serve/run)."
    )
    dashboard_allow_origins: str = Field(
        "",
        description="Extra websocket origins, comma separated (host or host:port, e.g. the "
        "Ingress host mlbench.example.com); localhost and the bind address are always allowed.",
    )
    api_timeout_s: float = Field(5.0, gt=0, description="Timeout of one call to the master.")
    runs_refresh_ms: int = Field(2000, ge=200, description="Runs table refresh period.")
    run_refresh_ms: int = Field(1000, ge=200, description="Run view (live curves) refresh period.")
    compare_refresh_ms: int = Field(5000, ge=200, description="Compare view refresh period.")
    nodes_refresh_ms: int = Field(5000, ge=200, description="Nodes view refresh period.")

    @property
    def resolved_api_url(self) -> str:
        if self.api_url:
            return self.api_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def allowed_origins(self) -> list[str]:
        """``dashboard_allow_origins`` as a list, blanks dropped."""
        return [o.strip() for o in self.dashboard_allow_origins.split(",") if o.strip()]

    def token(self) -> str | None:
        """MLBENCH_ADMIN_TOKEN, else the token file of a master on this machine, else None
        (then the dashboard can read, if reads are open, but not start or stop runs)."""
        if self.admin_token is not None:
            return self.admin_token.get_secret_value()
        try:
            return (self.data_dir / "admin-token").read_text().strip() or None
        except OSError:
            return None
