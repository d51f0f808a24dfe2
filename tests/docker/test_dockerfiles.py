"""The container images' Dockerfiles (docker/), checked without a Docker engine.

No image is built here (no engine on our machines). What is checked instead: hadolint (a real
Dockerfile linter, from the ``test`` extra) finds nothing; the structure read with a real parser
(``dockerfile-parse``) follows the rules the Helm chart and the run pods rely on (pinned bases,
multi-stage, non-root 1000:1000, commands, ports, health checks, labels); the version locks cover
every runtime dependency; every COPY source exists and survives .dockerignore; the builder's COPY
set builds a wheel that carries the commands; the images' commands and health checks work when run
from this checkout; and the Makefile builds all four. A missing hadolint or make skips here and
fails in CI (``CI`` set), as tests/pg.py does for PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import free_port
from tests.requires import missing

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
LOCK = DOCKER / "requirements.lock"
CUDA_LOCK = DOCKER / "requirements-cuda.lock"
VENV_BIN = Path(sys.executable).parent

with (ROOT / "pyproject.toml").open("rb") as _fh:
    PYPROJECT = tomllib.load(_fh)
VERSION = PYPROJECT["project"]["version"]

IMAGES = ("master", "dashboard", "worker", "worker-cuda")
CPU_IMAGES = ("master", "dashboard", "worker")
UID = "1000"
# hadolint rules a Dockerfile may switch off inline, each with its reason written above it.
ALLOWED_IGNORES = {"DL3008"}  # apt version pins: see worker-cuda.Dockerfile
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|clang|make|build-essential|git|curl|wget|[\w.+-]+-dev|python3[\d.]*-venv)\b"
    r"|\bpip3? (install|wheel)\b"
)


def unavailable(what: str) -> NoReturn:
    """A tool is missing: skip on a developer's machine, fail in CI (tests/requires.py)."""
    missing(f"{what} is missing")


# -- reading a Dockerfile -------------------------------------------------------------------------


@dataclass
class Stage:
    """One build stage: its FROM reference, alias and instructions in order."""

    ref: str
    alias: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [value for name, value in self.instructions if name == instruction]


@dataclass
class Dockerfile:
    path: Path
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, alias: str) -> Stage:
        return next(stage for stage in self.stages if stage.alias == alias)

    def chain(self, stage: Stage | None = None) -> list[Stage]:
        """The stage and the stages it is built FROM, root first."""
        stage = stage or self.final
        aliases = {s.alias: s for s in self.stages if s.alias}
        chain = [stage]
        while chain[0].ref in aliases:
            chain.insert(0, aliases[chain[0].ref])
        return chain

    def chain_values(self, instruction: str) -> list[str]:
        return [value for stage in self.chain() for value in stage.values(instruction)]

    def env(self) -> dict[str, str]:
        """ENV of the final image as far as the Dockerfile sets it (base images' ENV aside)."""
        env: dict[str, str] = {}
        for value in self.chain_values("ENV"):
            env.update(parse_pairs(value))
        return env

    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = {}
        for value in self.chain_values("LABEL"):
            labels.update(parse_pairs(value))
        return labels

    def exec_form(self, instruction: str) -> list[str] | None:
        """The last CMD / ENTRYPOINT of the final image, which must be in exec (JSON) form."""
        values = self.chain_values(instruction)
        if not values:
            return None
        parsed = json.loads(values[-1])
        assert isinstance(parsed, list), f"{self.path.name}: {instruction} not in exec form"
        return parsed

    def text(self) -> str:
        return self.path.read_text()


def parse_pairs(value: str) -> dict[str, str]:
    """``KEY=value KEY2="x y"`` (ENV, LABEL, ARG); the legacy ``KEY value`` form is refused."""
    pairs = {}
    for item in shlex.split(value):
        key, sep, val = item.partition("=")
        assert sep, f"use KEY=value, not {value!r}"
        pairs[key] = val
    return pairs


@cache
def dockerfile(name: str) -> Dockerfile:
    path = DOCKER / f"{name}.Dockerfile"
    parser = DockerfileParser(path=str(path), env_replace=False)
    stages: list[Stage] = []
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"].strip()
        if instruction == "FROM":
            words = [w for w in value.split() if not w.startswith("--")]
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], alias))
        elif instruction != "COMMENT":
            assert stages, f"{path.name}: {instruction} before the first FROM"
            stages[-1].instructions.append((instruction, value))
    return Dockerfile(path, stages)


