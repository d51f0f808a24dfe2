"""Runs view: ``/runs``."""

from bokeh.io import curdoc

from bokeh_app.views import serve_view
from bokeh_app.views.runs import build_runs

serve_view(curdoc(), build_runs)
