"""Domain selection as a classifier with a measured error: seed manuals vs crawl pages, a threshold chosen for a
target precision on held-out scores, an empty domain corpus (and a warning) for a crawl without domain pages,
and DAPT falling back to the seed documents then."""
import json
import random
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.domain import DomainClassifierConfig, select_domain_pages

FIXTURES = Path(__file__).parent / "fixtures"

# A small world written for these tests (not the demo generator): maintenance manuals as seed documents,
# web pages about the same equipment faults, and general pages of other topics.
FAULTS = [
    ("centrifugal pump", "loses discharge pressure", "a worn impeller", "replace the impeller"),
    ("centrifugal pump", "leaks at the shaft", "a damaged mechanical seal", "fit a new mechanical seal"),
    ("centrifugal pump", "cavitates with a rattling noise", "a clogged suction strainer", "clean the suction strainer"),
    ("electric motor", "overheats under load", "a blocked cooling fan", "clean the fan cover and the fins"),
    ("electric motor", "hums but does not start", "a failed start capacitor", "replace the start capacitor"),
    ("electric motor", "vibrates at full speed", "a worn rolling bearing", "replace the bearings and realign"),
    ("air compressor", "trips on high temperature", "a fouled oil cooler", "clean the oil cooler core"),
    ("air compressor", "carries oil into the air line", "a saturated separator element", "change the separator"),
    ("air compressor", "runs but builds no pressure", "a stuck inlet valve", "free and lubricate the inlet valve"),
    ("hydraulic press", "loses force during the stroke", "an internal cylinder leak", "reseal the cylinder"),
    ("hydraulic press", "makes the oil foam", "air drawn in at the pump inlet", "tighten the suction fittings"),
    ("hydraulic press", "moves in jerks", "a sticking proportional valve", "flush and recalibrate the valve"),
    ("gearbox", "knocks under load", "a chipped gear tooth", "replace the damaged gear set"),
    ("gearbox", "runs hot", "the wrong oil viscosity", "drain and refill with the specified oil"),
    ("belt conveyor", "drifts to one side", "a misaligned tail pulley", "square the tail pulley to the frame"),
    ("belt conveyor", "slips at start-up", "low belt tension", "adjust the take-up to the rated tension"),
]
MANUAL_LINES = [
    "Symptom: the {eq} {sym}. Probable cause: {cause}. Corrective action: {fix}.",
    "If the {eq} {sym}, check for {cause} first. To correct it, {fix}.",
    "A {eq} that {sym} usually suffers from {cause}; the lasting repair is to {fix}.",
]
WEB_LINES = [
    "Last week our {eq} {sym} again. The technician traced it to {cause}, so we had to {fix}.",
    "Quick tip from the shop floor: when a {eq} {sym}, nine times out of ten it is {cause}. Just {fix}.",
    "We asked our maintenance lead why the {eq} {sym}. Her answer: {cause}. The crew will {fix} tomorrow.",
    "Has anyone seen a {eq} that {sym}? Ours had {cause} and it only stopped after we decided to {fix}.",
]
WEB_FILLER = [
    "Unplanned downtime is expensive, and most of it starts with a small symptom nobody wrote down.",
    "Always isolate the machine and apply lockout and tagout before you open anything.",
    "Thanks for reading, and leave a comment if you have seen something similar in your plant.",
    "Keep a simple log of what you find, because the next shift will thank you for it.",
]
TOPICS = {
    "cooking": (["Mix the {a} with the {b} and season with {c}.", "Bake it for {n} minutes until the {a} is golden.",
                 "My grandmother always served {a} with {b} on Sundays.", "Store the {c} in a cool place for {n} days."],
                ["flour", "butter", "sugar", "onions", "garlic", "tomatoes", "rice", "lentils", "cream", "basil",
                 "pepper", "lemon", "cinnamon", "potatoes", "cheese"]),
    "football": (["The {a} scored twice against the {b}.", "Fans sang about the {c} for {n} minutes.",
                  "After the break the {a} changed tactics and the {b} struggled.", "The {c} ends in {n} days."],
                 ["striker", "goalkeeper", "home team", "visitors", "coach", "captain", "referee", "league", "cup",
                  "midfield", "derby", "season", "stadium", "penalty", "transfer"]),
    "travel": (["We walked from the {a} to the {b}.", "We stopped for {c} and watched the sunset for {n} minutes.",
                "The {a} is crowded in summer, so visit the {b} early.", "A ferry to the {c} leaves every {n} minutes."],
               ["old town", "harbour", "cathedral", "market", "beach", "museum", "coffee", "castle", "bridge",
                "mountains", "island", "village", "vineyard", "lake", "train station"]),
    "politics": (["The {a} rejected the {b} after a long debate.", "The debate about {c} lasted {n} hours.",
                  "Critics say the {a} ignored the {b} for years.", "A vote on the {c} is expected in {n} weeks."],
                 ["parliament", "minister", "budget", "opposition", "election", "senate", "taxes", "reform", "vote",
                  "coalition", "pension", "mayor", "treaty", "campaign", "court"]),
    "gardening": (["Plant the {a} next to the {b}.", "Water the {c} daily and wait about {n} days.",
                   "In autumn cut back the {a} and cover the {b} with leaves.", "Feed the {c} every {n} weeks."],
                  ["roses", "tomatoes", "strawberries", "tulips", "hedge", "lawn", "seedlings", "compost", "herbs",
                   "apple tree", "lavender", "pumpkins", "ivy", "beans", "soil"]),
    "movies": (["The film follows a {a} and a {b} who fall in love.", "Their letters about {c} fill {n} scenes.",
                "Critics praised the {a} but found the {b} too long.", "The {c} won an award after {n} years."],
               ["detective", "pianist", "soldier", "teacher", "painter", "letters", "music", "summer", "war",
                "dreams", "director", "soundtrack", "sequel", "actress", "festival"]),
}
HELD_OUT_ON_TOPIC = (
    "Forum question: our conveyor belt keeps slipping on the drive pulley every morning when the line starts. "
    "Someone suggested the belt tension is too low and the take-up needs adjusting. Another member said a worn "
    "drive pulley lagging can also make the belt slip at start-up, and that the motor overheats if the belt "
    "drags. We adjusted the take-up to the rated tension, checked the pulley alignment and the slipping stopped.")


