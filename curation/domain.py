"""Bottom-up domain selection: a linear classifier (seed text vs crawl pages) with a measured error.

The way FineWeb-Edu and DCLM pick pages: train a cheap binary classifier, positives = text of the
domain, negatives = a sample of the crawl, and keep the pages it scores above a threshold chosen
on held-out data. Positives here are chunks of the *generation* part of the seed documents,
negatives a sample of the crawl pages; the model is an L2 logistic regression over hashed word
unigrams and bigrams, trained in numpy.

Every score is a held-out score (cross-fitting): K folds, seed chunks folded *by document*, crawl
pages by a hash of their id; each fold's rows are scored by the model trained on the other folds.
A held-out seed chunk is scored like a document of the domain the model never saw, and no page is
scored by a model that trained on it.

The negatives are *contaminated*: the domain pages the user wants are among the crawl pages (a few
per cent of a real crawl, half of the demo world). Trained on as negatives, they teach the model that
domain words are negative. So the classifier is trained in rounds: round 1 on every sampled page,
round 2 without the quarter of pages round 1 scored highest (`round2_excludes_top`), later rounds
without the pages the round before selected, until the selection no longer changes (`rounds`).

The threshold. Precision cannot be read off "held-out seed chunks vs held-out crawl pages" as it
stands: the crawl side holds domain pages (counting them as errors would reject the demo's domain
pages), and the class ratio of that split is arbitrary. So, each round:

* the held-out scores (logits) of the crawl are fitted as a mixture of a general and a domain
  component, the domain component also holding the held-out seed chunks, the labelled examples of
  how domain text scores (`domain_mixture`); EM gives each page the probability that it is a domain
  page, and the estimated domain fraction of the crawl;
* the threshold is the one with the best expected F1 among those whose expected precision (mean
  probability over the pages kept) reaches `min_precision`.

Then a reverse test of the final selection, independent of the seed-vs-crawl classifier: a
classifier of the selected pages vs the other pages, trained on web pages only, must rank the seed
chunks above the (held-out) unselected pages with probability >= `min_seed_agreement` (an AUC). A
group of pages that only scores high (another topic, a cluster the rounds left out of the
negatives, a lone outlier) fails it. A crawl where nothing passes gets an empty domain corpus and a
warning.

Reported: expected precision and recall over the crawl, the estimated domain fraction, the recall on
held-out seed chunks at the threshold, the seed agreement and the counts behind them. They are
estimates under the model (two unimodal groups of scores), not counts against labels; on the demo
world they are checked against its ground truth. Limitation: with an English seed, "English" is
itself a group of scores in a crawl of many languages; select among pages in the seed documents'
languages (the domain asset does).
"""
from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

_TOKEN_RE = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")


@dataclass(frozen=True)
class DomainClassifierConfig:
    min_precision: float = 0.9  # the expected precision the selected pages must reach
    min_seed_agreement: float = 0.75  # reverse test (an AUC): seed chunks must outscore unselected pages
    min_pages: int = 3  # fewer selected pages are no group: a lone outlier page is not a domain
    min_crawl_pages: int = 20  # fewer crawl pages are too few to learn a threshold from: nothing is selected
    n_buckets: int = 1 << 18  # hashed unigram+bigram feature space
    l2: float = 0.01  # L2 penalty on the weights (features are L2-normalized per document)
    iterations: int = 100  # accelerated gradient steps per model (converged well before at l2=0.01)
    folds: int = 5  # cross-fitting folds (at most the number of seed documents)
    min_documents_to_fold_by: int = 5  # fewer seed documents: held out by chunk, not by document (see the fit)
    max_negatives: int = 20000  # crawl pages sampled as training negatives (every page is still scored)
    rounds: int = 4  # classifier rounds (see the module docstring); stops early once the selection is stable
    round2_excludes_top: float = 0.25  # share of round 1's best-scored pages left out of round 2's negatives
    seed: int = 0


@dataclass(frozen=True)
class HeldoutTextSettings:
    """General pages set aside (never trained on) to measure forgetting as perplexity."""

    fraction: float = 0.1  # share of the general pages set aside, by a seeded hash of their id
    max_docs: int = 200  # at most this many


