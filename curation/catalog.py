"""DuckDB query layer: one view per Parquet table folder under the storage root, for ad-hoc SQL."""
from __future__ import annotations

import os
from pathlib import Path


def build_catalog(tables_root: str | os.PathLike, db_path: str | os.PathLike) -> dict[str, int]:
    """(Re)create `db_path` with a view per table folder (`tables/<asset>/**.parquet`); returns rows per view.

    The database holds views only, so rebuilding it is cheap and it never goes stale in content:
    a view reads the Parquet files as they are when queried. Written beside and renamed, so a
    reader never opens a half-built catalog.
    """
    import duckdb

    tables_root, db_path = Path(tables_root), Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = db_path.with_name(f".{db_path.name}.tmp")
    tmp.unlink(missing_ok=True)
    rows = {}
    with duckdb.connect(str(tmp)) as con:
        for folder in sorted(p for p in tables_root.iterdir() if p.is_dir()):
            if not any(folder.rglob("*.parquet")):
                continue
            glob = str(folder / "**" / "*.parquet").replace("'", "''")
            con.execute(f"CREATE VIEW \"{folder.name}\" AS SELECT * FROM read_parquet('{glob}', union_by_name=true)")
            rows[folder.name] = con.execute(f'SELECT count(*) FROM "{folder.name}"').fetchone()[0]
    tmp.replace(db_path)
    return rows


def query(db_path: str | os.PathLike, sql: str) -> list[tuple]:
    import duckdb

    with duckdb.connect(str(db_path), read_only=True) as con:
        return con.execute(sql).fetchall()
