"""Hostile RunSpec files given to the CLI (``mlbench run --spec FILE``) and to the worker
(``mlbench-worker --spec FILE``): each exits with code 2 and one readable line on stderr, never
a traceback. The whole table runs in-process (the real command functions, fast); a few cases
run again as real processes, which is what a user sees.

Already covered for the worker in tests/worker/test_worker_main.py: broken JSON, a bad name,
an unknown benchmark, a bad override, workers=0 and a missing file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from master.cli.app import app as cli_app
from mlbench_core.data.archive import extract
from mlbench_core.data.errors import DataFormatError
from tests.conftest import free_port
from tests.mlbench_core.data.make_files import tar_bytes, zip_bytes
from tests.security.conftest import ADMIN_TOKEN, API, secure_master
from worker.main import run as worker_run

ROOT = Path(__file__).resolve().parents[2]
MLBENCH = str(Path(sys.executable).parent / "mlbench")
PARALLEL = min(4, os.cpu_count() or 1)
GOOD = {"name": "from-file", "benchmark": "digits-mlp", "workers": 1, "seed": 7}

# file name -> (content, text expected in the one stderr line)
HOSTILE_FILES: dict[str, tuple[bytes, str]] = {
    "garbage.json": (bytes(range(256)) * 8, "not UTF-8"),
    "latin1.json": ('{"name": "caf\xe9", "benchmark": "digits-mlp"}'.encode("latin-1"), "UTF-8"),
    "empty.json": (b"", "spec"),
    "array.json": (b"[1, 2, 3]", "spec"),
    "string.json": (b'"digits-mlp"', "spec"),
    "truncated.json": (b'{"name": "x", "benchmark": "dig', "spec"),
    "nested.json": (b"[" * 100_000 + b"]" * 100_000, "spec"),
    # Valid JSON up to a 2 MiB run of blanks, then junk: refused, never hanging on the size.
    "huge.json": (b'{"name": "x", "benchmark": "digits-mlp"}' + b" " * 2**21 + b"x", "spec"),
    "wrong-types.json": (
        json.dumps({"name": 5, "benchmark": ["digits-mlp"], "workers": "many"}).encode(),
        "name",
    ),
    "unknown-field.json": (json.dumps({**GOOD, "privileged": True}).encode(), "privileged"),
    "nan-goal.json": (
        b'{"name": "x", "benchmark": "digits-mlp", "goal": {"kind": "custom", "value": NaN}}',
        "finite number",
    ),
    "huge-workers.json": (json.dumps({**GOOD, "workers": 2**63}).encode(), "workers"),
    "negative-workers.json": (json.dumps({**GOOD, "workers": -1}).encode(), "workers"),
    "sql-name.json": (json.dumps({**GOOD, "name": "'; DROP TABLE runs; --"}).encode(), "name"),
    "path-benchmark.json": (
        json.dumps({**GOOD, "benchmark": "../../etc/passwd"}).encode(),
        "unknown benchmark",
    ),
}

CLI_ONLY: dict[str, tuple[bytes, str]] = {
    "spec.yaml": (b"name: x\nbenchmark: digits-mlp\nworkers: [1\n", "YAML"),
    "laughs.yaml": (
        b'a: &a ["lol", "lol", "lol"]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\n',
        "aliases",
    ),
    "tabs.yaml": (b"name: x\n\tbenchmark: digits-mlp\n", "YAML"),
}


def _write(tmp_path: Path, files: dict[str, tuple[bytes, str]]) -> dict[str, tuple[Path, str]]:
    paths = {}
    for name, (content, needle) in files.items():
        path = tmp_path / name
        path.write_bytes(content)
        paths[name] = (path, needle)
    paths["a directory"] = (tmp_path, "Is a directory")
    paths["a missing file"] = (tmp_path / "missing.json", "No such file")
    return paths


def _run_all(commands: dict[str, list[str]], env: dict[str, str]) -> dict[str, tuple[int, str]]:
    """Run the commands, a few at a time (each imports torch: one after the other is slow, all
    at once starves a small machine); exit code and stderr of each. A process still running
    after 60 s is killed (and fails the case: a bad file must not make a process hang)."""
    results: dict[str, tuple[int, str]] = {}
    pending = list(commands.items())
    running: dict[str, tuple[subprocess.Popen[str], float]] = {}
    try:
        while pending or running:
            while pending and len(running) < PARALLEL:
                label, command = pending.pop(0)
                proc = subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                running[label] = (proc, time.monotonic())
            label, (proc, started) = next(iter(running.items()))
            try:
                _, stderr = proc.communicate(timeout=max(0.1, started + 60 - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                _, stderr = proc.communicate()
                stderr = f"(killed after 60 s) {stderr}"
            results[label] = (proc.returncode, stderr)
            del running[label]
    finally:
        for proc, _ in running.values():
            proc.kill()
            proc.wait()
    return results


def _assert_one_readable_line(
    results: dict[str, tuple[int, str]], needles: dict[str, str], prefix: str
) -> None:
    failures = []
    for label, (code, stderr) in results.items():
        lines = stderr.strip().splitlines()
        problems = []
        if code != 2:
            problems.append(f"exit code {code}, expected 2")
        if "Traceback" in stderr:
            problems.append("a traceback")
        if len(lines) != 1:
            problems.append(f"{len(lines)} lines")
        elif not lines[0].startswith(prefix) or needles[label] not in lines[0]:
            problems.append(f"line {lines[0][:300]!r} lacks {prefix!r} / {needles[label]!r}")
        if problems:
            failures.append(f"{label}: {', '.join(problems)}\n{stderr[-1500:]}")
    assert not failures, "\n\n".join(failures)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBENCH_")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **extra)
    return env


def _worker_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return _clean_env(
        RANK="0",
        WORLD_SIZE="1",
        LOCAL_RANK="0",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        MLBENCH_DATA_DIR=str(tmp_path / "data"),
        **extra,
    )


def _cli_in_process(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return 1, f"Traceback: {result.exception!r}"[:300]
    return result.exit_code, result.stderr


def test_the_cli_refuses_hostile_spec_files_with_one_line(tmp_path: Path) -> None:
    files = _write(tmp_path, {**HOSTILE_FILES, **CLI_ONLY})
    files["/dev/zero"] = (Path("/dev/zero"), "larger than")
    # The port answers nothing: a file that got past the checks would fail differently.
    api = f"http://127.0.0.1:{free_port()}"
    results = {
        label: _cli_in_process(["run", "--spec", str(path), "--detach", "--api-url", api])
        for label, (path, _) in files.items()
    }
    spec = str(files["unknown-field.json"][0])
    results["--spec with --workers"] = _cli_in_process(
        ["run", "--spec", spec, "--workers", "3", "--detach"]
    )
    results["--spec with a benchmark"] = _cli_in_process(["run", "digits-mlp", "--spec", spec])
    needles = {label: needle for label, (_, needle) in files.items()}
    needles["--spec with --workers"] = "--spec and --workers do not mix"
    needles["--spec with a benchmark"] = "--spec and BENCHMARK do not mix"
    _assert_one_readable_line(results, needles, "error: ")


def test_the_worker_refuses_hostile_spec_files_with_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    files = _write(tmp_path, HOSTILE_FILES)
    environ = _worker_env(tmp_path)
    results = {}
    for label, (path, _) in files.items():
        capfd.readouterr()
        try:
            code = worker_run(["--spec", str(path), "--no-report"], environ)
        except Exception as exc:  # the bug this test is for: report it like the others
            code = 1
            print(f"Traceback: {exc!r}"[:300], file=sys.stderr)
        results[label] = (code, capfd.readouterr().err)
    needles = {label: needle for label, (_, needle) in files.items()}
    _assert_one_readable_line(results, needles, "mlbench-worker: ")


@pytest.mark.parametrize("text", ["", "   ", "[]", "null", "NaN", '{"name": "x"}'])
def test_the_worker_refuses_a_hostile_spec_in_the_environment(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], text: str
) -> None:
    """MLBENCH_SPEC (the Argo path) gets the same treatment as a file."""
    code = worker_run(["--no-report"], _worker_env(tmp_path, MLBENCH_SPEC=text))
    _assert_one_readable_line(
        {"env": (code, capfd.readouterr().err)}, {"env": "spec"}, "mlbench-worker: "
    )


@pytest.mark.slow
def test_hostile_spec_files_as_real_processes(tmp_path: Path) -> None:
    """What a user sees: the processes themselves exit 2 with one line, no traceback."""
    picked = {name: HOSTILE_FILES[name] for name in ("garbage.json", "huge.json", "array.json")}
    files = _write(tmp_path, picked)
    api = f"http://127.0.0.1:{free_port()}"
    commands, needles = {}, {}
    for label, (path, needle) in files.items():
        commands[f"cli {label}"] = [MLBENCH, "run", "--spec", str(path), "--detach"]
        commands[f"cli {label}"] += ["--api-url", api]
        commands[f"worker {label}"] = [sys.executable, "-m", "worker.main", "--spec", str(path)]
        commands[f"worker {label}"].append("--no-report")
        needles[f"cli {label}"] = needles[f"worker {label}"] = needle
    results = _run_all(commands, _worker_env(tmp_path))
    _assert_one_readable_line(
        {k: v for k, v in results.items() if k.startswith("cli")}, needles, "error: "
    )
    _assert_one_readable_line(
        {k: v for k, v in results.items() if k.startswith("worker")}, needles, "mlbench-worker: "
    )


@pytest.mark.slow
def test_the_cli_submits_a_good_spec_file_as_written(tmp_path: Path) -> None:
    """The guard of the tests above: a good file (JSON or YAML) does reach the master."""
    json_file = tmp_path / "good.json"
    json_file.write_text(json.dumps(GOOD))
    yaml_file = tmp_path / "good.yaml"
    yaml_file.write_text("name: from-yaml\nbenchmark: digits-mlp\nworkers: 3\nseed: 8\n")
    with secure_master(tmp_path / "data") as master:
        for path in (json_file, yaml_file):
            args = ["--spec", str(path), "--detach", "--api-url", master.url]
            done = subprocess.run(
                [MLBENCH, "run", *args, "--token", ADMIN_TOKEN],
                cwd=ROOT,
                env=_clean_env(),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            run = master.http.get(f"{API}/runs/{int(done.stdout.strip())}").json()
            assert run["spec"]["name"] == ("from-file" if path == json_file else "from-yaml")
            assert run["spec"]["workers"] == (1 if path == json_file else 3)
            assert run["spec"]["seed"] == (7 if path == json_file else 8)


# ---------------------------------------------------------------- dataset archives
# Malicious members (../, absolute, symlink, hardlink, device), garbage archives and checksum
# mismatches are covered in tests/mlbench_core/data/test_archive.py and test_download.py.

ARCHIVE_CONTENT = {f"top/part{i}.bin": bytes(range(256)) * 80 + bytes([i]) for i in range(4)}


def _archives() -> dict[str, bytes]:
    return {
        "d.tar.gz": tar_bytes(ARCHIVE_CONTENT),
        "d.tar.bz2": tar_bytes(ARCHIVE_CONTENT, mode="w:bz2"),
        "d.tar.xz": tar_bytes(ARCHIVE_CONTENT, mode="w:xz"),
        "d.zip": zip_bytes(ARCHIVE_CONTENT),
    }


def _refused(tmp_path: Path, name: str, content: bytes) -> str:
    """Extract ``content`` as ``name``; it must fail with one DataFormatError line, leaving
    nothing behind. Returns the message."""
    work = tmp_path / f"w-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    (work / name).write_bytes(content)
    with pytest.raises(DataFormatError) as info:
        extract(work / name, work / "out")
    assert "\n" not in str(info.value), str(info.value)
    assert str(work / name) in str(info.value)
    assert not (work / "out").exists()
    assert [p.name for p in work.iterdir() if p.name.endswith(".partial")] == []
    return str(info.value)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
@pytest.mark.parametrize("name", sorted(_archives()))
def test_truncated_archives_are_refused_with_one_line(
    tmp_path: Path, name: str, keep: float
) -> None:
    """A download cut short (no checksum configured): refused whole, nothing extracted."""
    content = _archives()[name]
    _refused(tmp_path, name, content[: int(len(content) * keep)])


@pytest.mark.parametrize("where", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("name", ["d.tar.gz", "d.tar.bz2", "d.tar.xz", "d.zip"])
def test_a_flipped_byte_is_refused_not_extracted(tmp_path: Path, name: str, where: float) -> None:
    """Corruption inside a compressed stream is caught by its CRC: tarfile alone stops reading
    at the end-of-archive blocks, before gzip's trailer, and once extracted such damage
    silently (the extractor now reads the stream to its end)."""
    content = bytearray(_archives()[name])
    content[int(len(content) * where)] ^= 0x55
    _refused(tmp_path, name, bytes(content))


def test_the_archives_of_these_tests_are_good(tmp_path: Path) -> None:
    """The guard: untouched, every archive above extracts to the content it was made from."""
    for name, content in _archives().items():
        (tmp_path / name).write_bytes(content)
        out = extract(tmp_path / name, tmp_path / f"out-{name}")
        for member, data in ARCHIVE_CONTENT.items():
            assert (out / member).read_bytes() == data, (name, member)