@dataclass(frozen=True)
class ImageRef:
    name: str
    tag: str | None
    digest: str | None


def parse_ref(ref: str) -> ImageRef:
    name, _, digest = ref.partition("@")
    tag = None
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    return ImageRef(name, tag, digest or None)


# -- .dockerignore, as Docker reads it (moby/patternmatcher) --------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out += "(.*/)?"
                i += 1
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(char)
        i += 1
    return re.compile(f"^{out}$")


@cache
def dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, regex) per pattern of the root .dockerignore, in order."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        exception = pattern.startswith("!")
        pattern = os.path.normpath(pattern.removeprefix("!").strip()).lstrip("/")
        rules.append((exception, _pattern_regex(pattern)))
    return rules


def ignored(path: str) -> bool:
    """Whether Docker leaves ``path`` (relative to the context root) out of the context: the last
    pattern matching the path or one of its parent directories decides."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for exception, regex in dockerignore():
        if any(regex.match(candidate) for candidate in candidates):
            result = not exception
    return result


def test_dockerignore_matcher_follows_docker_rules() -> None:
    assert _pattern_regex("**/__pycache__").match("__pycache__")
    assert _pattern_regex("**/__pycache__").match("a/b/__pycache__")
    assert _pattern_regex("*.egg-info").match("mlbench.egg-info")
    assert not _pattern_regex("*.egg-info").match("a/mlbench.egg-info")
    assert _pattern_regex("**/*.py[cod]").match("master/x.pyc")


# -- the rules ------------------------------------------------------------------------------------


def test_the_four_dockerfiles_and_nothing_else() -> None:
    assert sorted(p.name for p in DOCKER.glob("*Dockerfile*")) == sorted(
        f"{name}.Dockerfile" for name in IMAGES
    )


@cache
def hadolint() -> str | None:
    return shutil.which("hadolint", path=os.pathsep.join([str(VENV_BIN), os.environ["PATH"]]))


@pytest.mark.parametrize("name", IMAGES)
def test_hadolint_finds_nothing(name: str) -> None:
    binary = hadolint()
    if binary is None:
        unavailable("hadolint (pip install -e '.[test]' installs it)")
    done = subprocess.run(
        [binary, "--no-color", "--config", str(DOCKER / "hadolint.yaml"), f"{name}.Dockerfile"],
        capture_output=True,
        text=True,
        cwd=DOCKER,
        timeout=60,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@pytest.mark.parametrize("name", IMAGES)
def test_only_allowed_lint_rules_are_switched_off_with_a_reason(name: str) -> None:
    lines = dockerfile(name).text().splitlines()
    comments = "\n".join(x for x in lines if x.startswith("#") and "hadolint ignore" not in x)
    for line in lines:
        if match := re.match(r"#\s*hadolint\s+ignore=(\S+)", line):
            rules = set(match[1].split(","))
            assert rules <= ALLOWED_IGNORES, line
            assert all(rule in comments for rule in rules), f"{name}: say why {rules} is off"


@pytest.mark.parametrize("name", IMAGES)
def test_every_base_image_is_pinned(name: str) -> None:
    df = dockerfile(name)
    aliases: set[str] = set()
    for stage in df.stages:
        if stage.ref not in aliases:  # not an earlier stage of this file: an image
            ref = parse_ref(stage.ref)
            assert "$" not in stage.ref, f"{stage.ref}: a base image must be written out"
            assert ref.tag and ref.tag != "latest", f"{stage.ref}: no exact tag"
            assert re.match(r"^\d+\.\d+\.\d+(?:-[a-z0-9.-]+)?$", ref.tag), (
                f"{stage.ref}: the tag must be an exact version (X.Y.Z[-variant])"
            )
            if ref.digest is not None:
                assert re.fullmatch(r"sha256:[0-9a-f]{64}", ref.digest), stage.ref
            else:  # allowed only where the file says why and how to add it
                howto = f"docker buildx imagetools inspect {ref.name}:{ref.tag}"
                assert howto in df.text(), f"{stage.ref}: no digest, and no word on how to add it"
        if stage.alias:
            aliases.add(stage.alias)


def test_the_python_images_share_base_and_builder() -> None:
    """Same base digest and the same builder, so the three share the builder's layer cache."""

    def builder_part(name: str) -> str:
        text = dockerfile(name).text()
        start = text.index("\nFROM ")
        return text[start : text.index("\nFROM base AS runtime")]

    parts = {name: builder_part(name) for name in CPU_IMAGES}
    assert len(set(parts.values())) == 1, "master/dashboard/worker builders differ"
    assert parse_ref(dockerfile("master").stages[0].ref).digest is not None


