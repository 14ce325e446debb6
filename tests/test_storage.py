"""The storage owner: every location on a local folder and on a non-local fsspec filesystem, with atomic writes."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.storage import COMMITTED, ModelworksStorage


def _roots(tmp_path):
    import fsspec

    fsspec.filesystem("memory").store.clear()
    return [ModelworksStorage(root=str(tmp_path / "home"), cache_dir=str(tmp_path / "cache")),
            ModelworksStorage(root="memory://bucket/home", cache_dir=str(tmp_path / "cache"))]


@pytest.mark.parametrize("which", [0, 1], ids=["local", "memory-fsspec"])
def test_file_and_folder_round_trip(tmp_path, which):
    storage = _roots(tmp_path)[which]
    loc = storage.curated_pages("shard-0")
    assert loc.endswith("tables/curated_pages/shard-0/pages.parquet")
    assert not storage.exists(loc)
    with storage.writing(loc) as p:
        pq.write_table(pa.table({"id": ["a", "b"]}), p)
    assert storage.exists(loc)
    with storage.reading(loc) as p:
        assert pq.read_table(p).column("id").to_pylist() == ["a", "b"]

    model = storage.model("sft")
    with storage.writing(model) as d:
        d.mkdir()
        (d / "config.json").write_text("{}")
        (d / "sub").mkdir()
        (d / "sub" / "w.bin").write_bytes(b"123")
    assert storage.exists(model)
    with storage.reading(model) as d:
        assert (d / "sub" / "w.bin").read_bytes() == b"123" and not (d / COMMITTED).exists()
    assert storage.listdir(storage._loc("tables", "curated_pages")) == ["shard-0"]


@pytest.mark.parametrize("which", [0, 1], ids=["local", "memory-fsspec"])
def test_failed_write_leaves_previous_version(tmp_path, which):
    storage = _roots(tmp_path)[which]
    loc = storage.scores("dapt")
    storage.write_text("old", loc)
    with pytest.raises(RuntimeError):
        with storage.writing(loc) as p:
            p.write_text("half")
            raise RuntimeError("killed mid-write")
    assert storage.read_text(loc) == "old"
    # A folder whose upload never committed is not visible as a whole folder.
    folder = storage.model("dpo")
    with pytest.raises(RuntimeError):
        with storage.writing(folder) as d:
            d.mkdir()
            (d / "config.json").write_text("{}")
            raise RuntimeError("killed")
    assert not storage.exists(folder)


def test_local_root_refuses_nothing_and_remote_root_refuses_local_only_steps(tmp_path):
    local, remote = _roots(tmp_path)
    assert str(local.local_path(local.model("dapt"))).endswith("models/dapt")
    with pytest.raises(ValueError, match="object storage"):
        remote.local_path(remote.model("dapt"))


def test_writes_leave_no_temporary_files_beside_targets(tmp_path):
    storage = _roots(tmp_path)[0]
    for i in range(3):
        storage.write_text(str(i), storage.scores("base"))
    assert sorted(p.name for p in (tmp_path / "home" / "eval").iterdir()) == ["base.test.json"]
