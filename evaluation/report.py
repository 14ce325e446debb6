"""Stage-versus-stage evaluation report: markdown, JSON, a self-contained HTML page and a bar chart."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from curation.tables import write_bytes_atomic, write_text_atomic

STAGE_ORDER = ("base", "dapt", "sft", "dpo")


@dataclass(frozen=True)
class Headline:
    """One report column: a metric of the lm-eval task whose name ends with `_<task_suffix>`."""

    key: str
    label: str
    task_suffix: str
    metric: str
    higher_is_better: bool = True
    bounded: bool = True  # in [0, 1]: drawn on the shared bar chart axis


HEADLINES = (
    Headline("mcq_acc", "MCQ acc", "mcq", "acc"),
    Headline("completion_acc", "Completion acc", "completion", "acc"),
    Headline("qa_exact_match", "QA exact match", "qa", "exact_match"),
    Headline("qa_f1", "QA F1", "qa", "f1"),
    Headline("summarization_rougeL", "Summarization ROUGE-L", "summarization", "rougeL"),
    Headline("heldout_word_perplexity", "Held-out word PPL", "heldout_ppl", "word_perplexity", False, False),
)


def _ordered_stages(scores: dict[str, dict]) -> list[str]:
    known = [s for s in STAGE_ORDER if s in scores]
    return known + [s for s in scores if s not in STAGE_ORDER]


def _task_scores(stage_scores: dict, task_suffix: str) -> dict | None:
    for task, values in stage_scores.items():
        if task.startswith("_") or not isinstance(values, dict):
            continue
        if task == task_suffix or task.endswith(f"_{task_suffix}"):
            return values
    return None


def headline_scores(scores: dict[str, dict]) -> dict[str, dict[str, float | None]]:
    """{stage: {headline key: value or None}} for the stages in pipeline order."""
    headline = {}
    for stage in _ordered_stages(scores):
        row = {}
        for h in HEADLINES:
            task = _task_scores(scores[stage], h.task_suffix)
            value = task.get(h.metric) if task else None
            row[h.key] = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
        headline[stage] = row
    return headline


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 1e5:
        return f"{value:.3g}"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"


def _best_stage(headline: dict[str, dict], h: Headline) -> str | None:
    values = {stage: v[h.key] for stage, v in headline.items() if v[h.key] is not None}
    if len(set(values.values())) < 2:  # nothing to single out
        return None
    best = (max if h.higher_is_better else min)(values.values())
    return next(stage for stage, value in values.items() if value == best)  # the earliest stage to reach it


def _table_rows(headline: dict[str, dict], chance: dict[str, float] | None) -> tuple[list[str], list[list[str]]]:
    header = ["stage"] + [f"{h.label} {'↑' if h.higher_is_better else '↓'}" for h in HEADLINES]
    rows = [[stage] + [_fmt(values[h.key]) for h in HEADLINES] for stage, values in headline.items()]
    if chance is not None:
        rows.append(["chance"] + [_fmt(chance.get(h.key)) for h in HEADLINES])
    return header, rows


def format_stage_table(scores: dict[str, dict], chance: dict[str, float] | None = None) -> str:
    """A fixed-width text table, stage × headline metric, for a terminal or a log."""
    header, rows = _table_rows(headline_scores(scores), chance)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths)))
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _markdown(scores: dict[str, dict], headline: dict[str, dict], chance: dict[str, float]) -> str:
    header, rows = _table_rows(headline, chance)
    best = {h.key: _best_stage(headline, h) for h in HEADLINES}
    for row in rows:
        for i, h in enumerate(HEADLINES, start=1):
            if row[0] == best[h.key]:
                row[i] = f"**{row[i]}**"
    lines = [
        "# Evaluation by training stage",
        "",
        "Zero-shot, plain prompts (no chat template), identical for every stage. "
        "↑ higher is better, ↓ lower is better; the best stage per column is bold.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(HEADLINES)) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
        "## All metrics",
        "",
        "| stage | task | metric | value | stderr |",
        "|---|---|---|---:|---:|",
    ]
    for stage in headline:
        for task, values in scores[stage].items():
            if task.startswith("_") or not isinstance(values, dict):
                continue
            for metric, value in values.items():
                if metric.endswith("_stderr") or metric == "n_samples":
                    continue
                stderr = values.get(f"{metric}_stderr")
                lines.append(f"| {stage} | {task} (n={values.get('n_samples', '?')}) | {metric} | "
                             f"{_fmt(value)} | {_fmt(stderr)} |")
    return "\n".join(lines) + "\n"


def _chart_png(headline: dict[str, dict], chance: dict[str, float]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(headline)
    bounded = [h for h in HEADLINES if h.bounded]
    ppl = next(h for h in HEADLINES if not h.bounded)
    fig, (ax, ax_ppl) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / max(len(stages), 1)
    for i, stage in enumerate(stages):
        xs = [j + (i - (len(stages) - 1) / 2) * width for j in range(len(bounded))]
        ax.bar(xs, [headline[stage][h.key] or 0.0 for h in bounded], width, label=stage)
    chance_label = "chance"
    for j, h in enumerate(bounded):
        if chance.get(h.key) is not None:
            ax.hlines(chance[h.key], j - 0.45, j + 0.45, colors="black", linestyles="dashed", label=chance_label)
            chance_label = None  # one legend entry for all the chance marks
    ax.set_xticks(range(len(bounded)), [h.label for h in bounded], rotation=15)
    ax.set_ylim(0, 1.15)  # headroom for the legend above perfect scores
    ax.set_ylabel("score (higher is better)")
    ax.legend(loc="upper center", ncol=len(stages) + 1, fontsize="small")
    ax.set_title("Benchmarks by stage")

    values = [headline[s][ppl.key] for s in stages]
    ax_ppl.bar(stages, [v or 0.0 for v in values], color=[f"C{i}" for i in range(len(stages))])
    if any(v and v > 0 for v in values):
        ax_ppl.set_yscale("log")
    ax_ppl.set_title(f"{ppl.label} ↓")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _html(markdown: str, headline: dict, chance: dict, png: bytes) -> str:
    header, rows = _table_rows(headline, chance)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    image = base64.b64encode(png).decode("ascii")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Modelworks evaluation by stage</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
tr:last-child td {{ color: #777; font-style: italic; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
</style></head><body>
<h1>Evaluation by training stage</h1>
<p>Zero-shot, plain prompts (no chat template), identical for every stage.
↑ higher is better, ↓ lower is better.</p>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<img alt="scores by stage" src="data:image/png;base64,{image}">
<details><summary>Markdown report</summary><pre>{html.escape(markdown)}</pre></details>
</body></html>
"""