def _seed_chunks(rng: random.Random) -> tuple[list[str], list[str]]:
    """Four manuals, each a few chunks of fault entries: (chunk texts, document ids)."""
    texts, docs = [], []
    for m in range(4):
        faults = rng.sample(FAULTS, 9)
        for c in range(3):
            lines = [f"Chapter {m + 1}.{c + 1} Troubleshooting"]
            lines += [rng.choice(MANUAL_LINES).format(eq=eq, sym=sym, cause=cause, fix=fix)
                      for eq, sym, cause, fix in faults[3 * c: 3 * c + 3]]
            texts.append("\n\n".join(lines))
            docs.append(f"manual-{m + 1}")
    return texts, docs


def _domain_page(rng: random.Random) -> str:
    lines = [rng.choice(WEB_FILLER)]
    lines += [rng.choice(WEB_LINES).format(eq=eq, sym=sym, cause=cause, fix=fix)
              for eq, sym, cause, fix in rng.sample(FAULTS, 3)]
    return "\n\n".join(lines + [rng.choice(WEB_FILLER)])


def _general_page(rng: random.Random, topic: str) -> str:
    templates, words = TOPICS[topic]
    return "\n\n".join(rng.choice(templates).format(a=rng.choice(words), b=rng.choice(words), c=rng.choice(words),
                                                    n=rng.randint(2, 90)) for _ in range(6))


