"""Access to the Kubernetes API, for the master (Secrets, nodes) and the in-pod steps (pods)."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException


class KubeConfigError(Exception):
    """No usable cluster configuration; the message says what was tried."""


def api_client(kubeconfig: str | Path | None = None) -> client.ApiClient:
    """An API client from, in order: ``kubeconfig`` when given, the pod's service account
    when running in a cluster, else ``$KUBECONFIG`` / ``~/.kube/config``.

    Each call builds its own client (no process-wide default configuration is touched), so a
    master can talk to one cluster while tests talk to another.
    """
    try:
        if kubeconfig is not None:
            return config.new_client_from_config(config_file=str(kubeconfig))
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        return config.new_client_from_config()
    except (ConfigException, OSError) as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise KubeConfigError(
            f"no Kubernetes configuration: not in a cluster and {where} is unusable ({exc})"
        ) from None
