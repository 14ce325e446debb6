"""Partitions shared by the per-shard assets."""
import dagster as dg

# One partition per crawl shard (a WARC file), added by the landing-folder sensor or the demo driver.
crawl_shard_partitions = dg.DynamicPartitionsDefinition(name="crawl_shards")