@dataclass
class DomainSelection:
    scores: np.ndarray  # held-out (cross-fitted) probability of the classifier for each crawl page
    selected: np.ndarray  # boolean mask over the crawl pages
    threshold: float  # pages with score >= threshold are selected (above every score when none is)
    domain_probability: np.ndarray  # the mixture's probability that each page is a domain page
    seed_scores: np.ndarray  # held-out scores of the seed chunks
    validation: dict = field(default_factory=dict)  # precision / recall / counts behind the threshold
    warning: str | None = None


def _features(text: str, n_buckets: int) -> np.ndarray:
    words = [w.lower() for w in _TOKEN_RE.findall(text)]
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    # crc32 is stable across processes and Python versions, unlike hash().
    return np.fromiter((zlib.crc32(g.encode("utf-8")) % n_buckets for g in grams), dtype=np.int64, count=len(grams))


class _Sparse:
    """Rows of L2-normalized sublinear term counts (CSR-like triplets), columns compacted to the buckets in use."""

    def __init__(self, texts: Sequence[str], n_buckets: int, vocabulary_from: int = 0):
        """`vocabulary_from`: only buckets that occur in texts[vocabulary_from:] become columns."""
        bags = [np.unique(_features(text, n_buckets), return_counts=True) for text in texts]
        seen = np.zeros(n_buckets, dtype=bool)
        for idx, _ in bags[vocabulary_from:]:
            seen[idx] = True
        rows, cols, vals = [], [], []
        for i, (idx, counts) in enumerate(bags):
            # Normalized over all of the text's grams, kept only for the columns: unused words still count
            # in its length, as a page's own off-topic words count in a page's.
            w = 1.0 + np.log(counts)
            norm = np.linalg.norm(w)
            keep = seen[idx]
            rows.append(np.full(int(keep.sum()), i, dtype=np.int64))
            cols.append(idx[keep])
            vals.append(w[keep] / norm if norm > 0 else w[keep])
        self.n_rows = len(texts)
        self.rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        self.vals = np.concatenate(vals) if vals else np.zeros(0)
        _, self.cols = np.unique(np.concatenate(cols) if cols else np.zeros(0, np.int64), return_inverse=True)
        self.n_cols = int(self.cols.max()) + 1 if len(self.cols) else 0

    def take(self, row_mask: np.ndarray) -> "_Sparse":
        keep = row_mask[self.rows]
        out = object.__new__(_Sparse)
        out.rows = (np.cumsum(row_mask) - 1)[self.rows[keep]]
        out.cols, out.vals = self.cols[keep], self.vals[keep]
        out.n_rows, out.n_cols = int(row_mask.sum()), self.n_cols
        return out

    def dot(self, w: np.ndarray) -> np.ndarray:
        return np.bincount(self.rows, weights=self.vals * w[self.cols], minlength=self.n_rows)

    def tdot(self, r: np.ndarray) -> np.ndarray:
        return np.bincount(self.cols, weights=self.vals * r[self.rows], minlength=self.n_cols)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def train_logistic(x: _Sparse, y: np.ndarray, weight: np.ndarray, l2: float,
                   iterations: int) -> tuple[np.ndarray, float]:
    """L2 logistic regression, rows weighted by `weight` (normalized to sum 1), by accelerated gradient descent.

    Rows have unit norm, so the loss gradient is (1/2 + l2)-Lipschitz in (w, b); with the L2 term the
    problem is strongly convex and a constant momentum converges linearly. Returns (weights, bias).
    """
    sw = weight / weight.sum()
    lipschitz = 0.5 + l2
    root = np.sqrt(lipschitz / l2)
    momentum = (root - 1.0) / (root + 1.0)
    w, b = np.zeros(x.n_cols), 0.0
    w_prev, b_prev = w, b
    for _ in range(iterations):
        vw, vb = w + momentum * (w - w_prev), b + momentum * (b - b_prev)
        r = (_sigmoid(x.dot(vw) + vb) - y) * sw
        w_prev, b_prev = w, b
        w = vw - (x.tdot(r) + l2 * vw) / lipschitz
        b = vb - float(r.sum()) / lipschitz
    return w, b


def _crossfit(x: _Sparse, y: np.ndarray, weight: np.ndarray, fold: np.ndarray, k: int,
              cfg: DomainClassifierConfig) -> np.ndarray:
    """Score every row with the model of its fold, trained on the other folds' rows of weight > 0."""
    scores = np.zeros(x.n_rows)
    for f in range(k):
        train = (fold != f) & (weight > 0)
        w, b = train_logistic(x.take(train), y[train], weight[train], cfg.l2, cfg.iterations)
        mine = fold == f
        scores[mine] = _sigmoid(x.take(mine).dot(w) + b)
    return scores


