"""Production instance storage: runs, events and materializations in a real PostgreSQL server."""
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("dagster_postgres", reason="dagster-postgres is in the dev extra")


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres(tmp_path):
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries not installed (.ci/run installs Debian's postgresql)")
    # initdb refuses to run as root: run the server as the `postgres` user when we are root, in a
    # folder that user can reach (pytest's tmp_path is private to root).
    base = Path(tempfile.mkdtemp(prefix="modelworks-pg-"))
    os.chmod(base, 0o755)
    data = base / "pgdata"
    data.mkdir()
    prefix = []
    if os.geteuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(data, "postgres", "postgres")
    port = _free_port()
    subprocess.run(prefix + [initdb, "-D", str(data), "-U", "modelworks", "--auth=trust"], check=True,
                   capture_output=True, cwd="/tmp")
    log = base / "pg.log"
    log.touch()
    if prefix:
        shutil.chown(log, "postgres", "postgres")
    subprocess.run(prefix + [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-o",
                             f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True, cwd="/tmp")
    try:
        subprocess.run(prefix + [_pg_bin("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(port),
                                 "-U", "modelworks", "dagster"], check=True, capture_output=True, cwd="/tmp")
        yield port
    finally:
        subprocess.run(prefix + [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True, cwd="/tmp")
        shutil.rmtree(base, ignore_errors=True)


def test_materializations_persist_in_postgres(postgres, tmp_path, demo_root):
    import dagster as dg

    from assets import seed
    from assets.storage import ModelworksStorage

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(f"""
storage:
  postgres:
    postgres_db:
      username: modelworks
      password: ""
      hostname: 127.0.0.1
      db_name: dagster
      port: {postgres}
      scheme: postgresql+psycopg2  # SQLAlchemy 2.1 defaults to psycopg 3; dagster-postgres ships psycopg2
""")
    root, _ = demo_root
    instance = dg.DagsterInstance.from_config(str(home))
    result = dg.materialize([seed.seed_corpus, seed.seed_split_is_by_document],
                            instance=instance, resources={"storage": ModelworksStorage(root=str(root))},
                            run_config={"ops": {"seed_corpus": {"config": {"source_dir": str(root / "demo" / "seed"),
                                                                           "max_chunk_words": 300}}}})
    assert result.success
    instance.dispose()

    # A new process's view: everything is in the database, nothing in DAGSTER_HOME's SQLite files.
    reopened = dg.DagsterInstance.from_config(str(home))
    assert type(reopened.run_storage).__name__ == "PostgresRunStorage"
    event = reopened.get_latest_materialization_event(dg.AssetKey("seed_corpus"))
    assert event.asset_materialization.metadata["documents"].value == 4
    assert reopened.get_run_by_id(result.run_id).is_success
    assert not list(home.rglob("*.db"))
    reopened.dispose()
