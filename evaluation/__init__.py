"""Benchmarks, lm-evaluation-harness tasks, scoring and stage reports."""
