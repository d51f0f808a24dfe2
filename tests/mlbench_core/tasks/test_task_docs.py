"""docs/tasks.md is generated from the registry and committed: it must match the code."""

from __future__ import annotations

from pathlib import Path

from mlbench_core.tasks import all_tasks
from mlbench_core.tasks.docs import DEFAULT_PATH, main, render


def test_committed_page_is_what_the_registry_generates() -> None:
    committed = DEFAULT_PATH.read_text(encoding="utf-8")
    assert committed == render(), "docs/tasks.md is stale: run python -m mlbench_core.tasks.docs"


def test_page_lists_every_task_setting_with_its_default(tmp_path: Path) -> None:
    text = render()
    for task in all_tasks():
        assert f"## `{task.id}`: {task.title}" in text
        assert task.description in text
        for name in task.Config.model_fields:
            assert f"| `{name}` |" in text
    assert "| `lr` | number | `0.02` |" in text  # 1a's default, as in the code
    assert "| `aggregator_settings` | object | `{}` |" in text


def test_check_mode_reports_a_stale_page(tmp_path: Path) -> None:
    page = tmp_path / "tasks.md"
    assert main(["--path", str(page), "--check"]) == 1
    assert main(["--path", str(page)]) == 0
    assert main(["--path", str(page), "--check"]) == 0
    page.write_text(page.read_text() + "edited by hand\n")
    assert main(["--path", str(page), "--check"]) == 1
