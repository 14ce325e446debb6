"""Orchestration: the Dagster code location lives in `pipelines.definitions` (see workspace.yaml).

Nothing is imported here on purpose: importing this package must not build the code location.
The layers run one way: pipelines -> assets -> libraries (curation, training, evaluation).
"""
