"""Atomic Parquet and JSONL writes, so a killed run never leaves a half file a reader takes for whole."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq


def _atomic_target(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide outputs from other users of a shared root
    return fd, tmp


def write_parquet_atomic(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write `table` to `path` via a temporary file in the same folder, then rename."""
    path = Path(path)
    fd, tmp = _atomic_target(path)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_jsonl_atomic(rows: Iterable[dict], path: str | os.PathLike) -> int:
    """Write rows as JSON lines atomically; returns the number of rows written."""
    path = Path(path)
    fd, tmp = _atomic_target(path)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> Path:
    path = Path(path)
    fd, tmp = _atomic_target(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    return write_bytes_atomic(text.encode("utf-8"), path)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_parquet_folder(folder: str | os.PathLike) -> pa.Table:
    """Read every `*.parquet` file under `folder` (sorted, so the row order is stable)."""
    files = sorted(Path(folder).rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no parquet files under {folder}")
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
