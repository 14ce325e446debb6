"""Orchestration: the Dagster code location lives in `pipelines.definitions` (see workspace.yaml).

Nothing is imported here on purpose: assets import `pipelines.resources` and `pipelines.profiles`,
and an eager import of the definitions from this package would make that a cycle.
"""