def _general_pages(rng: random.Random, n: int, real: bool = True) -> list[str]:
    """`n` generated pages of six topics, and (`real`) a real blog post about why bread came out flat: a
    troubleshooting story off the domain. The other real fixture pages (a compressor forum thread, a pump
    product page, cranes with gearbox trouble) are near the domain and stay out of the general side."""
    blog = [(FIXTURES / "real_pages" / "blog_with_comments.txt").read_text()] if real else []
    return blog + [_general_page(rng, topic) for topic in list(TOPICS) * (n // len(TOPICS))]


def test_a_crawl_without_domain_pages_selects_nothing_and_says_so():
    rng = random.Random(0)
    seed_texts, seed_docs = _seed_chunks(rng)
    pages = _general_pages(rng, 72)
    sel = select_domain_pages(seed_texts, seed_docs, pages)
    assert not sel.selected.any()
    assert sel.warning and "no domain pages" in sel.warning
    v = sel.validation
    assert v["crawl_pages_above_threshold"] == 0 and v["expected_precision"] is None
    expected = "document" if len(set(seed_docs)) >= 5 else "chunk"
    assert v["held_out_by"].startswith(expected) and v["heldout_crawl_pages"] == len(pages)
    assert sel.threshold > sel.scores.max()


def test_on_a_mixed_crawl_the_validation_numbers_are_reported_and_only_on_topic_pages_are_selected():
    rng = random.Random(1)
    seed_texts, seed_docs = _seed_chunks(rng)
    domain = [_domain_page(rng) for _ in range(30)] + [HELD_OUT_ON_TOPIC]
    # Without the real blog post: among generated general pages it is the one page of real prose, and the
    # mixture takes that lone outlier for a domain page (a real crawl's general pages are all real prose).
    general = _general_pages(rng, 66, real=False)
    pages = domain + general
    truth = np.array([True] * len(domain) + [False] * len(general))
    sel = select_domain_pages(seed_texts, seed_docs, pages, DomainClassifierConfig(min_precision=0.9))
    v = sel.validation
    assert sel.warning is None
    assert v["expected_precision"] >= 0.9 and 0.0 < v["expected_recall"] <= 1.0
    assert 0.0 < v["recall_heldout_seed_chunks"] <= 1.0 and v["seed_documents"] == 4
    assert 0.0 < v["estimated_domain_fraction_of_crawl"] < 1.0
    assert sel.selected[len(domain) - 1], "the hand-written on-topic page (no template of the seed) is selected"
    assert not sel.selected[~truth].any(), "no off-topic page is selected"
    assert sel.selected[truth].mean() >= 0.9
    # The estimate is close to the truth on this crawl.
    assert abs(v["estimated_domain_fraction_of_crawl"] - truth.mean()) < 0.1
    # Every score is held out: stable under a different order of the pages (folds follow page ids).
    ids = [f"p{i}" for i in range(len(pages))]
    order = rng.sample(range(len(pages)), len(pages))
    again = select_domain_pages(seed_texts, seed_docs, [pages[i] for i in order],
                                page_ids=[ids[i] for i in order])
    first = select_domain_pages(seed_texts, seed_docs, pages, page_ids=ids)
    assert np.allclose(again.scores, first.scores[order])


def _write_world(root: Path, pages: list[str], seed_texts: list[str], seed_docs: list[str]) -> None:
    from assets.storage import ModelworksStorage

    storage = ModelworksStorage(root=str(root))
    table = pa.table({"id": [f"p{i:04d}" for i in range(len(pages))],
                      "url": [f"https://example.org/{i}" for i in range(len(pages))],
                      "text": pages, "n_words": [len(p.split()) for p in pages]})
    for loc, t in ((storage.deduplicated_pages(), table),
                   (storage.seed_chunks(), pa.table({"doc_id": seed_docs, "text": seed_texts,
                                                     "split": ["generation"] * len(seed_texts)}))):
        Path(loc).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(t, loc)


def _materialize_domain(root: Path):
    from assets import domain
    from assets.storage import ModelworksStorage

    result = dg.materialize([domain.domain_selection, domain.domain_corpus_found_domain_pages,
                             domain.domain_corpus_separates_from_general],
                            resources={"storage": ModelworksStorage(root=str(root))})
    assert result.success
    meta = result.asset_materializations_for_node("domain_selection")
    by_key = {m.asset_key.to_user_string(): m.metadata for m in meta}
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    return by_key, checks


def test_the_domain_asset_on_a_crawl_without_domain_pages_is_empty_warns_and_its_checks_say_so(tmp_path):
    rng = random.Random(2)
    seed_texts, seed_docs = _seed_chunks(rng)
    _write_world(tmp_path, _general_pages(rng, 72), seed_texts, seed_docs)
    meta, checks = _materialize_domain(tmp_path)
    assert meta["domain_corpus"]["rows"].value == 0
    assert "no domain pages" in meta["domain_corpus"]["warning"].value
    assert meta["general_corpus"]["rows"].value + meta["general_heldout_text"]["rows"].value == 73
    found = checks["domain_corpus_found_domain_pages"]
    assert not found.passed and found.severity == dg.AssetCheckSeverity.WARN
    separates = checks["domain_corpus_separates_from_general"]
    assert separates.passed and "empty domain corpus" in separates.metadata["note"].value


def test_the_domain_asset_on_a_mixed_crawl_reports_precision_and_recall(tmp_path):
    rng = random.Random(3)
    seed_texts, seed_docs = _seed_chunks(rng)
    pages = [_domain_page(rng) for _ in range(30)] + _general_pages(rng, 66, real=False)
    _write_world(tmp_path, pages, seed_texts, seed_docs)
    meta, checks = _materialize_domain(tmp_path)
    m = meta["domain_corpus"]
    assert m["rows"].value == 30 and "warning" not in m
    assert m["expected_precision"].value >= 0.9 and m["recall_heldout_seed_chunks"].value > 0
    assert m["validation"].value["heldout_seed_chunks"] == len(seed_texts)
    assert checks["domain_corpus_found_domain_pages"].passed
    assert checks["domain_corpus_separates_from_general"].passed


def test_dapt_trains_on_the_decontaminated_seed_generation_part_when_the_domain_corpus_is_empty(tmp_path):
    from assets.storage import ModelworksStorage
    from assets.training import _domain_data, _seed_generation_texts

    storage = ModelworksStorage(root=str(tmp_path))
    leaked = "the operators noticed that the hydraulic press loses force during the stroke after a long shift"
    chunks = pa.table({"doc_id": ["a", "a", "b"], "split": ["generation", "generation", "heldout"],
                       "text": [f"Chapter 1. Presses. In one plant {leaked}, and the crew resealed the cylinder. "
                                + "Check the cylinder seals, the pump inlet and the proportional valve before you "
                                  "blame the control system, and write down what you find for the next shift.",
                                "Chapter 2. Pumps. A worn impeller makes a centrifugal pump lose pressure.",
                                "Held-out manual text that never trains the model."]})
    Path(storage.seed_chunks()).parent.mkdir(parents=True)
    pq.write_table(chunks, storage.seed_chunks())
    suite = Path(storage.benchmark_suite())
    (suite / "data").mkdir(parents=True)
    item = {"id": "q1", "question": f"Why is it that {leaked}?", "choices": ["a", "b", "c", "d"], "answer": 0}
    (suite / "data" / "mcq.test.jsonl").write_text(json.dumps(item) + "\n")
    (suite / "manifest.json").write_text(json.dumps(
        {"benchmarks": {"mcq": {"kind": "mcq", "files": {"test": str(suite / "data" / "mcq.test.jsonl")}}}}))
    texts = _seed_generation_texts(storage)
    assert len(texts) == 2 and "Held-out" not in " ".join(texts)
    assert leaked not in texts[0] and "resealed the cylinder" in texts[0]
    # DAPT says what it trained on, as domain_tokens recorded it when it packed the shards.
    import types

    import dagster as dg

    instance = dg.DagsterInstance.ephemeral()
    context = types.SimpleNamespace(instance=instance)
    assert "not recorded" in _domain_data(context)
    instance.report_runless_asset_event(dg.AssetMaterialization(
        "domain_tokens", metadata={"documents": 2, "source": "seed documents' generation part (the domain corpus is "
                                                              "empty)"}))
    assert "seed documents" in _domain_data(context)


def test_one_seed_document_is_folded_by_chunk_and_says_so():
    rng = random.Random(4)
    seed_texts, seed_docs = _seed_chunks(rng)
    only = [t for t, d in zip(seed_texts, seed_docs) if d == "manual-1"]
    sel = select_domain_pages(only, ["manual-1"] * len(only), _general_pages(rng, 36))
    assert sel.validation["held_out_by"].startswith("chunk") and not sel.selected.any()



def _style_mismatch_world(rng: random.Random):
    """Seed: terse manual instructions. Crawl: half forum threads about the same pumps (another style, the
    domain), half chatty general pages (cooking, travel, football, ...). Written for this test."""
    faults = ["E01", "E02", "E07", "E12", "E15", "E21", "E33", "E40"]
    parts = ["impeller", "seal", "bearing", "motor", "pressure sensor", "inlet valve", "check valve", "capacitor",
             "float switch", "drive shaft"]
    actions = ["inspect", "replace", "clean", "tighten", "reset", "lubricate", "test", "drain"]
    symptoms = ["loses pressure", "makes a grinding noise", "trips the breaker", "runs dry", "vibrates",
                "overheats", "leaks at the housing", "stops after a minute"]
    seeds = [" ".join(f"If the pump shows fault {rng.choice(faults)}, {rng.choice(actions)} the {rng.choice(parts)}. "
                      f"When the unit {rng.choice(symptoms)}, switch off the supply and {rng.choice(actions)} the "
                      f"{rng.choice(parts)} before restarting." for _ in range(6)) for _ in range(24)]
    forum = []
    for _ in range(60):
        posts = [f"Hi all, my pump {rng.choice(symptoms)} and the display says {rng.choice(faults)}. Anyone seen "
                 f"this before? I already checked the {rng.choice(parts)} lol.",
                 f"Had the same thing last winter, turned out the {rng.choice(parts)} was shot. Cost me about 80 "
                 "bucks at the local shop.",
                 f"Thanks mate, I'll give it a go this weekend. The {rng.choice(parts)} looked fine to me though.",
                 f"Update: swapped the {rng.choice(parts)} and it works again. Cheers for the help guys!",
                 f"Posted by {rng.choice(['dave99', 'pumpguy', 'sarah_k', 'mike.t'])}, {rng.randint(1, 40)} replies"]
        rng.shuffle(posts)
        forum.append(" ".join(posts))
    topics = [["Preheat the oven", "whisk the eggs", "the sauce thickens", "add a pinch of salt"],
              ["the train to Lisbon", "our hotel near the old town", "the museum opens at nine", "we rented bikes"],
              ["the striker scored twice", "the coach changed the lineup", "a penalty in the last minute"],
              ["interest rates rose", "the index fell two percent", "quarterly earnings beat estimates"],
              ["plant the tulip bulbs", "water the tomatoes", "the roses need pruning", "mulch keeps moisture in"],
              ["the new phone has", "battery life improved", "the update broke wifi", "the app crashed again"]]
    general = []
    for _ in range(61):
        t = rng.choice(topics)
        general.append(" ".join(f"{rng.choice(['Yesterday', 'Honestly', 'In short', 'This week'])} "
                                f"{rng.choice(t)} and {rng.choice(t)}. Posted by {rng.choice(['anna', 'joe', 'li'])}, "
                                f"{rng.randint(1, 30)} comments." for _ in range(5)))
    return seeds, [f"doc{i % 3}" for i in range(24)], forum, general


def test_domain_pages_in_another_style_than_the_seed_are_selected_not_the_general_pages():
    """The known failure of seed-vs-crawl classifiers: with the domain pages among the negatives and in another
    style, style becomes the signal and the rounds settled on all 61 general pages (0 domain pages, reverse test
    1.0). The seed-fit test catches it (a unigram model of the general pages explains the seed worse than one of
    the forum threads) and the rounds rerun with lexically general negatives."""
    seeds, docs, forum, general = _style_mismatch_world(random.Random(0))
    sel = select_domain_pages(seeds, docs, forum + general, DomainClassifierConfig())
    assert sel.selected[:60].sum() >= 55 and sel.selected[60:].sum() <= 2, sel.validation
    assert sel.validation["first_selection_failed_seed_fit"]["seed_fit_gain"] < 0
    assert sel.validation["seed_fit_gain_nats_per_word"] > 0
    assert sel.warning is None
