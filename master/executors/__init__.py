"""Executors start, stop and watch the workers of a run (local processes, Argo workflows)."""
