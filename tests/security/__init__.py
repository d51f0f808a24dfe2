"""Security tests: API fuzzing, the auth matrix, tokens kept out of logs."""
