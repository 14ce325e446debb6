"""Stage-versus-stage evaluation report with 95% bootstrap intervals, paired verdicts and blind baselines.

Input: per-stage results in the shape `evaluation.harness.evaluate_model` returns (task scores
plus `_items`, every item's score), optionally with a `text_perplexity` result merged in as a
task (`harness.add_task_scores`). Every score in the report is recomputed from the per-item
values, so every score carries a percentile-bootstrap 95% CI over items (over item groups when
the items carry a `group`, e.g. several questions about one fact), and consecutive stages are
compared on the same items (paired bootstrap; McNemar too for 0/1 scores) with a verdict:
helped, no significant change, hurt, or "too few to tell" when the comparison rests on fewer
than `stats.MIN_UNITS` independent units (groups, or documents/items when ungrouped); such
thin tasks are also listed as warnings. Blind baselines and chance stand in the table as rows.
The report also lists what a reader needs to trust it: items that did not fit a model's context
(fitted or set aside by the harness), the asset checks that failed or warned upstream (passed
in as plain dicts), and where each benchmark came from.

Writes report.md, report.html, report.json (last: its presence says the report is whole) and
scores.png under `out_dir`.
"""
from __future__ import annotations

import html
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from curation.tables import write_bytes_atomic, write_text_atomic
from evaluation import stats

# Stage orders a report can use; any list of stage names works (the order given is the order shown).
DEFAULT_STAGES = ("base", "dapt", "sft", "dpo")
KNOWN_STAGE_ORDER = ("open_model", "base", "dapt", "sft", "dpo")


@dataclass(frozen=True)
class MetricSpec:
    """One report column: `metric` of lm-eval task `task`, computed from per-item values.

    `value_key`/`weight_key`: the per-item field averaged (weighted by `weight_key`, e.g. tokens);
    `transform`: "identity", or "exp" for perplexities (the mean is a mean NLL); `pair`: the
    per-item field of a logged (log-likelihood, weight) pair, as lm-eval logs perplexity tasks.
    """

    task: str
    metric: str
    label: str
    higher_is_better: bool = True
    value_key: str | None = None
    weight_key: str | None = None
    transform: str = "identity"
    pair: bool = False
    binary: bool = False

    @property
    def key(self) -> str:
        return f"{self.task}/{self.metric}"


def _task_label(task: str) -> str:
    return task.removeprefix("modelworks_")


def default_metrics(results: dict[str, dict], tasks: list[str] | None = None) -> list[MetricSpec]:
    """The metrics worth a column for every task found in the stage results (or in `tasks`)."""
    seen: dict[str, dict] = {}
    for stage_results in results.values():
        for task, scores in stage_results.items():
            if not task.startswith("_") and isinstance(scores, dict) and task not in seen:
                seen[task] = scores
    specs = []
    for task in tasks or list(seen):
        scores = seen.get(task)
        if scores is None:
            continue
        kind, label = scores.get("output_type"), _task_label(task)
        if kind == "multiple_choice":
            specs += [MetricSpec(task, "acc", f"{label} acc", binary=True),
                      MetricSpec(task, "acc_norm", f"{label} acc_norm", binary=True)]
        elif kind == "perplexity":
            specs += [MetricSpec(task, "perplexity", f"{label} perplexity", False, "token_nll", "n_tokens", "exp"),
                      MetricSpec(task, "bits_per_byte", f"{label} bits/byte", False, "bits_per_byte", "n_bytes")]
        elif kind == "loglikelihood_rolling":
            specs += [MetricSpec(task, "word_perplexity", f"{label} word perplexity", False, transform="exp",
                                 pair=True),
                      MetricSpec(task, "bits_per_byte", f"{label} bits/byte", False, pair=True)]
        else:  # generative and anything else: every numeric metric lm-eval reported
            for metric, value in scores.items():
                if metric.endswith("_stderr") or metric in ("n_samples",) or not isinstance(value, (int, float)):
                    continue
                specs.append(MetricSpec(task, metric, f"{label} {metric}"))
    return specs


