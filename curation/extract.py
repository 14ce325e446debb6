"""Main-text extraction from HTML with trafilatura: boilerplate (nav, footer, banners) out, article text in."""
from __future__ import annotations

try:
    import trafilatura
except ImportError as exc:  # no silent fallback: a different extractor would change every downstream stat
    raise ImportError(
        "curation.extract needs trafilatura (pip install 'trafilatura>=2.0' lxml_html_clean); "
        "there is deliberately no fallback extractor"
    ) from exc


def extract_main_text(html: str, url: str | None = None) -> str | None:
    """Return the main text of `html` (paragraphs joined by newlines), or None if there is none.

    deduplicate=False keeps the output a pure function of the input: trafilatura's dedup uses a
    process-wide LRU cache, which would make a page's text depend on what was extracted before.
    """
    if not html or not html.strip():
        return None
    text = trafilatura.extract(
        html,
        url=url,
        output_format="txt",
        include_comments=False,
        include_tables=False,
        include_images=False,
        include_links=False,
        deduplicate=False,
        with_metadata=False,
    )
    if text is None:
        return None
    text = text.strip()
    return text or None
