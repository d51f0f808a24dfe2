"""Tests of the worker entrypoint, run as real processes."""
