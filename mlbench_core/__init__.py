"""mlbench core library: run specs, tasks, tracking and metrics reporting."""

__version__ = "0.1.0"
