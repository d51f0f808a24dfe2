"""mlbench master: REST API, storage and executors."""
