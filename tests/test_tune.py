"""The hyperparameter tuner's choice rule and the validation/test halves of the held-out general text."""
import pyarrow as pa

from assets.evaluation import general_text_split
from pipelines.tune import choose


def test_best_validation_score_wins_when_nothing_forgets():
    assert choose({"1e-4": 0.40, "5e-4": 0.46}, {"1e-4": 1.01, "5e-4": 1.04}, 0.10) == ("5e-4", True)


def test_a_value_that_raises_general_perplexity_past_the_guard_is_not_chosen_however_well_it_scores():
    value, held = choose({"1e-4": 0.40, "5e-4": 0.46, "1e-3": 0.52}, {"1e-4": 1.01, "5e-4": 1.18, "1e-3": 1.30}, 0.10)
    assert (value, held) == ("1e-4", True)


def test_when_every_value_forgets_too_much_the_least_forgetting_one_is_chosen_and_flagged():
    assert choose({"a": 0.5, "b": 0.3}, {"a": 1.5, "b": 1.2}, 0.10) == ("b", False)


def test_general_text_validation_and_test_halves_are_disjoint_stable_and_cover_every_page():
    ids = [f"page-{i}" for i in range(400)]
    table = pa.table({"id": ids, "text": ["t"] * len(ids)})
    val, test = general_text_split(table, "validation"), general_text_split(table, "test")
    val_ids, test_ids = set(val.column("id").to_pylist()), set(test.column("id").to_pylist())
    assert not val_ids & test_ids and val_ids | test_ids == set(ids)
    assert 150 < len(val_ids) < 250  # about half
    assert set(general_text_split(table.slice(0, 200), "validation").column("id").to_pylist()) == \
        {i for i in val_ids if int(i.split("-")[1]) < 200}  # a page's half does not depend on the other pages


def test_the_real_english_probe_ships_with_python_and_splits_into_disjoint_halves():
    from assets.evaluation import REFERENCE_TEXT_DOCS
    from evaluation.reference_text import python_reference_docs

    def reference_text_split(split):
        return python_reference_docs(REFERENCE_TEXT_DOCS, split=split)

    val_ids, val_texts = reference_text_split("validation")
    test_ids, test_texts = reference_text_split("test")
    assert len(val_ids) >= 25 and len(test_ids) >= 25 and not set(val_ids) & set(test_ids)
    assert all(600 <= len(t) <= 2000 for t in val_texts + test_texts)
    assert any("statement" in t for t in test_texts)  # the reference manual's prose, not generated text
    assert reference_text_split("test") == (test_ids, test_texts)  # stable across calls
