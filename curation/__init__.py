"""Web-data curation: readers, extraction, filters, PII, dedup, domain selection, synthetic data."""