def _normal_pdf(x: np.ndarray, mu: float, sd: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * np.sqrt(2.0 * np.pi))


def domain_mixture(seed_logits: np.ndarray, page_logits: np.ndarray, iterations: int = 300,
                   min_sd: float = 0.05) -> tuple[np.ndarray, dict]:
    """EM for a two-Gaussian mixture of page scores whose domain component also holds the seed chunks.

    Returns each page's probability of the domain component and the fitted parameters. Starts from
    an even split at the pages' median; the seed chunks, always domain, keep the domain component
    where domain text scores, so a crawl with nothing like them ends with a domain fraction near 0.
    """
    x = np.asarray(page_logits, dtype=np.float64)
    s = np.asarray(seed_logits, dtype=np.float64)
    if len(x) == 0:
        return np.zeros(0), {"domain_fraction": 0.0}
    q = (x >= np.median(x)).astype(np.float64)
    for _ in range(iterations):
        wd = np.concatenate([np.ones(len(s)), q])
        xd = np.concatenate([s, x])
        mu_d = float(wd @ xd / wd.sum())
        sd_d = max(float(np.sqrt(wd @ (xd - mu_d) ** 2 / wd.sum())), min_sd)
        wg = 1.0 - q
        if wg.sum() < 1e-9:
            mu_g, sd_g = float(x.min()), min_sd
        else:
            mu_g = float(wg @ x / wg.sum())
            sd_g = max(float(np.sqrt(wg @ (x - mu_g) ** 2 / wg.sum())), min_sd)
        pi = float(q.mean())
        dens_d = pi * _normal_pdf(x, mu_d, sd_d)
        dens_g = (1.0 - pi) * _normal_pdf(x, mu_g, sd_g)
        q_new = dens_d / np.maximum(dens_d + dens_g, 1e-300)
        if np.max(np.abs(q_new - q)) < 1e-9:
            q = q_new
            break
        q = q_new
    if mu_d <= mu_g:  # the "domain" component sits below the general one: there is no domain group
        q = np.zeros_like(q)
    return q, {"domain_fraction": float(q.mean()), "domain_mean_logit": round(mu_d, 4),
               "domain_sd_logit": round(sd_d, 4), "general_mean_logit": round(mu_g, 4),
               "general_sd_logit": round(sd_g, 4)}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1.0 - 1e-12)
    return np.log(p / (1.0 - p))


def _choose(page_scores: np.ndarray, probability: np.ndarray, min_precision: float) -> tuple[int, np.ndarray,
                                                                                              np.ndarray]:
    """How many of the best-scored pages to keep: the best expected F1 among the cuts whose expected precision
    reaches `min_precision` (0: none does). Also returns expected precision and recall of every cut."""
    n_pages = len(page_scores)
    ranked = np.argsort(-page_scores, kind="stable")
    expected_tp = np.cumsum(probability[ranked])
    precision = expected_tp / np.arange(1, n_pages + 1)
    recall = expected_tp / max(float(probability.sum()), 1e-12)
    f1 = np.where(precision >= min_precision, 2 * precision * recall / np.maximum(precision + recall, 1e-12), -1.0)
    # Cut only between pages of different scores (ties are kept or dropped together).
    f1[:-1][page_scores[ranked][:-1] == page_scores[ranked][1:]] = -1.0
    keep = int(np.argmax(f1)) + 1 if n_pages and f1.max() > 0 and probability.sum() >= 0.5 else 0
    return keep, precision, recall


