"""Main-text extraction from HTML with trafilatura: boilerplate (nav, footer, banners) out, article text in."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Literal

try:
    import trafilatura
except ImportError as exc:  # no silent fallback: a different extractor would change every downstream stat
    raise ImportError(
        "curation.extract needs trafilatura (pip install 'trafilatura>=2.0' lxml_html_clean); "
        "there is deliberately no fallback extractor"
    ) from exc

# trafilatura's own threshold below which its full mode consults justext (settings.cfg MIN_EXTRACTED_SIZE).
MIN_EXTRACTED_SIZE_CHARS = 250


class ExtractionTimeout(BaseException):
    """One page took longer than the per-page limit. Only this is ever counted as a timeout.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` inside a library can
    swallow it and turn a timeout into an empty page.
    """


@dataclass(frozen=True)
class ExtractionSettings:
    """How main text is extracted.

    mode:
      "full"  trafilatura's default: its own extractor compared with readability and justext.
      "fast"  trafilatura's own extractor only (`fast=True`, no fallback extractors).
      "fast_then_full" (default) fast first; full only where fast finds nothing or less than
              `min_fast_chars` characters, the pages where trafilatura's fallbacks make a difference.
    `time_limit_s` bounds one page (0 disables it); enforced with SIGALRM, so only in a
    process's main thread (pool workers always are).
    """

    mode: Literal["fast_then_full", "fast", "full"] = "fast_then_full"
    min_fast_chars: int = MIN_EXTRACTED_SIZE_CHARS
    favor_precision: bool = False
    include_tables: bool = False
    time_limit_s: float = 5.0


def _trafilatura(html: str, url: str | None, fast: bool, settings: ExtractionSettings) -> str | None:
    return trafilatura.extract(
        html,
        url=url,
        output_format="txt",
        fast=fast,
        favor_precision=settings.favor_precision,
        include_comments=False,
        include_tables=settings.include_tables,
        include_images=False,
        include_links=False,
        # deduplicate=False keeps the output a pure function of the input: trafilatura's dedup uses
        # a process-wide LRU cache, which would make a page's text depend on what came before it.
        deduplicate=False,
        with_metadata=False,
    )


def extract_main_text(html: str, url: str | None = None,
                      settings: ExtractionSettings = ExtractionSettings()) -> str | None:
    """Return the main text of `html` (paragraphs joined by newlines), or None if there is none.

    Deterministic: the same page always gives the same text, whatever was extracted before.
    Raises ExtractionTimeout past `settings.time_limit_s`; any other error propagates unchanged.
    """
    if not html or not html.strip():
        return None
    with page_time_limit(settings.time_limit_s):
        if settings.mode == "full":
            text = _trafilatura(html, url, False, settings)
        else:
            text = _trafilatura(html, url, True, settings)
            if settings.mode == "fast_then_full" and (text is None or len(text.strip()) < settings.min_fast_chars):
                text = _trafilatura(html, url, False, settings)
    if text is None:
        return None
    text = text.strip()
    return text or None


def _raise_timeout(signum, frame):
    raise ExtractionTimeout("page extraction exceeded its time limit")


@contextmanager
def page_time_limit(seconds: float) -> Iterator[bool]:
    """Raise ExtractionTimeout in the block after `seconds` (wall clock); yields whether it is enforced.

    SIGALRM interrupts Python code, not a C call in progress, so a limit is honoured at the next
    bytecode; lxml parses are short next to trafilatura's Python tree walks. Outside the main thread
    no signal can be used and the block runs unbounded (yields False).
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
