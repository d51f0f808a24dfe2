"""Run view: ``/run?id=N`` (optional ``x=step|time|epoch``, ``rank=N``)."""

from bokeh.io import curdoc

from bokeh_app.views import serve_view
from bokeh_app.views.run import build_run

serve_view(curdoc(), build_run)
