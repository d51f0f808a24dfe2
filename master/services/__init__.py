"""Business logic of the master: run lifecycle, metrics, results."""
