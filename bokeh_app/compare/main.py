"""Compare view: ``/compare?ids=1,2,3``."""

from bokeh.io import curdoc

from bokeh_app.views import serve_view
from bokeh_app.views.compare import build_compare

serve_view(curdoc(), build_compare)
