"""Small PNG plots (loss curves, stage scores with CIs) rendered with matplotlib's Agg backend, for metadata and reports."""
from __future__ import annotations

import base64
import io
from pathlib import Path

from curation.tables import write_bytes_atomic



def line_plot_png(series: dict[str, list[tuple[float, float]]], title: str, xlabel: str, ylabel: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    for name, points in series.items():
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def png_markdown(png: bytes, alt: str = "plot") -> str:
    """Markdown that embeds a PNG inline, as Dagster's metadata viewer renders it."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def save_png(png: bytes, path: str | Path) -> Path:
    return write_bytes_atomic(png, path)


def panel_grid(plt, n_panels: int, width_in: float, height_in: float):
    """(figure, axes in reading order) for `n_panels` small charts, at most four a row; spare cells are blank."""
    n = max(n_panels, 1)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(width_in * cols, height_in * rows), squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.axis("off")
    return fig, list(axes.flat)


def stage_chart_png(report: dict, max_panels: int = 8) -> bytes:
    """One panel per report metric: a bar per stage with its 95% CI, baselines in grey, chance dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = report["metrics"][:max_panels]
    fig, axes = panel_grid(plt, len(metrics), 3.6, 3.2)
    for ax, metric in zip(axes, metrics):
        table = report["rows"][metric["key"]]
        names = [s for s in report["stages"] if s in table] + [b for b in report["baselines"] if b in table]
        values = [table[s]["value"] for s in names]
        lower = [max(0.0, table[s]["value"] - table[s]["lo"]) for s in names]
        upper = [max(0.0, table[s]["hi"] - table[s]["value"]) for s in names]
        colors = [f"C{i}" if table[s]["kind"] == "stage" else "0.7" for i, s in enumerate(names)]
        ax.bar(range(len(names)), values, yerr=[lower, upper], color=colors, capsize=3)
        if "chance" in table:
            ax.axhline(table["chance"]["value"], color="black", linestyle="--", linewidth=1, label="chance")
            ax.legend(fontsize="x-small")
        # Baseline names are long sentences: their first word is enough under a grey bar.
        ax.set_xticks(range(len(names)), [s if table[s]["kind"] == "stage" else s.split()[0] for s in names],
                      rotation=30, fontsize="small")
        ax.set_title(f"{metric['label']} {'↑' if metric['higher_is_better'] else '↓'}", fontsize="small")
    fig.suptitle("scores with 95% bootstrap CI (grey: blind baselines)", fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
