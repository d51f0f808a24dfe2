"""The local executor's exit reason names the rank that failed first (torchrun's summary)."""

from __future__ import annotations

from pathlib import Path

from master.executors.local import describe_exit

# The tail of a real workers.log after rank 1 of 2 was SIGKILLed (torch 2.13's launcher).
TORCHRUN_TAIL = """\
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
worker.main FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-11-27_19:31:42
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : 143 (pid: 8418)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-27_19:31:41
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 8419)  (SIGKILL)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 8419
============================================================
"""


def test_the_root_cause_rank_and_signal_are_named(tmp_path: Path) -> None:
    log = tmp_path / "workers.log"
    log.write_text("rank0 INFO training\n" + TORCHRUN_TAIL)
    assert describe_exit(1, log) == "rank 1 (pid 8419) was killed by SIGKILL"


def test_a_rank_that_exited_with_an_error_code_is_named(tmp_path: Path) -> None:
    log = tmp_path / "workers.log"
    tail = TORCHRUN_TAIL.replace("-9 (pid: 8419)  (SIGKILL)", "3 (pid: 8419)")
    log.write_text(tail.replace("rank      : 1 (local_rank: 1)", "rank      : 5 (local_rank: 1)"))
    assert describe_exit(1, log) == "rank 5 (pid 8419) exited with code 3"


def test_without_a_summary_the_last_error_line_is_the_reason(tmp_path: Path) -> None:
    log = tmp_path / "workers.log"
    log.write_text("starting\nValueError: bad shape (3, 4)\nbye\n")
    assert describe_exit(2, log) == "ValueError: bad shape (3, 4)"
    assert (
        describe_exit(-9, log) == "the launcher was killed by SIGKILL: ValueError: bad shape (3, 4)"
    )
    assert describe_exit(-9, tmp_path / "missing.log") == "the launcher was killed by SIGKILL"
