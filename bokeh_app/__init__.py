"""The mlbench dashboard: Bokeh server apps (one directory per view) over the master's REST API.

``bokeh_app.server.DashboardServer`` serves them all in a background thread; each view reads and
writes only through ``bokeh_app.common.api.DashboardApi``, never the database.
"""
