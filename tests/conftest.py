"""Shared fixtures: a generated demo crawl (small) in a temporary storage root."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    from curation.demo.crawl import DemoCrawlConfig, generate_demo_crawl

    root = tmp_path_factory.mktemp("demo")
    summary = generate_demo_crawl(root, DemoCrawlConfig(n_shards=2, pages_per_shard=80, seed=0))
    return root, summary