@pytest.mark.parametrize("name", IMAGES)
def test_multi_stage_with_a_runtime_stage_that_builds_nothing(name: str) -> None:
    df = dockerfile(name)
    assert len(df.stages) >= 3, "base, builder and runtime stages"
    builder = df.stage("builder")
    assert any("pip wheel" in run for run in builder.values("RUN")), "the builder builds a wheel"
    assert any("pip check" in run for run in builder.values("RUN"))
    final_chain = df.chain()
    assert builder not in final_chain
    copies = df.chain_values("COPY")
    assert copies == ["--from=builder /opt/venv /opt/venv"], (
        "the runtime image gets the venv and nothing else"
    )
    assert df.env()["PATH"].startswith("/opt/venv/bin:")
    for run in df.chain_values("RUN"):
        assert not BUILD_TOOLS.search(run), f"build tooling in the runtime image: {run}"
    assert not df.chain_values("ADD")


@pytest.mark.parametrize("name", IMAGES)
def test_runs_as_1000_with_a_home(name: str) -> None:
    from workflows.manifests import RUN_AS

    df = dockerfile(name)
    users = df.chain_values("USER")
    assert users and users[-1] in (UID, f"{UID}:{UID}"), users
    assert str(RUN_AS) == UID
    home = df.env()["HOME"]
    setup = " ".join(df.chain_values("RUN"))
    assert f"--uid {UID}" in setup and f"--gid {UID}" in setup
    assert "--create-home" in setup and f"--home-dir {home}" in setup
    # No RUN after the final USER: what the image runs, it runs as 1000.
    last_user = max(i for i, (n, _) in enumerate(df.final.instructions) if n == "USER")
    assert all(n != "RUN" for n, _ in df.final.instructions[last_user:])


@pytest.mark.parametrize("name", IMAGES)
def test_python_environment_and_labels(name: str) -> None:
    df = dockerfile(name)
    env = df.env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    # mlbench_core.manifest.git_commit reads it; the Makefile passes REVISION=<git HEAD>.
    assert env["MLBENCH_GIT_COMMIT"] == "${REVISION}"
    args = {}
    for value in df.final.values("ARG"):
        args.update(parse_pairs(value))
    assert args["VERSION"] == VERSION
    labels = df.labels()
    root = parse_ref(df.chain()[0].ref)
    assert labels == {
        "org.opencontainers.image.title": f"mlbench-{name}",
        "org.opencontainers.image.description": labels["org.opencontainers.image.description"],
        "org.opencontainers.image.version": "${VERSION}",
        "org.opencontainers.image.revision": "${REVISION}",
        "org.opencontainers.image.licenses": PYPROJECT["project"]["license"]["text"],
        "org.opencontainers.image.vendor": "mlbench",
        "org.opencontainers.image.base.name": (
            f"docker.io/{'' if '/' in root.name else 'library/'}{root.name}:{root.tag}"
        ),
    }
    assert labels["org.opencontainers.image.description"].startswith("mlbench ")


