"""Language identification with py3langid: ISO 639-1 code plus a normalized probability."""
from __future__ import annotations

import threading

_identifier = None
_lock = threading.Lock()


def _get_identifier():
    global _identifier
    if _identifier is None:
        with _lock:
            if _identifier is None:
                # The model ships inside the package, so loading never touches the network.
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _identifier


def detect_language(text: str) -> tuple[str, float]:
    """Return (language code, probability in [0, 1]); ("und", 0.0) for text without letters."""
    if not text or not any(ch.isalpha() for ch in text):
        return "und", 0.0
    lang, prob = _get_identifier().classify(text)
    return str(lang), float(prob)