def seed_agreement(x: "_Sparse", n_pos: int, selected: np.ndarray, page_fold: np.ndarray, k: int,
                   cfg: DomainClassifierConfig) -> float:
    """The reverse test: do the selected pages predict the seed?

    A classifier of selected vs unselected pages, trained on web pages only (cross-fitted over the pages'
    folds), scores the seed chunks and the unselected pages it did not train on. Returned: the probability
    that a seed chunk outscores an unselected page (an AUC). Pages about the seed's domain give ~1; a group
    of pages that merely scores high (another topic, another style) gives ~0.5 or less.
    """
    n_pages = len(selected)
    if not selected.any() or selected.all():
        return 0.0
    y = np.concatenate([np.zeros(n_pos), selected.astype(np.float64)])
    seed_rows = np.concatenate([np.ones(n_pos, dtype=bool), np.zeros(n_pages, dtype=bool)])
    seed_scores, page_scores = np.zeros(n_pos), np.zeros(n_pages)
    scored = np.zeros(n_pages, dtype=bool)
    models = 0
    for f in range(k):
        train = np.concatenate([np.zeros(n_pos, dtype=bool), page_fold != f])
        n_sel = float(y[train].sum())
        if n_sel == 0 or n_sel == train.sum():  # this fold's model would have one class only
            continue
        weight = np.where(y > 0, 0.5 / n_sel, 0.5 / (train.sum() - n_sel))
        w, b = train_logistic(x.take(train), y[train], weight[train], cfg.l2, cfg.iterations)
        seed_scores += x.take(seed_rows).dot(w) + b
        models += 1
        mine = np.concatenate([np.zeros(n_pos, dtype=bool), page_fold == f])
        page_scores[page_fold == f] = x.take(mine).dot(w) + b
        scored |= page_fold == f
    if not models or not (scored & ~selected).any():
        return 0.0
    seed_scores /= models
    rest = np.sort(page_scores[scored & ~selected])
    below = np.searchsorted(rest, seed_scores, side="left")
    ties = np.searchsorted(rest, seed_scores, side="right") - below
    return float(np.mean((below + 0.5 * ties) / len(rest)))


def seed_languages(seed_texts: Sequence[str], min_share: float = 0.1) -> set[str]:
    """The languages of at least `min_share` of the seed chunks (language id as in curation)."""
    from curation.langid import detect_language

    langs = [detect_language(t)[0] for t in seed_texts]
    return {lang for lang in set(langs) if langs.count(lang) >= min_share * len(langs)}


def select_domain_pages(seed_texts: Sequence[str], seed_doc_ids: Sequence[str], page_texts: Sequence[str],
                        config: DomainClassifierConfig = DomainClassifierConfig(),
                        page_ids: Sequence[str] | None = None,
                        page_languages: Sequence[str] | None = None) -> DomainSelection:
    """Train the seed-vs-crawl classifier, choose the threshold for `config.min_precision`, select pages.

    `seed_texts` are chunks of the generation seed documents, `seed_doc_ids` their documents (folds
    hold out whole documents); `page_ids` (default: positions) place crawl pages in folds. With
    `page_languages`, only pages in the seed documents' languages are candidates (and negatives); the
    others get score 0 and are never selected, so that language is not what the classifier learns.
    """
    if page_languages is None:
        return _select(seed_texts, seed_doc_ids, page_texts, config, page_ids)
    wanted = seed_languages(seed_texts)
    candidate = np.array([lang in wanted for lang in page_languages], dtype=bool)
    ids = [str(i) for i in range(len(page_texts))] if page_ids is None else list(page_ids)
    sub = _select(seed_texts, seed_doc_ids, [t for t, c in zip(page_texts, candidate) if c], config,
                  [i for i, c in zip(ids, candidate) if c])
    n_pages = len(page_texts)
    out = DomainSelection(np.zeros(n_pages), np.zeros(n_pages, dtype=bool), sub.threshold, np.zeros(n_pages),
                          sub.seed_scores, sub.validation, sub.warning)
    out.scores[candidate], out.selected[candidate] = sub.scores, sub.selected
    out.domain_probability[candidate] = sub.domain_probability
    out.validation = {**sub.validation, "seed_languages": sorted(wanted),
                      "pages_in_other_languages": int((~candidate).sum())}
    return out


