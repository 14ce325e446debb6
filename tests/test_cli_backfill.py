"""Backfilling one stage over several shards from the CLI, as the README shows."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parent.parent


def test_cli_materializes_a_stage_for_several_shards(demo_root, tmp_path):
    root, summary = demo_root
    home, dagster_home = tmp_path / "home", tmp_path / "dagster_home"
    shutil.copytree(root / "landing", home / "landing")
    shutil.copytree(root / "demo", home / "demo")
    dagster_home.mkdir()
    shutil.copy(REPO / "pipelines" / "dagster.yaml", dagster_home / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    instance.add_dynamic_partitions("crawl_shards", summary["shards"])
    instance.dispose()

    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "MODELWORKS_HOME": str(home),
           "MODELWORKS_PROFILE": "tiny",
           # curation's worker processes import the project: installed (`make`) or on the path.
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    dagster = Path(sys.executable).parent / "dagster"
    for shard in summary["shards"]:
        proc = subprocess.run([str(dagster), "asset", "materialize", "-m", "pipelines.definitions",
                               "--select", "crawl_shard,curated_pages", "--partition", shard],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]

    instance = dg.DagsterInstance.from_config(str(dagster_home))
    done = instance.get_materialized_partitions(dg.AssetKey("curated_pages"))
    assert done == set(summary["shards"])
    for shard in summary["shards"]:
        assert (home / "tables" / "curated_pages" / shard / "pages.parquet").exists()
    instance.dispose()
