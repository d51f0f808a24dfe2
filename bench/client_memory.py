"""Figure 6, the worker's half: memory of a worker's metrics client while the master is
unreachable for 60 s, and whether every point still arrives once it is back.

Two child processes log the same points at the same rate at the same time, while nothing
listens on the master's port:

* ours: ``MetricsClient`` as workers use it (past ``max_pending`` queued points, new points go
  to the spool file on disk);
* baseline: a naive batching client (``naive_client.py``): a list and a sender thread that
  keeps and retries what it could not send, i.e. everything stays in memory. (``MetricsClient``
  itself with an unlimited ``max_pending`` is no baseline: while the master is unreachable its
  sender moves queued points to the spool anyway.)

The parent samples each child's resident memory every 0.25 s. After the outage the master
comes back on the same port and database, both clients ``close()`` (drain queue and spool),
and the master must hold every point of both. Ratio: the baseline's memory growth over ours.

    .venv/bin/python bench/client_memory.py [--down-s 60] [--rate 10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from servers import current_rss_mib, free_port, mlbench_master, new_mlbench_run, stored_points


def child(args: argparse.Namespace) -> None:
    """Log ``rate`` points/s for ``down_s`` seconds; once the parent says the master is back
    (a line on stdin), close: the sender replays the spool and sends what is queued."""
    from naive_client import NaiveClient

    from mlbench_core.metrics_client import MetricsClient

    client: MetricsClient | NaiveClient
    if args.max_pending:
        client = MetricsClient(
            args.url, args.run_id, args.token, 0, spool_dir=args.spool, max_pending=args.max_pending
        )
    else:
        client = NaiveClient(args.url, args.run_id, args.token)
    burst = max(1, args.rate // 100)  # every 10 ms
    print(json.dumps({"ready": True}), flush=True)  # imports done: the parent starts sampling
    start = time.monotonic()
    step = 0
    while (elapsed := time.monotonic() - start) < args.down_s:
        for _ in range(burst):
            client.log("train/loss", 1.0 / (step + 1), step=step)
            step += 1
        time.sleep(max(0.0, step / args.rate - elapsed))
    print(json.dumps({"logged": step}), flush=True)
    sys.stdin.readline()
    close_start = time.monotonic()
    client.close(timeout_s=args.close_timeout_s)
    print(json.dumps({"logged": step, "close_s": time.monotonic() - close_start}), flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--down-s", type=float, default=60.0, help="seconds the master is away")
    parser.add_argument("--rate", type=int, default=10_000, help="points logged per second")
    parser.add_argument("--max-pending", type=int, default=50_000, help="ours (the default)")
    parser.add_argument("--close-timeout-s", type=float, default=600.0)
    common.add_output_args(parser)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--spool", help=argparse.SUPPRESS)
    return parser


def child_argv(args: argparse.Namespace, url: str, run_id: int, token: str, spool: Path,
               max_pending: int) -> list[str]:  # fmt: skip
    """The command line of one child process."""
    argv = ["--child", "--url", url, "--run-id", str(run_id), "--spool", str(spool)]
    # "=": a token may start with "-", which argparse would take for an option.
    argv += [f"--token={token}", "--max-pending", str(max_pending), "--down-s", str(args.down_s)]
    return [*argv, "--rate", str(args.rate), "--close-timeout-s", str(args.close_timeout_s)]


def main() -> None:
    args = build_parser().parse_args()
    if args.child:
        child(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder, port = Path(tmp), free_port()
        with mlbench_master(port=port, data_dir=folder / "master") as master:
            runs = {kind: new_mlbench_run(master, f"spool-{kind}") for kind in ("ours", "base")}
            url = master.url
        limits = {"ours": args.max_pending, "base": 0}  # 0: the naive client
        procs = {}
        for kind, (run_id, token) in runs.items():
            argv = child_argv(args, url, run_id, token, folder / f"spool-{kind}", limits[kind])
            procs[kind] = subprocess.Popen(
                [sys.executable, __file__, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
        try:
            for proc in procs.values():
                assert proc.stdout is not None and "ready" in proc.stdout.readline()
            trace = sample(procs, args.down_s)
            with mlbench_master(port=port, data_dir=folder / "master") as master:
                outputs = {
                    kind: proc.communicate("go\n", timeout=args.close_timeout_s + 60)[0]
                    for kind, proc in procs.items()
                }
                stored = {kind: stored_points(master.url, *runs[kind]) for kind in runs}
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

    reports = {kind: json.loads(out.strip().splitlines()[-1]) for kind, out in outputs.items()}
    rows = []
    for kind, label, role in (
        ("ours", f"MetricsClient, spools past {args.max_pending:,} points", "ours"),
        ("base", "a naive batching client, unbounded in memory", "baseline"),
    ):
        rss = trace[kind]
        growth = max(rss) - rss[0]
        second_half = max(rss) - rss[len(rss) // 2]
        extra = {
            "rss_start_mib": rss[0],
            "rss_peak_mib": max(rss),
            "growth_in_second_half_mib": second_half,
            "points_logged": reports[kind]["logged"],
            "points_stored": stored[kind],
            "drain_s": reports[kind]["close_s"],
        }
        rows.append(common.Row(label, role, max(growth, 0.1), "MiB growth", extra))
        assert stored[kind] == reports[kind]["logged"], f"{kind}: points lost: {extra}"
    common.print_rows(rows)
    ours, base = rows[0], rows[1]
    bounded = ours.extra["growth_in_second_half_mib"] < 5
    summary = common.Summary(
        "client memory growth with the master away, unbounded / mlbench",
        base.value / ours.value,
        "bounded (flat in the outage's second half) and no point lost",
        bounded,
    )
    params = {"down_s": args.down_s, "rate": args.rate, "max_pending": args.max_pending}
    title = f"Metrics client memory, master unreachable {args.down_s:g} s"
    common.save(args, "client_memory", title, params, rows, summary)


def sample(procs: dict[str, subprocess.Popen[str]], seconds: float) -> dict[str, list[float]]:
    """Each child's RSS (MiB) every 0.25 s for ``seconds``."""
    trace: dict[str, list[float]] = {kind: [] for kind in procs}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for kind, proc in procs.items():
            if proc.poll() is None:
                trace[kind].append(current_rss_mib(proc.pid))
        time.sleep(0.25)
    return trace


if __name__ == "__main__":
    main()