def _select(seed_texts: Sequence[str], seed_doc_ids: Sequence[str], page_texts: Sequence[str],
            config: DomainClassifierConfig, page_ids: Sequence[str] | None) -> DomainSelection:
    if not seed_texts:
        raise ValueError("seed_texts is empty")
    if len(seed_doc_ids) != len(seed_texts):
        raise ValueError("seed_doc_ids must name the document of every seed text")
    n_pos, n_pages = len(seed_texts), len(page_texts)
    page_ids = [str(i) for i in range(n_pages)] if page_ids is None else [str(i) for i in page_ids]
    docs = sorted(set(seed_doc_ids))
    by_document = len(docs) >= config.min_documents_to_fold_by
    # Holding out a whole document tests whether the classifier knows the domain beyond that document. With few
    # documents each one is its own topic (the demo's three manuals: one machine family each), and a model fitted on
    # two of them cannot recognise the third: recall 0 and nothing selected, although half the crawl is domain pages.
    # Below `min_documents_to_fold_by` the chunks are folded instead (recall then is optimistic, and said so).
    pos_keys = list(seed_doc_ids) if by_document else [f"chunk{i}" for i in range(n_pos)]
    k = max(2, min(config.folds, len(set(pos_keys))))
    # Seed documents (or chunks) go round-robin over the folds in a seeded hash order, so every fold
    # holds some out; crawl pages go to the fold their id hashes to.
    order = sorted(set(pos_keys), key=lambda key: hashlib.sha256(f"{config.seed}|{key}".encode()).hexdigest())
    key_fold = {key: i % k for i, key in enumerate(order)}
    fold = np.array([key_fold[key] for key in pos_keys] +
                    [int(hashlib.sha256(f"{config.seed}|fold|{p}".encode()).hexdigest()[:8], 16) % k
                     for p in page_ids], dtype=np.int64)
    # Only words and bigrams that occur in some crawl page are features. Seed-only vocabulary (a
    # manual's templates, a project's own name in a crawl that never mentions it) cannot score any
    # crawl page, and would only make held-out seed chunks look more certain than any page could.
    x = _Sparse([*seed_texts, *page_texts], config.n_buckets, vocabulary_from=n_pos if n_pages else 0)
    y = np.concatenate([np.ones(n_pos), np.zeros(n_pages)])
    # The classifier is trained with a sample of the crawl; every page is scored all the same.
    sampled = np.zeros(n_pages, dtype=bool)
    sampled[np.random.default_rng(config.seed).permutation(n_pages)[: config.max_negatives]] = True
    too_small = n_pages < config.min_crawl_pages
    fit = _Rounds(x, y, fold, k, config, n_pos, n_pages, too_small)
    selected, scores, probability, mixture, precision, recall, keep, rounds = fit.run(sampled)
    negatives_from = "a sample of the crawl"
    # The guard against a selection that is the crawl's *other* group: when the domain pages of the crawl are
    # written in another style than the seed (forum threads about the seed's machines), training on them as
    # negatives makes style the signal, and the rounds can settle on the general pages instead (they are less
    # unlike the seed's style than the domain pages are). A unigram language model of the selected pages must
    # explain the seed text better than one of the unselected pages does (Moore-Lewis's cross-entropy difference,
    # a different model from the classifier). If not, the rounds run again with negatives that are general by
    # that measure: the half of the crawl whose words the seed explains least.
    def tests(sel: np.ndarray) -> tuple[float | None, float]:  # (seed-fit gain, reverse-test AUC) of a selection
        gain = seed_fit(seed_texts, page_texts, sel) if sel.any() and not sel.all() else None
        return gain, seed_agreement(x, n_pos, sel, fold[n_pos:], k, config) if sel.any() else 0.0

    fit_gain, agreement = tests(selected)
    retried = None
    # Only a selection that is a group of its own (it passes the reverse test below) but the wrong one is retried:
    # on a crawl without domain pages, general negatives would make some general pages look like the seed.
    if (fit_gain is not None and fit_gain <= 0 and int(selected.sum()) >= config.min_pages
            and agreement >= config.min_seed_agreement):
        ml = moore_lewis(page_texts, seed_texts)
        general_half = ml <= np.quantile(ml, 0.5)
        retried = {"selected": int(selected.sum()), "seed_fit_gain": round(fit_gain, 4), "rounds": rounds}
        selected, scores, probability, mixture, precision, recall, keep, rounds = fit.run(sampled & general_half)
        fit_gain, agreement = tests(selected)
        negatives_from = "the lexically general half of the crawl (after the first selection failed the seed-fit test)"
    seed_scores, page_scores = scores[:n_pos], scores[n_pos:]
    too_few = 0 < int(selected.sum()) < config.min_pages
    misfit = fit_gain is not None and fit_gain <= 0
    rejected = bool(selected.any()) and (too_few or agreement < config.min_seed_agreement or misfit)
    if rejected:
        selected = np.zeros(n_pages, dtype=bool)
        keep = 0
    if keep:
        threshold = float(page_scores[selected].min())
    else:
        threshold = float(np.nextafter(float(scores.max(initial=0.0)), np.inf))
    seed_above = int(np.sum(seed_scores >= threshold))
    validation = {
        "min_precision": config.min_precision,
        "expected_precision": round(float(precision[keep - 1]), 4) if keep else None,
        "expected_recall": round(float(recall[keep - 1]), 4) if keep else None,
        "estimated_domain_pages": round(float(probability.sum()), 1),
        "estimated_domain_fraction_of_crawl": round(float(probability.mean()), 4) if n_pages else 0.0,
        "recall_heldout_seed_chunks": round(seed_above / n_pos, 4),
        "seed_agreement": round(agreement, 4),
        "threshold": round(threshold, 6),
        "heldout_seed_chunks": n_pos, "seed_documents": len(docs), "seed_chunks_above_threshold": seed_above,
        "heldout_crawl_pages": n_pages, "crawl_pages_above_threshold": int(selected.sum()),
        "folds": k, "held_out_by": "document" if by_document else
        f"chunk (fewer than {config.min_documents_to_fold_by} seed documents: recall is optimistic)",
        "negatives_sampled": int(sampled.sum()), "rounds": rounds, "mixture": mixture,
        "negatives_from": negatives_from, "seed_fit_gain_nats_per_word": None if fit_gain is None else round(fit_gain, 4),
        "first_selection_failed_seed_fit": retried,
        "seed_score_quantiles_10_50_90": [round(float(v), 4) for v in np.quantile(seed_scores, [0.1, 0.5, 0.9])],
        "crawl_score_quantiles_50_90_99": [round(float(v), 4) for v in np.quantile(page_scores, [0.5, 0.9, 0.99])]
        if n_pages else [],
    }
    warning = None
    if not selected.any():
        why = (f"fewer than {config.min_crawl_pages} crawl pages are too few to learn a threshold from"
               if too_small else
               f"only {rounds[-1]['selected']} page(s) score like the seed chunks, fewer than {config.min_pages}"
               if too_few else
               f"the {rounds[-1]['selected']} pages that scored highest do not read like the seed documents (a "
               f"classifier of them vs the other pages ranks the seed chunks above those other pages with "
               f"probability {agreement:.2f} < {config.min_seed_agreement})"
               if rejected and agreement < config.min_seed_agreement else
               f"the {rounds[-1]['selected']} pages that scored highest explain the seed text worse than the other "
               f"pages do (unigram cross-entropy difference {fit_gain:+.3f} nats/word), even with general negatives"
               if rejected and misfit else
               f"no group of crawl pages scores like the held-out seed chunks at expected precision >= "
               f"{config.min_precision} (estimated domain fraction {probability.mean() if n_pages else 0.0:.4f})")
        warning = (f"domain selection found no domain pages in {n_pages} crawl pages: {why}. The domain corpus "
                   f"is empty; the crawl holds no pages of the seed documents' domain that this classifier can tell.")
    return DomainSelection(page_scores, selected, threshold, probability, seed_scores, validation, warning)