def build_stage_report(scores: dict[str, dict], out_dir: str | os.PathLike, chance: dict[str, float]) -> dict:
    """Write report.md, report.json, report.html and scores.png comparing stages.

    `scores` maps a stage ("base", "dapt", "sft", "dpo", in any order; others follow) to the dict
    from `evaluation.harness.evaluate_model`. `chance` maps headline keys (`HEADLINES[i].key`,
    e.g. "mcq_acc": 0.25) to the score of random guessing. Returns
    {"markdown": str, "paths": {"markdown", "json", "html", "chart"}, "headline": {stage: {key: value}}}.
    """
    if not scores:
        raise ValueError("no stage scores to report")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chance = dict(chance or {})
    headline = headline_scores(scores)
    markdown = _markdown(scores, headline, chance)
    png = _chart_png(headline, chance)
    report = {
        "stages": list(headline),
        "metrics": [
            {"key": h.key, "label": h.label, "task_suffix": h.task_suffix, "metric": h.metric,
             "higher_is_better": h.higher_is_better}
            for h in HEADLINES
        ],
        "headline": headline,
        "chance": chance,
        "best_stage": {h.key: _best_stage(headline, h) for h in HEADLINES},
        "scores": {stage: scores[stage] for stage in headline},
    }
    paths = {
        "markdown": out_dir / "report.md",
        "json": out_dir / "report.json",
        "html": out_dir / "report.html",
        "chart": out_dir / "scores.png",
    }
    write_bytes_atomic(png, paths["chart"])
    write_text_atomic(markdown, paths["markdown"])
    write_text_atomic(_html(markdown, headline, chance, png), paths["html"])
    # report.json last: its presence says the whole report is there.
    write_text_atomic(json.dumps(report, indent=2, default=str), paths["json"])
    return {"markdown": markdown, "paths": {k: str(p) for k, p in paths.items()}, "headline": headline}
