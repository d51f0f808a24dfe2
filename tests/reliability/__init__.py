"""Faults, load and recovery: the guarantees of docs/reliability.md, tested."""