def _item_values(rows: list[dict], spec: MetricSpec) -> dict[str, tuple[float, float, str]]:
    """{item id: (value, weight, group)} of one metric from per-item rows; unusable rows are skipped."""
    out = {}
    for row in rows:
        raw = row.get(spec.value_key or spec.metric)
        if spec.pair:  # lm-eval logs (loglikelihood, words or bytes): value = NLL per unit
            if not isinstance(raw, (list, tuple)) or len(raw) != 2 or not raw[1]:
                continue
            value, weight = -float(raw[0]) / float(raw[1]), float(raw[1])
            if spec.metric == "bits_per_byte":
                value /= math.log(2)
        else:
            if not isinstance(raw, (int, float)) or isinstance(raw, bool):
                continue
            value = float(raw)
            weight = float(row.get(spec.weight_key, 1.0)) if spec.weight_key else 1.0
        if math.isfinite(value) and weight > 0:
            out[str(row.get("id", row.get("doc_id")))] = (value, weight, str(row.get("group", row.get("id"))))
    return out


def _weighted_ci(values: list[float], weights: list[float], groups: list[str], n_boot: int, seed: int):
    """Bootstrap CI of a weighted mean: resample groups; the weights ride along (sum w*v / sum w)."""
    import numpy as np

    v, w = np.asarray(values), np.asarray(weights)
    if np.all(w == 1.0):
        return stats.bootstrap_ci(v, n_boot=n_boot, seed=seed, groups=groups)
    # A weighted mean is the mean of w*v/mean(w) only on average; resample numerator and
    # denominator together instead: index groups, sum per group.
    keys = list(dict.fromkeys(groups))
    pos = {k: i for i, k in enumerate(keys)}
    g = np.array([pos[x] for x in groups])
    num, den = np.bincount(g, w * v, len(keys)), np.bincount(g, w, len(keys))
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(keys), size=(n_boot, len(keys)))
    means = num[draw].sum(1) / den[draw].sum(1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(num.sum() / den.sum()), float(lo), float(hi)


def independent_units(rows: list[dict]) -> int:
    """How many independent units per-item rows hold: distinct groups (an item without one is its own)."""
    return len({str(r.get("group", r.get("id", r.get("doc_id")))) for r in rows})


def _paired(a: dict, b: dict, spec: MetricSpec, n_boot: int, seed: int, min_units: int) -> dict | None:
    import numpy as np

    ids = [i for i in a if i in b]
    if not ids:
        return None
    va = np.array([a[i][0] for i in ids])
    vb = np.array([b[i][0] for i in ids])
    w = np.array([(a[i][1] + b[i][1]) / 2 for i in ids])  # equal for the same tokenizer / words / bytes
    groups = [a[i][2] for i in ids]
    # Weighted items: scale each item's difference by w / mean(w), so the mean of the scaled
    # differences is the difference of the weighted means.
    d_scale = w / w.mean()
    paired = stats.paired_bootstrap(va * d_scale, vb * d_scale, n_boot=n_boot, seed=seed, groups=groups)
    out = {**paired, "verdict": stats.verdict(paired, spec.higher_is_better, min_units)}
    if spec.binary:
        out["mcnemar"] = stats.mcnemar(va, vb)
    if spec.transform == "exp":  # perplexity: report the ratio of perplexities, exp(diff of mean NLL)
        out["ratio"], out["ratio_lo"], out["ratio_hi"] = (math.exp(paired["diff"]), math.exp(paired["lo"]),
                                                          math.exp(paired["hi"]))
    return out


def _transform(spec: MetricSpec, value: float) -> float:
    return math.exp(value) if spec.transform == "exp" and math.isfinite(value) else value


def build_stage_report(
    results: dict[str, dict],
    out_dir: str | os.PathLike,
    stages: list[str] | None = None,
    baselines: dict[str, dict[str, list[dict]]] | None = None,
    chance: dict[str, float] | None = None,
    metrics: list[MetricSpec] | None = None,
    tasks: list[str] | None = None,
    reference: str | None = None,
    n_boot: int = stats.N_BOOT,
    seed: int = stats.SEED,
    title: str = "Evaluation by training stage",
    checks: list[dict] | None = None,
    provenance: dict | None = None,
    min_units: int = stats.MIN_UNITS,
) -> dict:
    """Write the report files and return {"markdown", "paths", "report"} (report = the JSON written).

    results: {stage: evaluate_model(...) dict}. stages: the order of the stages and of the paired
      comparisons (consecutive pairs), e.g. ["open_model", "dapt", "sft", "dpo"]; default: the
      known stage names in pipeline order, then the others in the order given.
    baselines: {baseline name: {task: per-item rows with "id" and the metric}}, e.g. from
      `evaluation.baselines.baseline_item_scores` under the MCQ test task.
    chance: {task: chance accuracy} (e.g. the suite manifest's chance per benchmark split).
    tasks: only these tasks (default every task found). reference: a stage (e.g. "open_model")
      that the last stage is also compared with; default: the first stage when there are 3+.
    checks: the asset checks that failed or warned upstream, [{"asset", "check", "status": "failed"
      | "warned", "partition"?, "description"?, "metadata"?}]; None = not known (no section),
      [] = none failed.
    provenance: {"suite": {...}, "benchmarks": {name: {...}}} as `evaluation.suite.suite_provenance`
      builds it (plus whatever the caller knows of the suite as a whole).
    min_units: fewest independent units (groups or documents) for a verdict and for an interval
      shown without a warning.
    """
    if not results:
        raise ValueError("no stage results to report")
    stages = list(stages or [s for s in KNOWN_STAGE_ORDER if s in results])
    stages = list(dict.fromkeys(stages + [s for s in results if s not in stages]))
    stages = [s for s in stages if s in results]
    specs = metrics or default_metrics({s: results[s] for s in stages}, tasks)
    baselines, chance = baselines or {}, chance or {}
    pairs = list(zip(stages, stages[1:]))
    reference = reference or (stages[0] if len(stages) >= 3 else None)
    if reference in stages and (reference, stages[-1]) not in pairs and reference != stages[-1]:
        pairs.append((reference, stages[-1]))

    rows: dict[str, dict] = {}
    comparisons: dict[str, list[dict]] = {}
    for spec in specs:
        per_stage = {s: _item_values(results[s].get("_items", {}).get(spec.task, []), spec) for s in stages}
        metric_rows = {}
        for stage, values in per_stage.items():
            if not values:
                continue
            v, w, g = zip(*values.values())
            mean, lo, hi = _weighted_ci(list(v), list(w), list(g), n_boot, seed)
            metric_rows[stage] = {"kind": "stage", "value": _transform(spec, mean), "lo": _transform(spec, lo),
                                  "hi": _transform(spec, hi), "n": len(values), "n_units": len(set(g))}
        for name, by_task in baselines.items():
            values = _item_values(by_task.get(spec.task, []), spec)
            if values:
                v, w, g = zip(*values.values())
                mean, lo, hi = _weighted_ci(list(v), list(w), list(g), n_boot, seed)
                metric_rows[name] = {"kind": "baseline", "value": mean, "lo": lo, "hi": hi, "n": len(values),
                                     "n_units": len(set(g))}
        if spec.task in chance and spec.metric in ("acc", "acc_norm"):
            metric_rows["chance"] = {"kind": "chance", "value": chance[spec.task], "lo": None, "hi": None, "n": None}
        if not metric_rows:
            continue
        rows[spec.key] = metric_rows
        comparisons[spec.key] = []
        for a, b in pairs:
            if per_stage.get(a) and per_stage.get(b):
                paired = _paired(per_stage[a], per_stage[b], spec, n_boot, seed, min_units)
                if paired:
                    comparisons[spec.key].append({"from": a, "to": b, **paired})
    specs = [s for s in specs if s.key in rows]
    fit = _fit_summary(results, stages)
    report = {
        "title": title, "stages": stages, "metrics": [asdict(s) | {"key": s.key} for s in specs],
        "rows": rows, "comparisons": comparisons, "baselines": list(baselines), "chance": chance,
        "verdicts": {key: {f"{c['from']}→{c['to']}": c["verdict"] for c in cs} for key, cs in comparisons.items()},
        "n_boot": n_boot, "ci": 0.95, "min_units": min_units,
        "units": _units_by_task(rows, specs), "fit": fit,
        "warnings": _warnings(rows, specs, fit, min_units),
        "checks": None if checks is None else [dict(c) for c in checks],
        "provenance": provenance or {},
        "prompt_styles": {t: s.get("prompt_style") for r in results.values() for t, s in r.items()
                          if not t.startswith("_") and isinstance(s, dict)},
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = format_markdown(report)
    from evaluation.plots import stage_chart_png

    png = stage_chart_png({**report, "metrics": primary_metrics(report["metrics"])})  # the main metric per task
    paths = {"markdown": out_dir / "report.md", "json": out_dir / "report.json", "html": out_dir / "report.html",
             "chart": out_dir / "scores.png"}
    write_bytes_atomic(png, paths["chart"])
    write_text_atomic(markdown, paths["markdown"])
    write_text_atomic(_html(report, markdown, png), paths["html"])
    write_text_atomic(json.dumps(report, indent=1, default=_json_default), paths["json"])  # last
    return {"markdown": markdown, "paths": {k: str(p) for k, p in paths.items()}, "report": report}


def _units_by_task(rows: dict, specs: list[MetricSpec]) -> dict[str, int]:
    """{task: fewest independent units any stage was scored on} (stages can differ under a limit)."""
    units: dict[str, int] = {}
    for spec in specs:
        for row in rows[spec.key].values():
            if row["kind"] == "stage" and row.get("n_units") is not None:
                units[spec.task] = min(units.get(spec.task, row["n_units"]), row["n_units"])
    return units


def _fit_summary(results: dict[str, dict], stages: list[str]) -> dict[str, dict[str, dict]]:
    """{task: {stage: {"fitted", "set_aside"}}} for the tasks where a stage's harness cut or set aside items."""
    out: dict[str, dict[str, dict]] = {}
    for stage in stages:
        for task, scores in results[stage].items():
            fit = scores.get("fit") if isinstance(scores, dict) and not task.startswith("_") else None
            if fit and (fit.get("n_fitted") or fit.get("n_set_aside")):
                out.setdefault(task, {})[stage] = {"fitted": fit.get("n_fitted", 0),
                                                   "set_aside": fit.get("n_set_aside", 0)}
    return out


def _warnings(rows: dict, specs: list[MetricSpec], fit: dict, min_units: int) -> list[str]:
    """What a reader must know before trusting the numbers: thin tasks and items that did not fit."""
    out = []
    for task, n in _units_by_task(rows, specs).items():
        if n < min_units:
            out.append(f"{_task_label(task)}: only {n} independent units (item groups or documents) in this "
                       f"split, fewer than {min_units}: its intervals are unreliable and its comparisons are "
                       f"marked too few to tell.")
    for task, by_stage in fit.items():
        aside = {s: c["set_aside"] for s, c in by_stage.items() if c["set_aside"]}
        fitted = {s: c["fitted"] for s, c in by_stage.items() if c["fitted"]}
        if aside:
            out.append(f"{_task_label(task)}: items set aside because they do not fit the model's context "
                       f"({', '.join(f'{s}: {n}' for s, n in aside.items())}); scores are over the rest.")
        if fitted:
            out.append(f"{_task_label(task)}: items scored with their context cut from the left to fit the "
                       f"model ({', '.join(f'{s}: {n}' for s, n in fitted.items())}).")
    return out


def _check_line(c: dict) -> str:
    where = f"{c.get('asset', '?')} / {c.get('check', '?')}"
    if c.get("partition"):
        where += f" (partition {c['partition']})"
    text = f"**{c.get('status', 'failed')}** `{where}`"
    return text + (f": {c['description']}" if c.get("description") else "")


def _provenance_line(name: str, b: dict) -> str:
    head = f"`{name}` ({b.get('kind', '?')}, {b.get('n_items', '?')} items in {b.get('n_groups', '?')} groups)"
    if b.get("teachers"):
        docs = b.get("source_documents") or []
        n_docs = b.get("n_source_documents", len(docs))
        shown = ", ".join(docs) + (", …" if n_docs > len(docs) else "")
        text = f"{head}: generated by teacher {', '.join(b['teachers'])}"
        if b.get("judges"):
            text += f", judged by {', '.join(b['judges'])}"
        if b.get("prompt_versions"):
            text += f", prompts {', '.join(b['prompt_versions'])}"
        return text + f", from {n_docs} held-out documents" + (f" ({shown})" if shown else "")
    return f"{head}: read from `{b.get('file', '?')}`"


def _json_default(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if abs(value) >= 1e5:
        return f"{value:.3g}"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"


def _cell(row: dict | None, min_units: int = stats.MIN_UNITS) -> str:
    if not row:
        return "—"
    if row["lo"] is None:
        return _fmt(row["value"])
    few = " †" if row.get("n_units") is not None and row["n_units"] < min_units else ""
    return f"{_fmt(row['value'])} [{_fmt(row['lo'])}, {_fmt(row['hi'])}]{few}"


def _diff_cell(c: dict) -> str:
    if "ratio" in c:
        return f"×{c['ratio']:.3f} [×{c['ratio_lo']:.3f}, ×{c['ratio_hi']:.3f}]"
    return f"{c['diff']:+.3f} [{c['lo']:+.3f}, {c['hi']:+.3f}]"


def table_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """The summary table (rows: stages, baselines, chance; columns: metrics; cells: value [95% CI])."""
    metrics = report["metrics"]
    header = ["row"] + [f"{m['label']} {'↑' if m['higher_is_better'] else '↓'}" for m in metrics]
    names = list(report["stages"]) + list(report["baselines"]) + ["chance"]
    rows = []
    for name in names:
        cells = [_cell(report["rows"][m["key"]].get(name), report.get("min_units", stats.MIN_UNITS))
                 for m in metrics]
        if any(c != "—" for c in cells):
            rows.append([name] + cells)
    return header, rows


# The metric that speaks for a task when only one can (the summary, the verdict matrix, the chart).
PRIMARY_METRIC_ORDER = ("acc", "f1", "rougeL", "bits_per_byte", "perplexity", "word_perplexity", "exact_match",
                        "acc_norm")
VERDICT_MARK = {stats.HELPED: "▲", stats.HURT: "▼", stats.NO_CHANGE: "=", stats.TOO_FEW: "?"}
VERDICT_COLOR = {stats.HELPED: "#c8e6c9", stats.HURT: "#ffcdd2", stats.NO_CHANGE: "#eeeeee", stats.TOO_FEW: "#fff9c4"}


def html_head(title: str, max_width: str, extra_css: str = "") -> str:
    """The opening of a Modelworks report page up to <body>: title and the shared table style."""
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title>\n<style>\n"
            f"body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: {max_width}; }}\n"
            "table { border-collapse: collapse; margin-bottom: 1.5em; }\n"
            "th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }\n"
            "th:first-child, td:first-child { text-align: left; }\n"
            f"{extra_css}</style></head><body>\n")


def verdict_style(verdict: str) -> str:
    return f"background: {VERDICT_COLOR.get(verdict, '#ffffff')}"


def primary_metrics(metrics: list[dict]) -> list[dict]:
    """One metric per task (acc for multiple choice, F1 for QA, ...; perplexity tasks: the general-text ones by
    perplexity, the others by bits/byte), plain-prompt tasks before their `@chat` twins; in report order."""
    by_task: dict[str, list[dict]] = {}
    for m in metrics:
        by_task.setdefault(m["task"], []).append(m)

    def rank(m):
        order = list(PRIMARY_METRIC_ORDER)
        if m["task"].split("@")[0] in ("general_text", "reference_text"):
            order.remove("perplexity")
            order.insert(0, "perplexity")
        return order.index(m["metric"]) if m["metric"] in order else len(order)

    chosen = [min(ms, key=rank) for ms in by_task.values()]
    plain = [m for m in chosen if "@" not in m["task"]]
    return plain + [m for m in chosen if "@" in m["task"]]


def _pairs(report: dict) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for cs in report["comparisons"].values():
        for c in cs:
            seen.setdefault((c["from"], c["to"]), None)
    return list(seen)


def _comparison(report: dict, key: str, pair: tuple[str, str]) -> dict | None:
    return next((c for c in report["comparisons"].get(key, []) if (c["from"], c["to"]) == pair), None)


def _short(value: float | None) -> str:
    return _fmt(value)


def format_stage_table(report: dict, max_lines: int = 3) -> str:
    """The terminal summary (one screen): the main metric of every task per stage, value [95% CI]; the paired
    verdict matrix (comparison x task); blind baselines; the first warnings and checks (the rest: report.html)."""
    metrics = primary_metrics(report["metrics"])
    stages = list(report["stages"])
    min_units = report.get("min_units", stats.MIN_UNITS)
    with_chance = any("chance" in report["rows"][m["key"]] for m in metrics)
    header = ["test split, value [95% CI]"] + stages + (["chance"] if with_chance else [])
    body = []
    for m in metrics:
        row = report["rows"][m["key"]]
        body.append([f"{m['label']} {'↑' if m['higher_is_better'] else '↓'}"]
                    + [_cell(row.get(s), min_units) for s in stages]
                    + ([_cell(row.get("chance"))] if with_chance else []))
    pairs = _pairs(report)
    vheader = ["paired Δ [95% CI] verdict"] + [f"{a} → {b}" for a, b in pairs]
    vbody = []
    for m in metrics:
        cells = []
        for pair in pairs:
            c = _comparison(report, m["key"], pair)
            cells.append(f"{_diff_cell(c)} {VERDICT_MARK.get(c['verdict'], '?')}" if c else "—")
        vbody.append([m["label"]] + cells)

    def render(head, rows):
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
               for r in [head, *rows]]
        out.insert(1, "  ".join("-" * w for w in widths))
        return out

    lines = render(header, body)
    if pairs:
        lines += [""] + render(vheader, vbody)
        lines.append("▲ helped  ▼ hurt  = no significant change  ? too few to tell (fewer than "
                     f"{min_units} independent units)" + ("; † thin interval" if any("†" in c for r in body for c in r)
                                                          else ""))
        lines += [line for line in plain_findings(report) if "no measurable change" in line]
    for m in metrics:
        base = [(n, report["rows"][m["key"]][n]) for n in report.get("baselines", []) if n in report["rows"][m["key"]]]
        if base:
            lines.append(f"blind baselines, {m['label']}: " + "; ".join(f"{n} {_fmt(r['value'])}" for n, r in base))
    for kind, items in (("warning", report.get("warnings", [])),):
        lines += [f"{kind}: {w}" for w in items[:max_lines]]
        if len(items) > max_lines:
            lines.append(f"... {len(items) - max_lines} more warnings in report.html")
    checks = report.get("checks") or []
    lines += [f"check {c.get('status', 'failed')}: {c.get('asset')} / {c.get('check')}" for c in checks[:max_lines]]
    if len(checks) > max_lines:
        lines.append(f"... {len(checks) - max_lines} more upstream checks failed or warned (report.html)")
    return "\n".join(lines)


def _verdict_matrix_md(report: dict) -> list[str]:
    metrics = primary_metrics(report["metrics"])
    pairs = _pairs(report)
    if not pairs:
        return []
    lines = ["| comparison | " + " | ".join(m["label"] + (" ↑" if m["higher_is_better"] else " ↓") for m in metrics)
             + " |", "|---|" + "---|" * len(metrics)]
    for pair in pairs:
        cells = []
        for m in metrics:
            c = _comparison(report, m["key"], pair)
            cells.append(f"**{c['verdict']}** {_diff_cell(c)}" if c else "—")
        lines.append(f"| {pair[0]} → {pair[1]} | " + " | ".join(cells) + " |")
    return lines


def plain_findings(report: dict) -> list[str]:
    """One sentence per comparison, what the verdict matrix says in words: where the later stage helped, where it
    hurt, and plainly when it changed nothing measurable on any task."""
    out = []
    metrics = primary_metrics(report["metrics"])
    for pair in _pairs(report):
        by: dict[str, list[str]] = {}
        for m in metrics:
            c = _comparison(report, m["key"], pair)
            if c:
                by.setdefault(c["verdict"], []).append(f"{m['label']} {_diff_cell(c)}")
        name = f"{pair[0]} → {pair[1]}"
        if not by.get("helped") and not by.get("hurt"):
            if not by.get("no significant change"):  # every task too thin: no claim either way
                out.append(f"{name}: too few independent units to tell on any task.")
                continue
            few = (f" (too few independent units to tell on {len(by['too few to tell'])} more)"
                   if by.get("too few to tell") else "")
            out.append(f"{name}: no measurable change on any task: every paired 95% CI with enough units to tell "
                       f"includes 0{few}." if few else
                       f"{name}: no measurable change on any task: every paired 95% CI includes 0.")
            continue
        parts = [f"helped on {'; '.join(by['helped'])}" if by.get("helped") else "helped on nothing",
                 f"hurt on {'; '.join(by['hurt'])}" if by.get("hurt") else "hurt nothing"]
        out.append(f"{name}: {', '.join(parts)}; no significant change on the rest.")
    return out


def format_markdown(report: dict) -> str:
    header, rows = table_rows(report)
    metrics = primary_metrics(report["metrics"])
    min_units = report.get("min_units", stats.MIN_UNITS)
    lines = [
        f"# {report['title']}", "",
        "## What was learned", "",
        "Each cell: the verdict, then Δ [paired 95% CI] of the later stage minus the earlier one on the same test "
        "items (×: ratio of perplexities). *helped* / *hurt*: the CI excludes 0; *too few to tell*: fewer than "
        f"{min_units} independent units (item groups or documents) were compared, whatever the interval says.", "",
        *_verdict_matrix_md(report), "",
        *(f"- {line}" for line in plain_findings(report)), "",
        "![scores by stage with 95% CI](scores.png)", "",
        "## Scores (main metric per task), value [95% CI]", "",
        "| stage | " + " | ".join(f"{m['label']} {'↑' if m['higher_is_better'] else '↓'}" for m in metrics) + " |",
        "|---|" + "---:|" * len(metrics),
    ]
    for name in list(report["stages"]) + list(report["baselines"]) + ["chance"]:
        cells = [_cell(report["rows"][m["key"]].get(name), min_units) for m in metrics]
        if any(c != "—" for c in cells):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "", "## Details", "",
        "### Every metric", "",
        "Every score is the mean over test items with its 95% percentile-bootstrap interval "
        f"({report['n_boot']} resamples of items, whole groups of items where they share a source). "
        "↑ higher is better, ↓ lower is better. Baselines answer blind; chance is uniform guessing.", "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
        *("| " + " | ".join(r) + " |" for r in rows), "",
        "### Stage comparisons (paired, on the same items)", "",
        "| metric | comparison | n | Δ [95% CI] | p (bootstrap) | McNemar p | verdict |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for m in report["metrics"]:
        for c in report["comparisons"].get(m["key"], []):
            mc = c.get("mcnemar")
            lines.append(f"| {m['label']} | {c['from']} → {c['to']} | {c['n']} | {_diff_cell(c)} | "
                         f"{c['p_value']:.4f} | {mc['p_value']:.4f} |" if mc else
                         f"| {m['label']} | {c['from']} → {c['to']} | {c['n']} | {_diff_cell(c)} | "
                         f"{c['p_value']:.4f} | — |")
            lines[-1] += f" {c['verdict']} |"
    styles = {t: s for t, s in report.get("prompt_styles", {}).items() if s == "chat"}
    if styles:
        lines += ["", "Tasks ending in `@chat` were prompted through the model's chat template; the same "
                      "task without the suffix used plain prompts."]
    lines += _extra_sections(report)
    return "\n".join(lines) + "\n"


def _extra_sections(report: dict) -> list[str]:
    """Warnings, failed/warned asset checks and benchmark provenance, as Markdown lines."""
    lines = []
    if report.get("warnings"):
        lines += ["", "## Warnings", "", "† in the table: fewer than "
                  f"{report.get('min_units', stats.MIN_UNITS)} independent units behind the interval.", ""]
        lines += [f"- {w}" for w in report["warnings"]]
    if report.get("checks") is not None:
        lines += ["", "## Asset checks that failed or warned upstream", ""]
        lines += [f"- {_check_line(c)}" for c in report["checks"]] or ["- none: every check upstream passed."]
    provenance = report.get("provenance") or {}
    if provenance.get("suite") or provenance.get("benchmarks"):
        lines += ["", "## Where the benchmarks come from", ""]
        suite = provenance.get("suite") or {}
        if suite:
            lines += ["Suite: " + ", ".join(f"{k} {v}" for k, v in suite.items()), ""]
        lines += [f"- {_provenance_line(n, b)}" for n, b in (provenance.get("benchmarks") or {}).items()]
    return lines


def _html_extra(report: dict) -> str:
    """The warnings, checks and provenance sections as HTML (plain lists; Markdown bold/code dropped)."""
    def items(lines):
        return "<ul>" + "".join(f"<li>{html.escape(x.replace('**', '').replace('`', ''))}</li>"
                                for x in lines) + "</ul>"
    out = []
    if report.get("warnings"):
        out.append("<h2>Warnings</h2>" + items(report["warnings"]))
    if report.get("checks") is not None:
        out.append("<h2>Asset checks that failed or warned upstream</h2>"
                   + items([_check_line(c) for c in report["checks"]] or ["none: every check upstream passed."]))
    provenance = report.get("provenance") or {}
    if provenance.get("benchmarks") or provenance.get("suite"):
        suite = provenance.get("suite") or {}
        out.append("<h2>Where the benchmarks come from</h2>"
                   + (f"<p>Suite: {html.escape(', '.join(f'{k} {v}' for k, v in suite.items()))}</p>" if suite else "")
                   + items([_provenance_line(n, b) for n, b in (provenance.get("benchmarks") or {}).items()]))
    return "\n".join(out)


def _html(report: dict, markdown: str, png: bytes) -> str:
    import base64

    header, rows = table_rows(report)
    metrics = primary_metrics(report["metrics"])
    min_units = report.get("min_units", stats.MIN_UNITS)
    pairs = _pairs(report)
    mhead = "".join(f"<th>{html.escape(m['label'])} {'↑' if m['higher_is_better'] else '↓'}</th>" for m in metrics)
    matrix = ""
    for pair in pairs:
        cells = ""
        for m in metrics:
            c = _comparison(report, m["key"], pair)
            cells += (f"<td style=\"{verdict_style(c['verdict'])}\"><b>{html.escape(c['verdict'])}</b><br>"
                      f"{html.escape(_diff_cell(c))}</td>" if c else "<td>—</td>")
        matrix += f"<tr><td>{html.escape(pair[0])} → {html.escape(pair[1])}</td>{cells}</tr>"
    main = ""
    for name in list(report["stages"]) + list(report["baselines"]) + ["chance"]:
        cells = [_cell(report["rows"][m["key"]].get(name), min_units) for m in metrics]
        if any(c != "—" for c in cells):
            main += "<tr><td>" + html.escape(name) + "</td>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) \
                + "</tr>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    comp = "".join(
        f"<tr><td>{html.escape(m['label'])}</td><td>{html.escape(c['from'])} → {html.escape(c['to'])}</td>"
        f"<td>{html.escape(_diff_cell(c))}</td><td>{c['p_value']:.4f}</td>"
        f"<td style=\"{verdict_style(c['verdict'])}\">{html.escape(c['verdict'])}</td></tr>"
        for m in report["metrics"] for c in report["comparisons"].get(m["key"], []))
    image = base64.b64encode(png).decode("ascii")
    css = ".scroll { overflow-x: auto; }\npre { background: #f6f6f6; padding: 1em; overflow-x: auto; }\n"
    return html_head(report["title"], "72em", extra_css=css) + f"""<h1>{html.escape(report['title'])}</h1>
<h2>What was learned</h2>
<p>Each cell: the paired verdict of the later stage against the earlier one on the same test items, and Δ [95% CI]
(×: ratio of perplexities). Green helped, red hurt, grey no significant change, yellow too few to tell (fewer than
{min_units} independent units).</p>
<div class="scroll"><table><thead><tr><th>comparison</th>{mhead}</tr></thead><tbody>{matrix}</tbody></table></div>
<ul>{"".join(f"<li>{html.escape(line)}</li>" for line in plain_findings(report))}</ul>
<img alt="scores by stage" src="data:image/png;base64,{image}">
<h2>Scores (main metric per task)</h2>
<p>Mean over test items with 95% bootstrap intervals; blind baselines and chance as rows.</p>
<div class="scroll"><table><thead><tr><th>row</th>{mhead}</tr></thead><tbody>{main}</tbody></table></div>
<h2>Details</h2>
<details><summary>Every metric</summary><div class="scroll">
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></details>
<details><summary>Every stage comparison (paired)</summary>
<table><thead><tr><th>metric</th><th>comparison</th><th>Δ [95% CI]</th><th>p</th><th>verdict</th></tr></thead>
<tbody>{comp}</tbody></table></details>
{_html_extra(report)}
<details><summary>Markdown report</summary><pre>{html.escape(markdown)}</pre></details>
</body></html>
"""
