"""Parts every view shares: the API wrapper, background calls, page layout, settings."""
