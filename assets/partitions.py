"""Partitions: one per crawl shard, and one per batch of seed documents for synthetic data."""
import dagster as dg

# One partition per crawl shard (a WARC file), added by the landing-folder sensor or the demo driver.
crawl_shard_partitions = dg.DynamicPartitionsDefinition(name="crawl_shards")

# Seed documents fall into a fixed number of batches by a hash of their id, so a new document only
# regenerates its own batch's synthetic items and each batch backfills on its own.
SEED_BATCHES = [f"batch-{i}" for i in range(4)]
seed_batch_partitions = dg.StaticPartitionsDefinition(SEED_BATCHES)