def _health_url(df: Dockerfile) -> tuple[str, str] | None:
    """(port, path) the HEALTHCHECK asks for, after checking that it is valid Python."""
    (check,) = df.chain_values("HEALTHCHECK")
    if check == "NONE":
        return None
    options, _, command = check.partition("CMD ")
    assert {"--interval", "--timeout", "--start-period", "--retries"} <= {
        o.split("=")[0] for o in options.split()
    }
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"], "the image has no curl or wget: python does it"
    compile(argv[2], "HEALTHCHECK", "exec")
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/[^'\"]*)", argv[2])
    assert match, argv[2]
    return match[1], match[2]


def test_master_image() -> None:
    from master.api.main import API_PREFIX
    from master.api.routes.health import router
    from master.settings import Settings

    df = dockerfile("master")
    assert df.exec_form("ENTRYPOINT") is None
    assert df.exec_form("CMD") == [
        "mlbench", "serve", "--host", "0.0.0.0", "--port", "8000", "--dashboard-port", "0",
    ]  # fmt: skip
    assert df.env()["MLBENCH_DATA_DIR"] == "/data"
    assert any("install -d -o 1000 -g 1000 -m 0750 /data" in run for run in df.chain_values("RUN"))
    assert df.chain_values("EXPOSE") == ["8000"]
    assert Settings.model_fields["port"].default == 8000
    health_paths = [API_PREFIX + getattr(route, "path", "") for route in router.routes]
    assert _health_url(df) == ("8000", f"{API_PREFIX}/health")
    assert f"{API_PREFIX}/health" in health_paths


def test_dashboard_image() -> None:
    from bokeh_app.common.settings import DashboardSettings
    from bokeh_app.server import VIEWS

    df = dockerfile("dashboard")
    assert df.exec_form("ENTRYPOINT") is None
    assert df.exec_form("CMD") == ["python", "-m", "bokeh_app.server"]
    env = df.env()
    assert env["MLBENCH_DASHBOARD_HOST"] == "0.0.0.0"
    assert env["MLBENCH_DASHBOARD_PORT"] == "5006"
    assert DashboardSettings.model_fields["dashboard_port"].default == 5006
    assert df.chain_values("EXPOSE") == ["5006"]
    assert "runs" in VIEWS
    # /healthz answers without opening a Bokeh session (the chart's probes use it too);
    # test_dashboard_command_and_health_check runs it against the real server.
    assert _health_url(df) == ("5006", "/healthz")


@pytest.mark.parametrize("name", ["worker", "worker-cuda"])
def test_worker_images(name: str) -> None:
    from workflows.manifests import DATA_DIR, WORKER_COMMAND
    from workflows.names import DIST_PORT
    from workflows.run_workflow import STEPS_MODULE

    df = dockerfile(name)
    assert df.exec_form("ENTRYPOINT") == ["mlbench-worker"]
    assert df.exec_form("CMD") == [], "reset the base image's CMD"
    assert WORKER_COMMAND[0] == "mlbench-worker"
    assert STEPS_MODULE[0] == "python"  # the venv's python is first on PATH
    assert df.env()["MLBENCH_DATA_DIR"] == DATA_DIR
    assert df.chain_values("EXPOSE") == [str(DIST_PORT)]
    assert _health_url(df) is None


def test_cuda_image_uses_the_cuda_lock_and_a_cuda_base() -> None:
    df = dockerfile("worker-cuda")
    root = parse_ref(df.stages[0].ref)
    assert root.name == "nvidia/cuda"
    assert root.tag and "-base-ubuntu" in root.tag
    builder_copies = df.stage("builder").values("COPY")
    assert "docker/requirements-cuda.lock /tmp/requirements.lock" in builder_copies
    for name in CPU_IMAGES:
        assert "docker/requirements.lock /tmp/requirements.lock" in dockerfile(name).stage(
            "builder"
        ).values("COPY")


# -- the locks ------------------------------------------------------------------------------------


def read_lock(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            req = Requirement(text)
            spec = str(req.specifier)
            assert spec.startswith("==") and "," not in spec, f"{path.name}: not a pin: {line}"
            pins[canonicalize_name(req.name)] = spec[2:]
    return pins


def torch_constraint() -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text and canonicalize_name(Requirement(text).name) == "torch":
            return str(Requirement(text).specifier).removeprefix("==")
    raise AssertionError("constraints.txt pins no torch")


CPU_MARKERS = {
    "python_version": "3.11", "python_full_version": "3.11.16", "sys_platform": "linux",
    "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
    "implementation_name": "cpython", "platform_python_implementation": "CPython",
}  # fmt: skip
CUDA_MARKERS = {**CPU_MARKERS, "python_version": "3.12", "python_full_version": "3.12.3"}


@pytest.mark.parametrize(("lock", "markers"), [(LOCK, CPU_MARKERS), (CUDA_LOCK, CUDA_MARKERS)])
def test_lock_covers_every_runtime_dependency(lock: Path, markers: dict[str, str]) -> None:
    from importlib.metadata import PackageNotFoundError, distribution

    pins = read_lock(lock)
    roots = [Requirement(text) for text in PYPROJECT["project"]["dependencies"]]
    for req in roots:
        name = canonicalize_name(req.name)
        assert name in pins, f"{lock.name} lacks {req.name}"
        assert req.specifier.contains(pins[name], prereleases=True), f"{lock.name}: {name}"
    # The closure: every requirement of a locked package is locked too. Read from the installed
    # metadata where the same version is installed here (the others: covered by the resolver).
    extras = {canonicalize_name(r.name): set(r.extras) for r in roots}
    for name, version in pins.items():
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        if dist.version != version:
            continue
        for text in dist.requires or []:
            sub = Requirement(text)
            wanted = [{**markers, "extra": e} for e in ("", *extras.get(name, ()))]
            if sub.marker is None or any(sub.marker.evaluate(env) for env in wanted):
                sub_name = canonicalize_name(sub.name)
                assert sub_name in pins, f"{lock.name}: {name} needs {sub.name}, not locked"
                assert sub.specifier.contains(pins[sub_name], prereleases=True), (
                    f"{lock.name}: {name} needs {sub}, locked {pins[sub_name]}"
                )
    test_tools = {
        canonicalize_name(Requirement(text).name)
        for text in PYPROJECT["project"]["optional-dependencies"]["test"]
    }
    assert not (test_tools | {"mlbench"}) & set(pins), "test tools or mlbench in a lock"


def test_torch_versions_follow_constraints() -> None:
    torch = torch_constraint()
    assert read_lock(LOCK)["torch"] == f"{torch}+cpu"
    assert read_lock(CUDA_LOCK)["torch"] == torch
    for name in CPU_IMAGES:
        args = {}
        for value in dockerfile(name).stage("builder").values("ARG"):
            args.update(parse_pairs(value))
        assert args["TORCH_VERSION"] == torch
        assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
        assert '"torch==${TORCH_VERSION}+cpu"' in " ".join(
            dockerfile(name).stage("builder").values("RUN")
        )


def test_the_locks_agree_on_shared_packages() -> None:
    cpu, cuda = read_lock(LOCK), read_lock(CUDA_LOCK)
    shared = (set(cpu) & set(cuda)) - {"torch"}
    assert {name: cpu[name] for name in shared} == {name: cuda[name] for name in shared}
    assert set(cpu) - {"torch"} <= set(cuda), "the CUDA lock lacks packages the CPU lock has"


# -- the build context ----------------------------------------------------------------------------


def copy_sources(df: Dockerfile) -> list[tuple[str, str]]:
    """(source, destination) of every COPY from the build context, in all stages."""
    pairs = []
    for stage in df.stages:
        for value in stage.values("COPY"):
            words = value.split()
            if any(w.startswith("--from") for w in words):
                continue
            words = [w for w in words if not w.startswith("--")]
            pairs += [(src, words[-1]) for src in words[:-1]]
    return pairs


def tracked_files(directory: str) -> list[str]:
    done = subprocess.run(
        ["git", "ls-files", "--", directory], capture_output=True, text=True, cwd=ROOT
    )
    if done.returncode == 0 and done.stdout.strip():
        return done.stdout.split()
    return [  # no git checkout: the files on disk, less bytecode
        str(p.relative_to(ROOT))
        for p in (ROOT / directory).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]


@pytest.mark.parametrize("name", IMAGES)
def test_copy_sources_exist_and_reach_the_context(name: str) -> None:
    for src, _ in copy_sources(dockerfile(name)):
        assert not any(c in src for c in "*?["), f"{src}: spell COPY sources out"
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
        assert not ignored(src), f"COPY {src}: excluded by .dockerignore"
        if (ROOT / src).is_dir():
            for path in tracked_files(src):
                assert not ignored(path), f"{path} (tracked) is excluded by .dockerignore"


def test_packages_of_the_wheel_are_all_copied() -> None:
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    for name in IMAGES:
        copied = {src for src, _ in copy_sources(dockerfile(name))}
        assert packages | {"pyproject.toml", PYPROJECT["project"]["readme"]} <= copied, name


@pytest.mark.parametrize(
    "path",
    [".venv/bin/python", "tests/conftest.py", "test-output/x", ".git/HEAD", ".pytest_cache/v",
     ".ruff_cache/x", "master/__pycache__/db.cpython-311.pyc", "mlbench.egg-info/PKG-INFO",
     "helm/mlbench/Chart.yaml", "mlbench.db"],
)  # fmt: skip
def test_dockerignore_keeps_local_state_out(path: str) -> None:
    assert ignored(path)


# -- what the images run --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel the builder stage builds, from exactly the files its COPY lines bring."""
    tmp = tmp_path_factory.mktemp("image-build")
    src = tmp / "src"
    for source, dest in copy_sources(dockerfile("worker")):
        if not dest.startswith("/src"):
            continue
        target = src / dest.removeprefix("/src").strip("/")
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / source, target / Path(source).name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-cache-dir", "--wheel-dir", str(tmp / "dist"), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = (tmp / "dist").glob("mlbench-*.whl")
    return built


def test_the_wheel_carries_the_commands_and_the_migrations(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = zf.read(entry_points).decode()
    for script, target in PYPROJECT["project"]["scripts"].items():
        assert f"{script} = {target}" in scripts
    assert "master/migrations/script.py.mako" in names
    assert any(n.startswith("master/migrations/versions/") for n in names)
    assert "workflows/steps/__main__.py" in names
    for view in ("runs", "run", "compare", "nodes"):
        assert f"bokeh_app/{view}/main.py" in names


def _image_env(name: str, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBENCH_")}
    env.update(
        {k: v for k, v in dockerfile(name).env().items() if "$" not in v},
        PATH=os.pathsep.join([str(VENV_BIN), os.environ["PATH"]]),
        HOME=str(home),
    )
    env.update(extra)
    return env


def _run_health_check(name: str, port: int) -> subprocess.CompletedProcess[str]:
    (check,) = dockerfile(name).chain_values("HEALTHCHECK")
    argv = json.loads(check.partition("CMD ")[2])
    url = _health_url(dockerfile(name))
    assert url is not None
    code = argv[2].replace(f":{url[0]}/", f":{port}/")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        assert proc.poll() is None, f"exited with {proc.returncode}"
        try:
            httpx.get(url, timeout=5)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


def test_master_command_and_health_check(tmp_path: Path) -> None:
    port = free_port()
    argv = dockerfile("master").exec_form("CMD")
    assert argv is not None
    argv = [a if a != "8000" else str(port) for a in argv]
    argv[argv.index("0.0.0.0")] = "127.0.0.1"
    data = tmp_path / "data"
    data.mkdir()
    env = _image_env("master", tmp_path / "home", MLBENCH_DATA_DIR=str(data))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/v1/health", proc)
        done = _run_health_check("master", port)
        assert done.returncode == 0, done.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert (data / "mlbench.db").exists(), "the master keeps its state in MLBENCH_DATA_DIR"
    # Against nothing, the check fails (what marks a container unhealthy).
    assert _run_health_check("master", free_port()).returncode != 0


def test_dashboard_command_and_health_check(tmp_path: Path) -> None:
    port = free_port()
    argv = dockerfile("dashboard").exec_form("CMD")
    assert argv is not None
    env = _image_env(
        "dashboard",
        tmp_path,
        MLBENCH_DASHBOARD_HOST="127.0.0.1",
        MLBENCH_DASHBOARD_PORT=str(port),
        MLBENCH_API_URL=f"http://127.0.0.1:{free_port()}",  # no master: the page still serves
    )
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_http(f"http://127.0.0.1:{port}/", proc)
        done = _run_health_check("dashboard", port)
        assert done.returncode == 0, done.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    "argv", [["mlbench-worker", "--help"], ["python", "-m", "workflows.steps", "--help"]]
)
def test_worker_commands_start(argv: list[str], tmp_path: Path) -> None:
    entry = dockerfile("worker").exec_form("ENTRYPOINT")
    assert entry is not None
    if argv[0] == entry[0]:
        argv = [*entry, *argv[1:]]
    done = subprocess.run(
        argv, env=_image_env("worker", tmp_path), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- the Makefile ---------------------------------------------------------------------------------


def make(*args: str) -> str:
    binary = shutil.which("make")
    if binary is None:
        unavailable("make")
    env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY", "TAG", "MAKEFLAGS")}
    done = subprocess.run(
        [binary, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_make_images_builds_all_four() -> None:
    out = make("-n", "images")
    for name in IMAGES:
        assert f"-f docker/{name}.Dockerfile -t mlbench/{name}:{VERSION} ." in out
    assert out.count("--build-arg VERSION=" + VERSION) == 4
    out = make("-n", "images", "REGISTRY=registry.example/team", "TAG=dev")
    for name in IMAGES:
        assert f"-t registry.example/team/mlbench/{name}:dev ." in out


@pytest.mark.parametrize("name", IMAGES)
def test_make_one_image(name: str) -> None:
    out = make("-n", f"image-{name}")
    assert f"docker/{name}.Dockerfile" in out
    assert out.count("build ") == 1


def test_make_lint_images_and_help() -> None:
    out = make("-n", "lint-images")
    assert "--config docker/hadolint.yaml" in out
    for name in IMAGES:
        assert f"docker/{name}.Dockerfile" in out
    out = make("help")
    for target in ("images", "lint-images", "lock-images", *(f"image-{n}" for n in IMAGES)):
        assert re.search(rf"^\s+{re.escape(target)}\s", out, re.MULTILINE), target
