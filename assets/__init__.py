"""Dagster assets and asset checks, one module per group; each a thin call into the libraries."""
