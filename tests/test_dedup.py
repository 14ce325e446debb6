"""Near-dedup quality on planted duplicates, the DuckDB scale path, and the demo crawl's dedup ground truth."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.dedup import lsh_bands, minhash_signatures, near_duplicate_clusters, shingles
from curation.demo.dedup_testbed import make_testbed, score_pairs


@pytest.fixture(scope="module")
def bed():
    bed = make_testbed(2400, seed=3)
    return bed, minhash_signatures(bed.texts)


def test_planted_near_duplicates_found_with_high_precision_and_recall(bed):
    bed, sigs = bed
    cluster_id, size, keep = near_duplicate_clusters(bed.ids, sigs, threshold=0.8, texts=bed.texts)
    score = score_pairs(bed, cluster_id, threshold=0.8)
    assert score["positives"] > 200
    assert score["f1"] >= 0.95 and score["precision"] >= 0.99
    assert score["false_pairs_sharing_boilerplate"] == 0
    levels = score["by_edit_level"]
    assert all(v["merge_rate"] >= 0.95 for v in levels.values() if v["mean_jaccard"] >= 0.85)
    assert all(v["merge_rate"] == 0 for v in levels.values() if v["mean_jaccard"] < 0.7)
    # One keeper per cluster; every row carries its cluster's size.
    assert keep.sum() == len(set(cluster_id))
    assert all(size[i] == cluster_id.count(c) for i, c in enumerate(cluster_id[:200]))


def test_bands_follow_the_threshold_like_fineweb():
    assert lsh_bands(0.65, 112) == (14, 8)  # FineWeb's 14 buckets x 8 hashes
    assert lsh_bands(0.6, 112) == (16, 7)  # the pipeline's default candidate threshold


@pytest.fixture(scope="module")
def shard_files(bed, tmp_path_factory):
    """Signatures as the per-shard asset writes them, and the shards' texts as curated pages hold them."""
    bed, sigs = bed
    root = tmp_path_factory.mktemp("shards")
    sig_files, text_files = [], []
    for shard in range(3):
        rows = slice(shard, None, 3)
        pq.write_table(pa.table({"id": bed.ids[rows], "signature": pa.FixedSizeListArray.from_arrays(
            pa.array(sigs[rows].reshape(-1), pa.uint64()), sigs.shape[1])}), root / f"sig-{shard}.parquet")
        pq.write_table(pa.table({"id": bed.ids[rows], "url": [f"https://x/{i}" for i in bed.ids[rows]],
                                 "text": bed.texts[rows]}), root / f"text-{shard}.parquet")
        sig_files.append(root / f"sig-{shard}.parquet")
        text_files.append(root / f"text-{shard}.parquet")
    return sig_files, text_files


@pytest.mark.parametrize("verify", ["text", "signature"])
def test_duckdb_band_join_gives_the_in_memory_clusters(bed, shard_files, verify):
    from curation.dedup_scale import near_duplicate_clusters_duckdb, verified_pairs_duckdb

    bed, sigs = bed
    sig_files, text_files = shard_files
    # batch_rows=300: the candidates' texts stream through Python in several batches per shard.
    got = near_duplicate_clusters_duckdb(sig_files, threshold=0.8, verify=verify, text_files=text_files,
                                         batch_rows=300)
    cluster_id, size, keep = near_duplicate_clusters(bed.ids, sigs, threshold=0.8,
                                                     texts=bed.texts if verify == "text" else None)
    want = {i: (c, int(s), bool(k)) for i, c, s, k in zip(bed.ids, cluster_id, size, keep)}
    got = {i: (c, s, k) for i, c, s, k in zip(*(got.column(n).to_pylist() for n in
                                                 ("id", "cluster_id", "cluster_size", "keep")))}
    assert got == want
    assert (~keep).sum() > 200
    score = score_pairs(bed, [got[i][0] for i in bed.ids], threshold=0.8)
    if verify == "text":  # the signature estimate alone lets through pairs just below 0.8
        assert score["precision"] >= 0.99 and score["f1"] >= 0.95
    pairs = verified_pairs_duckdb(sig_files, 16, 7, threshold=0.8, ids=bed.ids[:1000], verify=verify,
                                  text_files=text_files)
    assert set(pairs.column("id_a").to_pylist()) | set(pairs.column("id_b").to_pylist()) <= set(bed.ids[:1000])


def test_duckdb_text_verification_matches_exact_jaccard_and_checks_its_inputs(bed, shard_files):
    from curation.dedup import exact_jaccard
    from curation.dedup_scale import verified_pairs_duckdb

    bed, _ = bed
    sig_files, text_files = shard_files
    ids = bed.ids[:800]
    # A page present in two shards (here: a whole shard given twice) counts once.
    pairs = verified_pairs_duckdb(sig_files, 16, 7, ids=ids, text_files=text_files + text_files[:1])
    row = {i: r for r, i in enumerate(bed.ids)}
    p = np.array([[row[a], row[b]] for a, b in zip(pairs.column("id_a").to_pylist(),
                                                    pairs.column("id_b").to_pylist())], dtype=np.int64)
    assert len(p) > 20 and pairs.column("similarity").to_pylist() == exact_jaccard(bed.texts, p).tolist()
    with pytest.raises(ValueError, match="text_files"):
        verified_pairs_duckdb(sig_files, 16, 7, ids=ids)
    with pytest.raises(ValueError, match="without a text"):
        verified_pairs_duckdb(sig_files, 16, 7, ids=ids, text_files=text_files[:2])


def test_datasketch_lsh_backend_finds_the_same_clusters(bed):
    bed, sigs = bed
    ids, sigs = bed.ids[:800], sigs[:800]
    ours = near_duplicate_clusters(ids, sigs, threshold=0.8)
    theirs = near_duplicate_clusters(ids, sigs, threshold=0.8, backend="datasketch")
    assert ours[0] == theirs[0] and (ours[2] == theirs[2]).all()


def test_demo_truth_records_the_true_jaccard_of_planted_near_duplicates(demo_root):
    from curation.demo.crawl import load_truth

    root, _ = demo_root
    near = [t for t in load_truth(root / "demo") if t["near_duplicate_of"]]
    assert near and all(0 < t["near_duplicate_jaccard"] < 1 for t in near)
    # A 1-3 word edit of a short page falls below 0.8: those pairs are not near duplicates at 0.8.
    assert min(t["near_duplicate_jaccard"] for t in near) < 0.8 < max(t["near_duplicate_jaccard"] for t in near)


def test_signatures_of_arrow_and_python_inputs_agree(bed):
    bed, sigs = bed
    np.testing.assert_array_equal(minhash_signatures(pa.chunked_array([bed.texts[:50]])), sigs[:50])
    assert len(shingles(bed.texts[0])) > 250
