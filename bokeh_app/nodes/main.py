"""Nodes view: ``/nodes``."""

from bokeh.io import curdoc

from bokeh_app.views import serve_view
from bokeh_app.views.nodes import build_nodes

serve_view(curdoc(), build_nodes)
