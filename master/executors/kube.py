"""The master's access to the Kubernetes API: the run Secrets of the Argo executor and the
node list of ``GET /nodes``. Every call has a timeout and no silent retries, and every error
becomes one readable ``ServiceError`` (``cluster_errors.kube_error``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from master.errors import ExecutorConflict, ExecutorFailed
from master.executors.cluster_errors import kube_error, kube_status

log = logging.getLogger(__name__)

T = TypeVar("T")

WORKFLOW_API_VERSION = "argoproj.io/v1alpha1"


class KubeAccess:
    """A lazily built client: a master whose cluster is unreachable still starts; the first
    call that needs the cluster says why it cannot reach it."""

    def __init__(self, kubeconfig: str | Path | None = None, timeout_s: float = 15.0) -> None:
        self.kubeconfig = kubeconfig
        self.timeout_s = timeout_s
        self._client: Any = None
        self._lock = threading.Lock()

    def api(self) -> Any:
        """The ``kubernetes.client.ApiClient`` (built on first use)."""
        with self._lock:
            if self._client is None:
                from kubernetes.client import rest

                from workflows.kube import api_client

                client = api_client(self.kubeconfig)
                # One try per call: urllib3 would otherwise retry a hanging GET three times.
                client.configuration.retries = 0
                client.rest_client = rest.RESTClientObject(client.configuration)
                self._client = client
            return self._client

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api())

    def call(self, action: str, namespace: str | None, fn: Callable[[Any], T]) -> T:
        """``fn(CoreV1Api)``; errors mapped to a ``ServiceError`` naming ``action``."""
        try:
            return fn(self.core())
        except Exception as exc:
            error = kube_error(
                exc, self.url(), action, namespace=namespace, timeout_s=self.timeout_s
            )
            if kube_status(exc) == 401:
                self._forget()  # a rotated or refreshed credential: read the config again
            raise error from exc

    def url(self) -> str:
        """The API server's address, for messages."""
        client = self._client
        if client is not None:
            return str(client.configuration.host)
        return str(self.kubeconfig or "the configured cluster")

    def _forget(self) -> None:
        with self._lock:
            self._client = None

    # -- the run Secret ---------------------------------------------------------------------

    def put_secret(
        self, name: str, namespace: str, data: dict[str, str], labels: dict[str, str]
    ) -> None:
        """Create the Secret, or replace one left behind under the same name."""
        from kubernetes import client

        body = client.V1Secret(
            api_version="v1",
            kind="Secret",
            metadata=client.V1ObjectMeta(name=name, namespace=namespace, labels=labels),
            string_data=data,
            type="Opaque",
        )
        timeout = self.timeout_s
        try:
            self.call(
                f"create Secret {name}",
                namespace,
                lambda core: core.create_namespaced_secret(
                    namespace, body, _request_timeout=timeout
                ),
            )
        except ExecutorConflict:
            log.info(
                "Secret %s/%s exists (left by an earlier master?); replacing it", namespace, name
            )
            self.call(
                f"replace Secret {name}",
                namespace,
                lambda core: core.replace_namespaced_secret(
                    name, namespace, body, _request_timeout=timeout
                ),
            )

    def own_secret(self, name: str, namespace: str, workflow: str, uid: str) -> None:
        """Make the Workflow the Secret's owner: Kubernetes deletes the Secret with it."""
        patch = {
            "metadata": {
                "ownerReferences": [
                    {
                        "apiVersion": WORKFLOW_API_VERSION,
                        "kind": "Workflow",
                        "name": workflow,
                        "uid": uid,
                        "blockOwnerDeletion": False,
                    }
                ]
            }
        }
        timeout = self.timeout_s
        self.call(
            f"set the owner of Secret {name}",
            namespace,
            lambda core: core.patch_namespaced_secret(
                name, namespace, patch, _request_timeout=timeout
            ),
        )

    def delete_secret_quietly(self, name: str, namespace: str) -> None:
        """Best effort (after a failed submission); 404 is fine, other errors are logged."""
        timeout = self.timeout_s
        try:
            self.call(
                f"delete Secret {name}",
                namespace,
                lambda core: core.delete_namespaced_secret(
                    name, namespace, _request_timeout=timeout
                ),
            )
        except ExecutorFailed as exc:
            if exc.__cause__ is None or kube_status(exc.__cause__) != 404:
                log.warning("could not delete Secret %s/%s: %s", namespace, name, exc.detail)
