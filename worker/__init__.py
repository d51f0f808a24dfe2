"""mlbench worker: the entrypoint that runs one rank of a run."""
