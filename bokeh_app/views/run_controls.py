"""Run view, controls: stop with a confirmation step, and the download links."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from bokeh.models import Button, Div

from bokeh_app.common.api import ApiError, DashboardApi, MasterUnreachable

Call = Callable[[Callable[[], Any], Callable[[Any], None], Callable[[Exception], None]], None]


class StopControl:
    """``Stop run`` asks; ``Confirm stop`` stops (``POST /runs/{id}/stop``), ``Cancel`` not.
    Outcomes go to ``message``; ``on_stopped(run)`` gets the run the master answered."""

    def __init__(
        self,
        api: DashboardApi,
        run_id: int | None,
        message: Div,
        call: Call,
        on_stopped: Callable[[dict[str, Any]], None],
    ) -> None:
        self.api, self.run_id, self.message = api, run_id, message
        self.call, self.on_stopped = call, on_stopped
        self.run_name = ""
        self.button = Button(label="Stop run", disabled=True, css_classes=["mlb-run-stop"])
        self.confirm = Button(
            label="Confirm stop", button_type="danger", visible=False, css_classes=["mlb-confirm"]
        )
        self.cancel = Button(label="Cancel", visible=False, css_classes=["mlb-cancel"])
        self.button.on_click(self._ask)
        self.confirm.on_click(self._confirmed)
        self.cancel.on_click(self._cancelled)
        self.models = [self.button, self.confirm, self.cancel]

    def set_state(self, name: str, state: str, ended: bool) -> None:
        """Enable the button while the run can still be stopped."""
        self.run_name = name
        disabled = ended or state == "stopping"
        if self.button.disabled != disabled:
            self.button.disabled = disabled
        if disabled:
            self.hide()

    def _question(self) -> str:
        return f"Stop run {self.run_id} '{self.run_name}'? Its workers end."

    def _ask(self) -> None:
        if self.run_id is None or self.button.disabled:
            return
        self.message.text = self._question()
        self.confirm.visible = self.cancel.visible = True

    def hide(self) -> None:
        if self.confirm.visible:
            self.confirm.visible = self.cancel.visible = False
            if self.message.text == self._question():
                self.message.text = ""

    def _cancelled(self) -> None:
        self.hide()

    def _confirmed(self) -> None:
        self.hide()
        run_id = self.run_id
        if run_id is None:
            return

        def done(run: dict[str, Any]) -> None:
            self.message.text = f"run {run_id} is {run['state']}"
            self.on_stopped(run)

        def failed(exc: Exception) -> None:
            if isinstance(exc, ApiError):
                self.message.text = f"could not stop run {run_id}: {exc.detail}"
            elif isinstance(exc, MasterUnreachable):
                self.message.text = f"could not stop run {run_id}: {exc}"

        self.call(lambda: self.api.stop(run_id), done, failed)


def download_links(api: DashboardApi, run_id: int | None) -> list[Div]:
    """CSV and JSON export of all points, straight from the master to the browser. A plain
    link carries no token: with MLBENCH_AUTH_READS=true the master answers 401 (use
    ``mlbench export`` or curl with a token then)."""
    links = []
    for fmt in ("csv", "json"):
        text = ""
        if run_id is not None:
            url = html.escape(api.export_url(run_id, fmt))
            note = "all points of the run; needs open reads (MLBENCH_AUTH_READS unset)"
            text = f'<a href="{url}" download title="{note}">download {fmt.upper()}</a>'
        links.append(Div(text=text, css_classes=[f"mlb-download-{fmt}"]))
    return links