class _Rounds:
    """The classifier rounds of the module docstring, for one choice of the pages that may be negatives."""

    def __init__(self, x, y, fold, k, config, n_pos, n_pages, too_small):
        self.x, self.y, self.fold, self.k, self.config = x, y, fold, k, config
        self.n_pos, self.n_pages, self.too_small = n_pos, n_pages, too_small

    def run(self, sampled: np.ndarray):
        config, n_pos, n_pages = self.config, self.n_pos, self.n_pages
        selected = np.zeros(n_pages, dtype=bool)
        rounds = []
        scores, probability, mixture = np.full(n_pos, 0.5), np.zeros(n_pages), {"domain_fraction": 0.0}
        precision = recall = np.zeros(0)
        keep = 0
        excluded = np.zeros(n_pages, dtype=bool)  # round 2 only: round 1's best-scored pages
        for round_no in range(1, 1 + (0 if not n_pages else 1 if self.too_small else max(1, config.rounds))):
            negatives = sampled & ~selected & ~excluded
            weight = np.concatenate([np.full(n_pos, 0.5 / n_pos),
                                     np.where(negatives, 0.5 / max(int(negatives.sum()), 1), 0.0)])
            scores = _crossfit(self.x, self.y, weight, self.fold, self.k, config)
            probability, mixture = domain_mixture(_logit(scores[:n_pos]), _logit(scores[n_pos:]))
            keep, precision, recall = _choose(scores[n_pos:], probability, config.min_precision)
            keep = 0 if self.too_small else keep
            now = np.zeros(n_pages, dtype=bool)
            now[np.argsort(-scores[n_pos:], kind="stable")[:keep]] = True
            rounds.append({"round": round_no, "negatives": int(negatives.sum()), "selected": int(now.sum()),
                           "estimated_domain_fraction": round(mixture["domain_fraction"], 4)})
            if round_no == 1 and config.round2_excludes_top > 0 and config.rounds > 1:
                # Round 1 only ranks the pages: its selection, made with every domain page among the negatives,
                # may hold a whole general topic; round 2 leaves out its best-scored quarter instead.
                excluded = scores[n_pos:] > np.quantile(scores[n_pos:], 1.0 - config.round2_excludes_top)
                continue
            excluded[:] = False
            if round_no > 2 and np.array_equal(now, selected):
                break
            selected = now
        return selected, scores, probability, mixture, precision, recall, keep, rounds


