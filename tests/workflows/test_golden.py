"""The YAML under argo/ is generated; it must equal what the builders render now.

After an intended change to the builders, regenerate with ``python -m workflows.render``
(or run this test with ``MLBENCH_UPDATE_GOLDEN=1``) and review the diff like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from mlbench_core.tasks import all_tasks
from workflows import render

ROOT = render.ROOT


def test_generated_files_equal_their_render() -> None:
    if os.environ.get("MLBENCH_UPDATE_GOLDEN") == "1":
        render.write(ROOT)
    expected = render.render_examples()
    ids = [task.id for task in all_tasks()]
    assert sorted(expected) == sorted(
        [f"argo/workflowtemplates/{i}.yaml" for i in ids]
        + [f"argo/examples/{i}-workflow.yaml" for i in ids]
    )
    for rel, text in sorted(expected.items()):
        path = ROOT / rel
        assert path.exists(), f"{rel} is missing: run `python -m workflows.render`"
        assert yaml.safe_load(path.read_text()) == yaml.safe_load(text), (
            f"{rel} differs from its render: run `python -m workflows.render` "
            "(or MLBENCH_UPDATE_GOLDEN=1 pytest tests/workflows) and review the diff"
        )
    for folder in render.GENERATED_DIRS:
        for path in (ROOT / folder).glob("*.yaml"):
            assert path.relative_to(ROOT).as_posix() in expected, f"stale file {path}"


def test_rendering_is_deterministic() -> None:
    assert render.render_examples() == render.render_examples()


def test_check_mode_lists_drift_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert render.main(["--root", str(tmp_path)]) == 0
    assert render.main(["--check", "--root", str(tmp_path)]) == 0
    edited = tmp_path / "argo/workflowtemplates/digits-mlp.yaml"
    edited.write_text(edited.read_text().replace("value: '2'", "value: '3'", 1))
    (tmp_path / "argo/examples/gone-workflow.yaml").write_text("{}\n")
    (tmp_path / "argo/examples/1a-workflow.yaml").unlink()
    capsys.readouterr()
    assert render.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "argo/workflowtemplates/digits-mlp.yaml: differs from its render" in err
    assert "argo/examples/gone-workflow.yaml: not generated any more" in err
    assert "argo/examples/1a-workflow.yaml: missing" in err
    # Writing repairs all three.
    assert render.main(["--root", str(tmp_path)]) == 0
    assert render.drift(tmp_path) == []


def test_generated_files_carry_a_do_not_edit_header() -> None:
    for rel, text in render.render_examples().items():
        assert text.startswith(render.HEADER), rel


def test_embedded_manifests_are_literal_blocks() -> None:
    text = render.render_examples()["argo/examples/digits-mlp-workflow.yaml"]
    assert "manifest: |" in text  # readable in a review and in the Argo UI
