"""Master configuration, read from ``MLBENCH_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from platformdirs import user_data_dir
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlbench_core.spec import ExecutorKind

if TYPE_CHECKING:
    from workflows.config import ClusterConfig


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
    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted; a larger one is refused with 413 before it "
        "is parsed (a 10,000-point metric batch is about 1.2 MB).",
    )
    heartbeat_timeout_s: float = Field(
        60,
        gt=0,
        description="A running run whose worker sent no heartbeat for this long fails (the "
        "process is gone, frozen or cut off); workers beat every 2 s.",
    )
    progress_timeout_s: float = Field(
        1800,
        gt=0,
        description="A running run whose worker still beats but whose training thread made no "
        "progress (no metric logged) for this long fails as hung.",
    )
    max_points_per_read: int = Field(
        50_000, ge=1, description="Upper bound on the points one metrics read scans and returns."
    )
    default_executor: ExecutorKind = Field(
        ExecutorKind.local,
        description="Executor of runs whose spec names none: local or argo.",
    )
    worker_image: str | None = Field(
        None,
        description="Image of runs whose spec keeps the release's default worker image "
        "(e.g. the same image from a private registry).",
    )
    worker_cuda_image: str | None = Field(
        None, description="As worker_image, for runs that ask for GPUs."
    )
    worker_cpu: float | None = Field(
        None, gt=0, description="CPU cores per worker of runs whose spec keeps default resources."
    )
    worker_memory: str | None = Field(
        None, description="Memory per worker of runs whose spec keeps default resources."
    )
    worker_gpu: int | None = Field(
        None, ge=0, description="GPUs per worker of runs whose spec keeps default resources."
    )

    # -- Kubernetes path: Argo Server and the cluster -------------------------------------------
    argo_server: str | None = Field(
        None,
        description="Argo Server URL, e.g. https://argo-server.argo:2746; the argo executor is "
        "configured iff this is set.",
    )
    argo_token: SecretStr | None = Field(
        None, description="Bearer token for the Argo Server (without the 'Bearer ' prefix)."
    )
    argo_token_file: Path | None = Field(
        None,
        description="File holding the Argo Server token, read again on every request so a "
        "rotated token works, e.g. /var/run/secrets/kubernetes.io/serviceaccount/token; "
        "used when argo_token is unset.",
    )
    argo_verify_tls: bool = Field(True, description="Verify the Argo Server's TLS certificate.")
    argo_ca_file: Path | None = Field(
        None, description="CA bundle to verify the Argo Server with (default: the system's)."
    )
    argo_namespace: str = Field(
        "mlbench", description="Namespace of the run workflows, their pods and Secrets."
    )
    argo_service_account: str = Field(
        "mlbench-workflow", description="Service account of the workflows' step pods."
    )
    argo_data_pvc: str = Field(
        "mlbench-data",
        description="PersistentVolumeClaim mounted as the workers' data dir (datasets are "
        "downloaded once); empty gives each pod an emptyDir.",
    )
    argo_api_url: str | None = Field(
        None,
        description="Master URL as the workflow pods reach it, e.g. "
        "http://mlbench-master.mlbench:8000; default public_url.",
    )
    argo_poll_s: float = Field(
        10, gt=0, description="Seconds between two status polls of the live workflows."
    )
    argo_request_timeout_s: float = Field(
        15, gt=0, description="Timeout of one request to the Argo Server or the Kubernetes API."
    )
    argo_ready_timeout_s: int = Field(
        900, ge=1, description="How long a run's workflow waits for all worker pods to be ready."
    )
    kubeconfig: Path | None = Field(
        None,
        description="Kubeconfig for the Kubernetes API (run Secrets, GET /nodes); default: the "
        "pod's service account in a cluster, else $KUBECONFIG or ~/.kube/config.",
    )
    cluster_domain: str = Field(
        "cluster.local", description="DNS suffix of the cluster (worker pods' full names)."
    )

    @field_validator("argo_server")
    @classmethod
    def _argo_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"argo_server {value!r} must start with http:// or https://")
        return value.rstrip("/")

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

    @property
    def resolved_argo_api_url(self) -> str:
        """The master's URL as the workflow pods reach it."""
        if self.argo_api_url:
            return self.argo_api_url.rstrip("/")
        return self.resolved_public_url

    def cluster_config(self) -> ClusterConfig:
        """Where and how run workflows run, for ``workflows.run_workflow.build_workflow``."""
        from workflows.config import ClusterConfig

        return ClusterConfig(
            namespace=self.argo_namespace,
            service_account=self.argo_service_account,
            data_pvc=self.argo_data_pvc or None,
            cluster_domain=self.cluster_domain,
            ready_timeout_s=self.argo_ready_timeout_s,
        )
