"""Worker pod mode: a StatefulSet pod learns its rank from its name and waits for DNS.

The Argo path runs the workers as a StatefulSet (DESIGN.md: Kubernetes path). Its pod spec is
the same for every replica, so it cannot carry ``RANK``: instead each pod gets its own name in
``MLBENCH_POD_NAME`` (``<statefulset>-<ordinal>``, set from ``metadata.name``) and the ordinal
is the rank. ``MASTER_ADDR`` is pod 0's name behind the headless Service, which only resolves
once that pod has an address, so a pod waits (bounded) for it before joining the group: torch
would otherwise fail the rendezvous at once with a resolver error.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from worker.invocation import UsageError

POD_NAME_ENV = "MLBENCH_POD_NAME"
DNS_TIMEOUT_ENV = "MLBENCH_DNS_TIMEOUT_S"
DEFAULT_DNS_TIMEOUT_S = 300.0

log = logging.getLogger("mlbench.worker.pod")

# A StatefulSet pod is named ``<set name>-<ordinal>``; the ordinal has no leading zeros. The
# set name is a DNS label (lowercase letters, digits, '-'), which this also checks.
_POD_NAME = re.compile(r"^(?P<set>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-(?P<ordinal>0|[1-9][0-9]{0,8})$")
_MAX_POD_NAME = 63

Resolver = Callable[[str, int], object]


class MasterAddrUnresolved(Exception):
    """``MASTER_ADDR`` did not resolve in time; the message is the one line to report."""


@dataclass(frozen=True)
class PodIdentity:
    """Who this pod is within its StatefulSet."""

    pod_name: str
    statefulset: str
    ordinal: int


@dataclass(frozen=True)
class PodMode:
    """Everything pod mode needs: the identity, the environment with RANK set, the DNS bound."""

    identity: PodIdentity
    environ: dict[str, str]
    dns_timeout_s: float


def parse_pod_name(name: str) -> PodIdentity:
    """``mlbench-7-demo-1`` -> (set ``mlbench-7-demo``, ordinal 1); UsageError otherwise."""
    name = name.strip()
    match = _POD_NAME.match(name) if len(name) <= _MAX_POD_NAME else None
    if match is None:
        raise UsageError(
            f"{POD_NAME_ENV}={name!r} is not a StatefulSet pod name "
            "(<statefulset>-<ordinal>, lowercase DNS label): cannot derive the rank from it"
        )
    return PodIdentity(name, match.group("set"), int(match.group("ordinal")))


def pod_mode(environ: Mapping[str, str]) -> PodMode | None:
    """None outside a pod (no ``MLBENCH_POD_NAME``); else the checked pod settings.

    ``RANK`` comes from the pod's ordinal and must agree with an explicit ``RANK``;
    ``LOCAL_RANK`` defaults to 0 (one worker per pod). Problems raise ``UsageError``.
    """
    raw = environ.get(POD_NAME_ENV)
    if raw is None or not raw.strip():
        return None
    identity = parse_pod_name(raw)
    world = _int_or_none(environ.get("WORLD_SIZE"))
    # A missing or malformed WORLD_SIZE is left to DistEnv, whose message names it.
    if world is not None and world >= 1 and identity.ordinal >= world:
        raise UsageError(
            f"pod {identity.pod_name} has ordinal {identity.ordinal} but WORLD_SIZE={world}: "
            f"the StatefulSet has more replicas than the run has workers"
        )
    env = dict(environ)
    explicit = env.get("RANK", "").strip()
    if explicit and _int_or_none(explicit) != identity.ordinal:
        raise UsageError(
            f"RANK={explicit} disagrees with the ordinal {identity.ordinal} of "
            f"{POD_NAME_ENV}={identity.pod_name}; leave RANK unset in pods"
        )
    env["RANK"] = str(identity.ordinal)
    if not env.get("LOCAL_RANK", "").strip():
        env["LOCAL_RANK"] = "0"
    return PodMode(identity, env, dns_timeout_from(environ))


def dns_timeout_from(environ: Mapping[str, str]) -> float:
    """``MLBENCH_DNS_TIMEOUT_S`` (default 300): a positive number of seconds."""
    raw = environ.get(DNS_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_DNS_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{DNS_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if not 0 < value <= 24 * 3600:
        raise UsageError(f"{DNS_TIMEOUT_ENV}={raw} must be in (0, 86400]")
    return value


def service_hint(master_addr: str, identity: PodIdentity) -> str:
    """The headless Service that should make ``master_addr`` resolvable, for error messages.

    ``<pod>.<service>.<namespace>.svc.<domain>`` names it as ``<namespace>/<service>``; any
    other address can only point at the Service named like the StatefulSet.
    """
    labels = master_addr.split(".")
    if len(labels) >= 3 and all(labels[:3]):
        return f"{labels[2]}/{labels[1]}"
    return identity.statefulset


def unresolved_message(master_addr: str, timeout_s: float, identity: PodIdentity) -> str:
    return (
        f"MASTER_ADDR {master_addr} did not resolve within {timeout_s:g} s: is the headless "
        f"Service {service_hint(master_addr, identity)} there and publishNotReadyAddresses set?"
    )


def wait_for_master_addr(
    host: str,
    port: int,
    timeout_s: float,
    identity: PodIdentity,
    *,
    resolve: Resolver = socket.getaddrinfo,
    progress_every_s: float = 10.0,
) -> float:
    """Retry resolving ``host`` with backoff until it works; returns the seconds waited.

    Raises ``MasterAddrUnresolved`` after ``timeout_s``. Each lookup runs in a daemon thread
    so that a resolver that hangs (no DNS server answering) cannot stretch the bound.
    """
    start = time.monotonic()
    deadline = start + timeout_s
    delay = 0.2
    next_progress = start
    while True:
        remaining = deadline - time.monotonic()
        error = _resolve_once(resolve, host, port, max(0.05, remaining))
        waited = time.monotonic() - start
        if error is None:
            if waited >= 0.5:
                log.info("MASTER_ADDR %s resolved after %.1f s", host, waited)
            return waited
        now = time.monotonic()
        if now >= deadline:
            raise MasterAddrUnresolved(unresolved_message(host, timeout_s, identity))
        if now >= next_progress:
            log.info(
                "waiting for MASTER_ADDR %s to resolve (%.0f of %g s): %s",
                host,
                waited,
                timeout_s,
                error,
            )
            next_progress = now + progress_every_s
        time.sleep(min(delay, max(0.0, deadline - now)))
        delay = min(delay * 2, 5.0)


def _resolve_once(resolve: Resolver, host: str, port: int, timeout_s: float) -> str | None:
    """None when ``host`` resolved, else why not (also when the lookup took too long)."""
    outcome: list[str | None] = []

    def lookup() -> None:
        try:
            resolve(host, port)
            outcome.append(None)
        except (OSError, UnicodeError) as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=lookup, name="mlbench-resolve", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not outcome:
        return f"lookup still unanswered after {timeout_s:.1f} s"
    return outcome[0]


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except ValueError:
        return None
