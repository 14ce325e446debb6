"""A histogram as a PNG (matplotlib Agg), for metadata such as the judge-score distribution of synthetic items."""
from __future__ import annotations

import io


def histogram_png(values: list[float], title: str, xlabel: str, bins: int = 10,
                  value_range: tuple[float, float] | None = None) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.hist(values, bins=bins, range=value_range, color="#4C72B0", edgecolor="white")
    ax.set_title(f"{title} (n={len(values)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("items")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
