"""The worker's heartbeat reaches a real master: beats every interval, idle time that grows
while the training thread logs nothing and resets when it does, and a final beat at close."""

from __future__ import annotations

import time
from pathlib import Path

from mlbench_core.metrics_client import MetricsClient
from tests.reliability.recording_master import served


def test_beats_carry_progress_and_the_last_one_is_final(tmp_path: Path) -> None:
    with served(tmp_path / "data") as master:
        run_id, token = master.running_run()
        monitor = master.executor.app.state.mlbench.heartbeats  # type: ignore[union-attr]
        client = MetricsClient(
            master.url, run_id, token, 1, spool_dir=tmp_path / "spool", heartbeat_s=0.1
        )
        try:
            time.sleep(0.6)
            beat = monitor._beats[run_id][1]
            assert beat.idle_s >= 0.3 and not beat.final  # nothing logged yet: idle grows
            client.log("train/loss", 1.0, step=41)
            client.mark_progress(42)
            time.sleep(0.3)
            beat = monitor._beats[run_id][1]
            assert beat.step == 42 and beat.idle_s < 0.3
        finally:
            client.close()
        beat = monitor._beats[run_id][1]
        assert beat.final
        assert client._heartbeat is None  # closed; a second close sends nothing
        client.close()


def test_a_client_without_heartbeat_sends_none(tmp_path: Path) -> None:
    with served(tmp_path / "data") as master:
        run_id, token = master.running_run()
        monitor = master.executor.app.state.mlbench.heartbeats  # type: ignore[union-attr]
        with MetricsClient(master.url, run_id, token, 0, spool_dir=tmp_path / "spool"):
            time.sleep(0.3)
        assert run_id not in monitor._beats
