"""Dagster entry point: `dagster dev -m pipelines` (or workspace.yaml) loads `defs` from here."""
from pipelines.definitions import defs

__all__ = ["defs"]
