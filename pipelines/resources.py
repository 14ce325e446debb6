"""Resources: the storage root every asset reads from and writes to."""
from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

DEFAULT_HOME = Path(__file__).resolve().parent.parent / ".modelworks"


def modelworks_home() -> str:
    return os.environ.get("MODELWORKS_HOME", str(DEFAULT_HOME))


class ModelworksStorage(dg.ConfigurableResource):
    """One storage root (`MODELWORKS_HOME`): landing folder, Parquet tables, models, reports.

    Folders: `landing/` (new crawl shards), `raw/` (ingested shards), `tables/<asset>/[<partition>]`,
    `models/<stage>/`, `benchmarks/`, `eval/`, `reports/`, `demo/` (ground truth of the demo crawl).
    """

    root: str

    def path(self, *parts: str) -> Path:
        return Path(self.root).joinpath(*parts)

    def table_dir(self, asset: str, partition: str | None = None) -> Path:
        return self.path("tables", asset, partition) if partition else self.path("tables", asset)

    @property
    def landing_dir(self) -> Path:
        return self.path("landing")

    @property
    def demo_dir(self) -> Path:
        return self.path("demo")
