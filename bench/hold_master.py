"""A real master (uvicorn, the full app) in its own process whose executor starts no workers.

Bench scripts play the workers themselves, so they need each run's worker token: the executor
writes it to ``<data-dir>/tokens/<run id>``. Running the master in its own process keeps the
client's and the server's Python apart (two cores, two GILs) and lets the bench read the
master's peak memory.

    python bench/hold_master.py --port 8765 --data-dir /tmp/m [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn

from master.app import create_app
from master.executors.base import Executor, Launch
from master.settings import Settings

ADMIN_TOKEN = "bench-admin"


class HoldExecutor(Executor):
    """Starts no workers; keeps each launch (in-process use) and, given ``token_dir``, hands
    each run's token to a bench in another process through a file."""

    kind = "local"

    def __init__(self, token_dir: Path | None = None) -> None:
        super().__init__(on_exit=lambda _exit: None)
        self.launches: list[Launch] = []
        self.token_dir = token_dir
        if token_dir is not None:
            token_dir.mkdir(parents=True, exist_ok=True)

    def start(self, launch: Launch) -> dict[str, Any]:
        self.launches.append(launch)
        if self.token_dir is not None:
            path = self.token_dir / str(launch.run_id)
            path.with_suffix(".tmp").write_text(launch.token)
            path.with_suffix(".tmp").replace(path)
        return {}

    def stop(self, run_id: int, ref: dict[str, Any]) -> None:
        return None

    def reattach(self, run_id: int, ref: dict[str, Any]) -> bool:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    settings = Settings(
        data_dir=args.data_dir,
        database_url=args.database_url,
        port=args.port,
        admin_token=ADMIN_TOKEN,
    )
    app = create_app(settings, executors={"local": HoldExecutor(args.data_dir / "tokens")})
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
