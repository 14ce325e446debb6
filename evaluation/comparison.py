"""Variants of one recipe side by side (an ablation): every metric with its 95% CI per variant and stage, and for
each variant against the first a paired difference on the same test items with its CI and a verdict (helped / no
significant change / hurt / too few to tell), forgetting probes (general-text perplexity) included.

Input: {variant: {stage: evaluate_model(...) dict}} (the `_items` of every stage's scores). The first variant is the
reference. Writes comparison.json (last), comparison.md, comparison.html (with the chart) and comparison.png.
"""
from __future__ import annotations

import html
import json
import math
import os
from dataclasses import asdict
from pathlib import Path

from curation.tables import write_bytes_atomic, write_text_atomic
from evaluation import stats
from evaluation.plots import panel_grid
from evaluation.report import (KNOWN_STAGE_ORDER, html_head, _diff_cell, _fmt, _item_values, _json_default, _paired,
                               _transform, _weighted_ci, default_metrics, primary_metrics, verdict_style)

FORGETTING_TASKS = ("general_text", "reference_text")


def build_variant_comparison(results: dict[str, dict[str, dict]], out_dir: str | os.PathLike,
                             stages: list[str] | None = None, n_boot: int = stats.N_BOOT, seed: int = stats.SEED,
                             min_units: int = stats.MIN_UNITS, title: str = "Ablation: variants side by side",
                             settings: dict[str, dict] | None = None, reuse: dict | None = None) -> dict:
    """Write the comparison files and return {"markdown", "summary", "paths", "report"}.

    settings: {variant: its overrides} shown beside its name; reuse: {variant: {"reused": [...],
    "materialized": [...]}} (which stages it shared), shown below the results."""
    if len(results) < 1:
        raise ValueError("no variant results to compare")
    variants = list(results)
    reference = variants[0]
    present = [s for s in KNOWN_STAGE_ORDER if all(s in r for r in results.values())]
    others = [s for s in next(iter(results.values())) if s not in present and all(s in r for r in results.values())]
    stages = [s for s in (stages or present + others) if all(s in r for r in results.values())]
    specs = default_metrics({f"{v}/{s}": results[v][s] for v in variants for s in stages})
    rows: dict[str, dict] = {}
    comparisons: dict[str, list[dict]] = {}
    for spec in specs:
        values = {v: {s: _item_values(results[v][s].get("_items", {}).get(spec.task, []), spec) for s in stages}
                  for v in variants}
        cells: dict[str, dict] = {}
        for v in variants:
            for s in stages:
                items = values[v][s]
                if not items:
                    continue
                val, w, g = zip(*items.values())
                mean, lo, hi = _weighted_ci(list(val), list(w), list(g), n_boot, seed)
                cells.setdefault(v, {})[s] = {"value": _transform(spec, mean), "lo": _transform(spec, lo),
                                              "hi": _transform(spec, hi), "n": len(items), "n_units": len(set(g))}
        if not cells:
            continue
        rows[spec.key] = cells
        comparisons[spec.key] = []
        for v in variants[1:]:
            for s in stages:
                a, b = values[reference][s], values[v][s]
                if a and b:
                    paired = _paired(a, b, spec, n_boot, seed, min_units)
                    if paired:
                        comparisons[spec.key].append({"variant": v, "reference": reference, "stage": s, **paired})
    specs = [s for s in specs if s.key in rows]
    report = {
        "title": title, "reference": reference, "variants": variants, "stages": stages,
        "final_stage": stages[-1] if stages else None,
        "metrics": [asdict(s) | {"key": s.key, "forgetting": s.task in FORGETTING_TASKS} for s in specs],
        "rows": rows, "comparisons": comparisons,
        "verdicts": {v: {s: {c_key: c["verdict"] for c_key, cs in comparisons.items() for c in cs
                             if c["variant"] == v and c["stage"] == s} for s in stages} for v in variants[1:]},
        "settings": settings or {}, "reuse": reuse or {}, "n_boot": n_boot, "ci": 0.95, "min_units": min_units,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = format_comparison_markdown(report)
    png = comparison_chart_png(report)
    paths = {"markdown": out_dir / "comparison.md", "json": out_dir / "comparison.json",
             "html": out_dir / "comparison.html", "chart": out_dir / "comparison.png"}
    write_bytes_atomic(png, paths["chart"])
    write_text_atomic(markdown, paths["markdown"])
    write_text_atomic(_comparison_html(report, png), paths["html"])
    write_text_atomic(json.dumps(report, indent=1, default=_json_default), paths["json"])  # last
    return {"markdown": markdown, "summary": format_comparison_summary(report),
            "paths": {k: str(p) for k, p in paths.items()}, "report": report}


def _cell(c: dict | None) -> str:
    if not c:
        return "—"
    return f"{_fmt(c['value'])} [{_fmt(c['lo'])}, {_fmt(c['hi'])}]"


def _find(report: dict, key: str, variant: str, stage: str) -> dict | None:
    return next((c for c in report["comparisons"].get(key, []) if c["variant"] == variant and c["stage"] == stage),
                None)


def _setting(report: dict, v: str) -> str:
    s = report.get("settings", {}).get(v)
    if not s:
        return "(reference)" if v == report["reference"] else ""
    return ", ".join(f"{k}={x}" for k, x in s.items())


def format_comparison_summary(report: dict) -> str:
    """One screen for a terminal: the final stage's main metric per task for every variant, then each variant's
    paired verdicts against the reference."""
    stage = report["final_stage"]
    metrics = primary_metrics(report["metrics"])
    variants = report["variants"]
    header = ["metric"] + variants
    body = [[f"{m['label']} {'↑' if m['higher_is_better'] else '↓'}"]
            + [_cell(report["rows"][m["key"]].get(v, {}).get(stage)) for v in variants] for m in metrics]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [f"{report['title']}: {stage} models, test split, value [95% CI]; reference {report['reference']}"]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
              for r in [header, *body]]
    lines.insert(2, "  ".join("-" * w for w in widths))
    for v in variants[1:]:
        lines.append(f"{v} ({_setting(report, v)}) vs {report['reference']}, paired on the same items:")
        for m in metrics:
            c = _find(report, m["key"], v, stage)
            if c:
                lines.append(f"  {m['label']}{' (forgetting)' if m.get('forgetting') else ''}: {_diff_cell(c)} "
                             f"-> {c['verdict']}")
    return "\n".join(lines)


