"""Tests of mlbench_core: contracts, metrics client, torch.distributed helpers and tasks."""