def _word_counts(texts: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for text in texts:
        for w in _TOKEN_RE.findall(text):
            w = w.lower()
            counts[w] = counts.get(w, 0) + 1
    return counts


def _unigram_logprob(counts: dict[str, int], vocabulary: int):
    total = sum(counts.values()) + vocabulary  # add-one smoothing over the joint vocabulary
    return lambda w: np.log((counts.get(w, 0) + 1) / total)


def seed_fit(seed_texts: Sequence[str], page_texts: Sequence[str], selected: np.ndarray) -> float:
    """How much better a unigram language model of the selected pages explains the seed text than one of the
    unselected pages: the mean per-word log-probability difference (nats/word; > 0: the selected pages are the
    seed's side of the crawl). Independent of the classifier: counts, not weights."""
    sel = _word_counts([t for t, s in zip(page_texts, selected) if s])
    rest = _word_counts([t for t, s in zip(page_texts, selected) if not s])
    vocabulary = len(set(sel) | set(rest)) + 1
    lp_sel, lp_rest = _unigram_logprob(sel, vocabulary), _unigram_logprob(rest, vocabulary)
    # Words of the seed that no page has say nothing about which side explains it (and smoothing would favour
    # the smaller side); the rest are scored.
    seed_words = [w for t in seed_texts for w in (x.lower() for x in _TOKEN_RE.findall(t)) if w in sel or w in rest]
    if not seed_words:
        return 0.0
    return float(np.mean([lp_sel(w) - lp_rest(w) for w in seed_words]))


def moore_lewis(page_texts: Sequence[str], seed_texts: Sequence[str]) -> np.ndarray:
    """Each page's cross-entropy difference (Moore & Lewis 2010), unigram: mean over its words of
    log p_seed(w) - log p_crawl(w). High: the page's words are the seed's; low: general text."""
    seed, crawl = _word_counts(seed_texts), _word_counts(page_texts)
    vocabulary = len(set(seed) | set(crawl)) + 1
    lp_seed, lp_crawl = _unigram_logprob(seed, vocabulary), _unigram_logprob(crawl, vocabulary)
    out = []
    for text in page_texts:
        words = [w.lower() for w in _TOKEN_RE.findall(text)]
        out.append(float(np.mean([lp_seed(w) - lp_crawl(w) for w in words])) if words else -np.inf)
    return np.array(out, dtype=np.float64)


def seed_vocabulary_share(texts: Sequence[str], seed_texts: Sequence[str]) -> np.ndarray:
    """For each text, the share of its running words that occur anywhere in `seed_texts` (0 for no words).

    A plain lexical measure, independent of the classifier: what the separation check compares."""
    vocabulary = {w.lower() for t in seed_texts for w in _TOKEN_RE.findall(t)}
    out = []
    for text in texts:
        words = [w.lower() for w in _TOKEN_RE.findall(text)]
        out.append(sum(w in vocabulary for w in words) / len(words) if words else 0.0)
    return np.array(out, dtype=np.float64)


def holdout_mask(ids: Sequence[str], fraction: float, seed: int = 0) -> np.ndarray:
    """True for the documents set aside (by a seeded hash of their id) as held-out text, never trained on."""
    def u(doc_id: str) -> float:
        return int(hashlib.sha256(f"{seed}:{doc_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    return np.array([u(i) < fraction for i in ids], dtype=bool)
