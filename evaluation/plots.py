"""Small PNG plots (loss curves) rendered with matplotlib's Agg backend, for metadata and reports."""
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
