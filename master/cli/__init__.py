"""The ``mlbench`` command line."""
