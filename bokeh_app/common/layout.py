"""The frame of every page: navigation, the "master unreachable" banner, the title."""

from __future__ import annotations

import html

from bokeh.layouts import column
from bokeh.models import AllIndices, DataTable, Div, LayoutDOM

NAV_LINKS = (("Runs", "/runs"), ("Compare", "/compare"), ("Nodes", "/nodes"))

_BANNER_STYLE = {
    "background": "#b71c1c",
    "color": "white",
    "padding": "6px 12px",
    "border-radius": "4px",
    "font-weight": "bold",
}


class Banner:
    """A Div shown only while the master is unreachable. Not a Bokeh model subclass: a Python
    subclass would be a new model type that BokehJS does not know."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self.model = Div(
            text=f"Master at {html.escape(api_url)} is unreachable — retrying…",
            css_classes=["mlb-banner"],
            visible=False,
            styles=_BANNER_STYLE,
            sizing_mode="stretch_width",
        )

    @property
    def shown(self) -> bool:
        return bool(self.model.visible)

    def show(self) -> None:
        if not self.model.visible:  # unchanged properties send nothing to the browser
            self.model.visible = True

    def hide(self) -> None:
        if self.model.visible:
            self.model.visible = False


def nav(run_id: int | None = None, compare_ids: list[int] | None = None) -> Div:
    """Links to the views; the Run link only when a run is in context (it needs an id)."""
    links = list(NAV_LINKS)
    if run_id is not None:
        links.insert(1, (f"Run {run_id}", f"/run?id={run_id}"))
    if compare_ids:
        links[-2] = ("Compare", "/compare?ids=" + ",".join(str(i) for i in compare_ids))
    text = " · ".join(f'<a href="{href}">{html.escape(label)}</a>' for label, href in links)
    return Div(
        text=f"<b>mlbench</b> &nbsp; {text}",
        css_classes=["mlb-nav"],
        sizing_mode="stretch_width",
    )


def page(
    title: str,
    body: LayoutDOM,
    banner: Banner,
    *,
    run_id: int | None = None,
    compare_ids: list[int] | None = None,
) -> LayoutDOM:
    """Nav bar, banner, ``<h2>`` title, then the view's body; stretches to the window width."""
    heading = Div(text=f"<h2 style='margin:4px 0'>{html.escape(title)}</h2>")
    return column(
        nav(run_id, compare_ids),
        banner.model,
        heading,
        body,
        sizing_mode="stretch_width",
    )


def redraw_table(table: DataTable) -> None:
    """Make the browser redraw a DataTable after its source's data was replaced.

    BokehJS 3.9 redraws a DataTable when its CDSView changes, and the view changes only when
    the number of rows does: new values in as many rows stay invisible. A fresh (equivalent)
    filter is a view change, which redraws the grid keeping selection and scroll position.
    """
    table.view.filter = AllIndices()