def format_comparison_markdown(report: dict) -> str:
    stage, ref = report["final_stage"], report["reference"]
    metrics = primary_metrics(report["metrics"])
    lines = [f"# {report['title']}", "",
             f"Reference: **{ref}**. Each variant's {stage} model against the reference's, on the same test items: "
             "Δ [paired 95% bootstrap CI] (×: ratio of perplexities) and the verdict (*too few to tell* below "
             f"{report['min_units']} independent units).", "",
             "| variant | " + " | ".join(m["label"] + (" (forgetting)" if m.get("forgetting") else "")
                                      for m in metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for v in report["variants"][1:]:
        cells = []
        for m in metrics:
            c = _find(report, m["key"], v, stage)
            cells.append(f"**{c['verdict']}** {_diff_cell(c)}" if c else "—")
        lines.append(f"| {v} ({_setting(report, v)}) | " + " | ".join(cells) + " |")
    lines += ["", "## Every metric, every stage, value [95% CI]", ""]
    for s in report["stages"]:
        lines += [f"### {s}", "", "| metric | " + " | ".join(report["variants"]) + " |",
                  "|---|" + "---:|" * len(report["variants"])]
        for m in report["metrics"]:
            cells = []
            for v in report["variants"]:
                cell = _cell(report["rows"][m["key"]].get(v, {}).get(s))
                c = _find(report, m["key"], v, s)
                cells.append(cell + (f" (Δ {_diff_cell(c)}, {c['verdict']})" if c else ""))
            lines.append(f"| {m['label']} | " + " | ".join(cells) + " |")
        lines.append("")
    if report.get("reuse"):
        lines += ["## Shared work", ""]
        for v, r in report["reuse"].items():
            lines.append(f"- {v}: reused {len(r.get('reused', []))} stage partitions "
                         f"({', '.join(sorted(set(r.get('reused', []))))}); materialized "
                         f"{', '.join(sorted(set(r.get('materialized', [])))) or 'nothing new'}")
    return "\n".join(lines) + "\n"


def comparison_chart_png(report: dict, max_panels: int = 8) -> bytes:
    """One panel per main metric: a bar per variant (final stage) with its 95% CI."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stage = report["final_stage"]
    metrics = primary_metrics(report["metrics"])[:max_panels]
    fig, axes = panel_grid(plt, len(metrics), 3.4, 3.0)
    for ax, m in zip(axes, metrics):
        cells = report["rows"][m["key"]]
        names = [v for v in report["variants"] if stage in cells.get(v, {})]
        vals = [cells[v][stage]["value"] for v in names]
        lo = [max(0.0, cells[v][stage]["value"] - cells[v][stage]["lo"]) for v in names]
        hi = [max(0.0, cells[v][stage]["hi"] - cells[v][stage]["value"]) for v in names]
        ax.bar(range(len(names)), vals, yerr=[lo, hi], color=[f"C{i}" for i in range(len(names))], capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=20, fontsize="small")
        ax.set_title(f"{m['label']} {'↑' if m['higher_is_better'] else '↓'}", fontsize="small")
    fig.suptitle(f"{stage} model per variant, 95% bootstrap CI", fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _comparison_html(report: dict, png: bytes) -> str:
    import base64

    stage, ref = report["final_stage"], report["reference"]
    metrics = primary_metrics(report["metrics"])
    head = "".join(f"<th>{html.escape(m['label'])}{' (forgetting)' if m.get('forgetting') else ''}</th>"
                   for m in metrics)
    matrix = ""
    for v in report["variants"][1:]:
        cells = ""
        for m in metrics:
            c = _find(report, m["key"], v, stage)
            cells += (f"<td style=\"{verdict_style(c['verdict'])}\"><b>{html.escape(c['verdict'])}</b><br>"
                      f"{html.escape(_diff_cell(c))}</td>" if c else "<td>—</td>")
        matrix += f"<tr><td>{html.escape(v)}<br><small>{html.escape(_setting(report, v))}</small></td>{cells}</tr>"
    details = ""
    for s in report["stages"]:
        rows = "".join(
            f"<tr><td>{html.escape(m['label'])}</td>" + "".join(
                f"<td>{html.escape(_cell(report['rows'][m['key']].get(v, {}).get(s)))}</td>"
                for v in report["variants"]) + "</tr>" for m in report["metrics"])
        details += (f"<h3>{html.escape(s)}</h3><table><thead><tr><th>metric</th>"
                    + "".join(f"<th>{html.escape(v)}</th>" for v in report["variants"])
                    + f"</tr></thead><tbody>{rows}</tbody></table>")
    image = base64.b64encode(png).decode("ascii")
    return html_head(report["title"], "70em") + f"""<h1>{html.escape(report['title'])}</h1>
<p>Each variant's {html.escape(str(stage))} model against the reference <b>{html.escape(ref)}</b>, paired on the same
test items: the verdict, Δ and its 95% bootstrap CI (×: ratio of perplexities).</p>
<table><thead><tr><th>variant</th>{head}</tr></thead><tbody>{matrix}</tbody></table>
<img alt="scores per variant" src="data:image/png;base64,{image}">
<details><summary>Every metric, every stage, value [95% CI]</summary>{details}</details>
</body></html>
"""


def comparison_is_finite(report: dict) -> bool:
    """Every compared value is a finite number (a sanity check for the asset)."""
    return all(math.isfinite(c["diff"]) for cs in report["comparisons"].values() for c in cs)
