"""Tokens: the admin token (generated on first start) and per-run worker tokens (hash only)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from master.models import Run
from master.settings import Settings

ADMIN_TOKEN_FILE = "admin-token"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 hex digest; worker tokens are stored only in this form."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, token_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), token_hash)


def admin_token_path(settings: Settings) -> Path:
    return settings.data_dir / ADMIN_TOKEN_FILE


def ensure_admin_token(settings: Settings) -> str:
    """The admin token: from settings, else from ``<data_dir>/admin-token``, else a new one.

    A new token is written with mode 0600 (created exclusively, so two masters starting at
    once agree on one token) and its path is printed once to stderr; the CLI on the same
    machine reads the file, so local use needs no setup.
    """
    if settings.admin_token is not None and settings.admin_token.get_secret_value():
        return settings.admin_token.get_secret_value()
    path = admin_token_path(settings)
    existing = _read_token(path)
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    token = new_token()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process won the race (or the file exists but was empty: replace it).
        existing = _read_token(path)
        if existing:
            return existing
        path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    print(f"mlbench admin token written to {path}", file=sys.stderr)
    return token


def _read_token(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: the admin, or the workers of one run."""

    kind: Literal["admin", "worker"]
    run_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"


def authenticate(session: Session, admin_token: str, token: str) -> Principal | None:
    """The principal a bearer token stands for, or None when it is no valid token."""
    if hmac.compare_digest(token.encode("utf-8"), admin_token.encode("utf-8")):
        return Principal("admin")
    run_id = session.scalar(select(Run.id).where(Run.token_hash == hash_token(token)))
    return None if run_id is None else Principal("worker", run_id)
