"""HTTP layer: routes under /api/v1 and their dependencies."""
