"""The state file: what survives a restart, and the writer that keeps it."""
