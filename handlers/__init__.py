"""Use cases, one module per feature; each command is declared beside its function."""
