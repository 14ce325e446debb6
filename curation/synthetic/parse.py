"""Lenient readers of teacher replies in the prompts' line formats; each returns a value or a quarantine reason."""
from __future__ import annotations

import re

_LABEL = r"^\s*(?:[-*#>\s]*)(?:\*\*)?{}(?:\*\*)?\s*[:.\-]\s*(?:\*\*)?\s*"
_OPTION = re.compile(r"^\s*(?:[-*]\s*)?\(?([A-Ha-h])[\).:\]]\s+(.+?)\s*$")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+(?:\.\d+)*[.)]?)\s+(.+?)\s*$")
LETTERS = "ABCDEFGH"


def _field(text: str, label: str) -> list[str]:
    pat = re.compile(_LABEL.format(label), re.I)
    out = []
    for line in text.splitlines():
        m = pat.match(line)
        if m:
            value = _clean(line[m.end():])
            if value:
                out.append(value)
    return out


def _clean(s: str) -> str:
    s = s.strip().strip("*").strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        s = s[1:-1].strip()
    return s


class ParseError(ValueError):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _nonempty(text: str | None) -> str:
    if text is None or not text.strip():
        raise ParseError("empty")
    return text


def parse_topics(text: str | None, n: int) -> list[str]:
    text = _nonempty(text)
    topics = _field(text, "topic")
    if not topics:  # a bare list of bullets or numbered lines is fine too
        topics = [_clean(m.group(1)) for line in text.splitlines() if (m := _BULLET.match(line))]
    seen, out = set(), []
    for t in topics:
        t = t.rstrip(".").strip()
        if t and t.lower() not in seen and len(t.split()) <= 12:
            seen.add(t.lower())
            out.append(t)
    if not out:
        raise ParseError("invalid_format", "no 'Topic:' lines")
    return out[:n]


def parse_question(text: str | None) -> str:
    text = _nonempty(text)
    found = _field(text, "question")
    # Small models echo a heading after "Question:" and put the real question on the next line:
    # a labelled line that asks something wins, then any line that asks something.
    asking = [q for q in found if q.endswith("?")]
    if asking:
        return asking[0]
    lines = [_clean(x) for x in text.splitlines() if x.strip()]
    asking = [x for x in lines if x.endswith("?") and len(x.split()) >= 3 and not _OPTION.match(x)]
    if asking:
        return asking[0]
    if found:
        return found[0]
    raise ParseError("invalid_format", "no 'Question:' line")


def parse_mcq(text: str | None) -> tuple[str, list[str], int]:
    """(question, options, index of the correct option)."""
    text = _nonempty(text)
    question = parse_question(text)
    options: dict[str, str] = {}
    for line in text.splitlines():
        m = _OPTION.match(line)
        if m and m.group(1).upper() not in options:
            options[m.group(1).upper()] = _clean(m.group(2))
    answer = _field(text, "answer") or _field(text, "correct answer")
    if len(options) != 4 or list(options) != list("ABCD"):
        raise ParseError("wrong_option_count", f"{len(options)} options")
    if len({o.lower() for o in options.values()}) != 4:
        raise ParseError("wrong_option_count", "repeated options")
    if not answer or not (m := re.match(r"\(?([A-Da-d])\b", answer[0])):
        raise ParseError("invalid_format", "no 'Answer: <letter>' line")
    return question, [options[k] for k in "ABCD"], "ABCD".index(m.group(1).upper())


def parse_completion(text: str | None) -> tuple[str, str, list[str]]:
    """(context, true ending, wrong endings)."""
    text = _nonempty(text)
    context, ending = _field(text, "context"), _field(text, "ending")
    wrong = _field(text, "wrong ending")
    if not context or not ending:
        raise ParseError("invalid_format", "no 'Context:' and 'Ending:' lines")
    return context[0], ending[0], [w for w in dict.fromkeys(wrong) if w.lower() != ending[0].lower()]


def parse_request(text: str | None) -> str:
    text = _nonempty(text)
    found = _field(text, "request")
    if found:
        return found[0]
    lines = [_clean(x) for x in text.splitlines() if x.strip()]
    if len(lines) == 1 and re.search(r"\bsummar", lines[0], re.I):
        return lines[0]
    raise ParseError("invalid_format", "no 'Request:' line")


def parse_answer(text: str | None) -> str:
    text = _nonempty(text).strip()
    m = re.match(_LABEL.format("answer"), text, re.I)
    return _clean(text[m.end():]) if m else text


def answer_letter(answer: str) -> int | None:
    """Index of the option an MCQ answer picks ("B) ...", "Answer: B", "(b)"), None if it names none."""
    m = re.match(r"^\s*(?:the\s+)?(?:answer|option|correct\s+option)?\s*(?:is)?\s*[:\-]?\s*\(?([A-Da-d])\b[\).:]?",
                 answer, re.I)
    return "ABCD".index(m.group(1).upper()) if m else None


RUBRIC = ("grounded", "correct", "helpful", "well_formed")
_RUBRIC_LABELS = {"grounded": r"grounded(?:ness)?", "correct": r"correct(?:ness)?",
                  "helpful": r"helpful(?:ness)?", "well_formed": r"well[\s\-_]?formed(?:ness)?"}


def parse_judge(text: str | None) -> dict[str, int]:
    """The four rubric scores 1-5; anything else (missing criterion, number out of range) is unparseable."""
    text = _nonempty(text)
    scores = {}
    for key, label in _RUBRIC_LABELS.items():
        m = re.search(rf"{label}\**\s*[:=\-]?\s*\**\s*(\d+(?:\.\d+)?)\s*(?:/\s*5)?", text, re.I)
        if not m:
            raise ParseError("judge_unparseable", f"no score for {key}")
        v = float(m.group(1))
        if not 1 <= v <= 5:
            raise ParseError("judge_unparseable", f"{key} score {v} outside 1-5")
        scores[key] = int(round(v))
    return scores
