"""What the chain checks in every teacher's output, whatever the teacher (rules, SmolLM2, a server).

Form checks, one per kind; each returns None or the reason the item goes to the quarantine:
- a question ends in "?", asks (an interrogative or an auxiliary verb), has a subject, and holds no
  empty template slot ("driver in  is true"), no broken phrase ("the for", "about if", "with is")
  and no Markdown fragment (link syntax, unbalanced brackets or backticks, table pipes);
- multiple-choice options are whole (no lead-in "Your GitHub username:", no Markdown fragment);
- a completion cuts a sentence at a clause boundary (after a comma or colon, or before "which",
  "because", "to", "is", ...: never inside "the netrc | file"), both halves substantial, the ending a
  sentence end;
- a summary request asks for a summary; a summary is whole sentences; an answer is not a lead-in
  ("... include:"), not a question, and holds no Markdown fragment (an MCQ answer that names no
  option is left to the judge, which scores it incorrect).

`claim_support` is the chain's grounding criterion (the blocking asset check uses another method,
`grounding.answer_supported_by_chunk`, on purpose). It reads the passage as units (sentences of
paragraphs, list items, table rows, code lines, each under its section heading) and, for each claim
(sentence) of the answer, finds the one or two adjacent units that cover most of what the claim adds
to the question (word forms matched loosely: "donating" = "donate", "async" = "asynchronous"). A claim
is supported when that window covers at least `min_support` of its new words, when the window (or its
section heading) is about what the question asks (most of the question's own subject words: an answer
about the serial port is not an answer to a question about donations, even when the chunk mentions
a serial port), and when its polarity agrees with the window's ("No, you cannot ..." against "you can
...", or "Yes" against "... is not ...", is a contradiction).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

from curation.seed import plain_inline
from curation.synthetic.text import STOPWORDS, sentences, words

QUESTION_WORDS = frozenset("what which how why when where who whom whose".split())
AUX_START = frozenset("""is are was were am can could does do did should shall will would may might must has have had
need""".split())
VERB_HINTS = frozenset("""is are was were be been being am has have had do does did can could will would should must may
might shall need needs cannot""".split())
IMPERATIVES = frozenset("""add apply avoid blow call change check clean clear close configure confirm connect copy
create disable drain enable ensure flush follow get give import inspect install keep let lift lock look lower make mount note
open pass plan purge put raise read reduce remove repair replace reset restart retension retune return run see select
send set start stop test tighten try turn update use verify wait wipe write""".split())
NEGATIONS = frozenset("""not no never cannot none nothing neither nor unable impossible""".split())
# question words that name no subject of their own
GENERIC = frozenset("""documentation docs passage text section say says said know explain explained describe described
statement statements true false correct following mean means meaning information tell give need like happen happens
does work works use used using way ways thing things question answer option options one two best most likely
i""".split())
BOUNDARY_START = frozenset("""which that who whom whose where when while because since so if unless until although though
but and or nor to by for using with without before after as than is are was were can could will would should must may
might does do has have then rather instead once whether via from in on at into through unlike like""".split())
DANGLING_END = frozenset("""the a an of to in on at for with from by and or nor your my its their our his her this that
these those is are was were be can could will would should must not no than as into about very""".split())
ADMONITION_WORDS = frozenset("note tip warning example important caution danger info hint see also todo".split())

_CODE = re.compile(r"(`+)(.+?)\1")
_TAG = re.compile(r"</?[A-Za-z][\w-]*(?:\s[^<>]*)?>")
_BROKEN = [
    re.compile(r"\b(?:the|a|an)\s+(?:the|a|an|of|for|in|on|at|to|from|with|by|is|are|was|were|and|or|but|if|see|run|"
               r"this|these|those|it|you|we|they)\b", re.I),
    re.compile(r"\babout\s+(?:if|when|then|and|or|but|because|we|you|they|he|she|is|are|was|were)\b", re.I),
    re.compile(r"\b(?:of|for|in|on|with|from|by|to|about)\s+(?:is|are|was|were)\s+(?:true|false)\b", re.I),
    re.compile(r"\b(?:with|of|for|from|by)\s+(?:is|are)\b", re.I),
    re.compile(r"\b(?:is|are|it's|that's)\s+(?:is|are)\b", re.I),
    re.compile(r"\b(\w+)\s+\1\b", re.I),
]
_ABOUT_CLAUSE = re.compile(r"^which statement about (.+) (?:is|are) true\?$", re.I)


def _without_code(text: str) -> str:
    return _CODE.sub(" code ", text)


def markup_fragment(text: str) -> bool:
    """Markdown or HTML syntax a reader would not write: link syntax, unbalanced brackets, parentheses or
    backticks, table pipes, admonition or heading markers, tags."""
    if text.count("`") % 2:
        return True
    s = _without_code(text)
    return ("](" in s or s.count("[") != s.count("]") or s.count("(") != s.count(")") or "!!!" in s
            or s.count("|") >= 2 or s.lstrip().startswith(("#", "```", "~~~", ">")) or bool(_TAG.search(s)))


def has_verb(text: str) -> bool:
    """A lenient test that a sentence has a finite verb (or is an instruction)."""
    w = words(_without_code(text))
    if not w:
        return False
    if any(t in VERB_HINTS or t.endswith(("n't", "'re", "'ll", "'ve", "'s", "'d")) for t in w):
        return True
    if any(len(t) > 3 and t.endswith(("s", "ed")) and not t.endswith("ss") for t in w[1:]):
        return True
    lead = [t for t in w if t not in ("always", "never", "then", "first", "also", "finally", "now", "please", "just")]
    return bool(lead) and lead[0] in IMPERATIVES


_DEICTIC = re.compile(r"\b(?:the following|as follows|(?:shown|see|listed|described|given|outlined|mentioned|examples?)"
                      r"\s+(?:below|above)|the above|like this|this example|these examples|here is|here's|shown here|"
                      r"as shown)\b|^(?:to do (?:so|this|that)|doing so|in (?:this|that|which) case|because of this|"
                      r"for this reason|as such|otherwise|however|also|then)\b"
                      # a pointer elsewhere says nothing itself ("For more information, see HTTP Proxying.")
                      r"|^(?:for (?:more|further) (?:information|details)\b.*\bsee\b"
                      r"|(?:please )?see\b|(?:please )?refer\b)"
                      r"|\b(?:i\.e|e\.g|viz|cf)\.$", re.I)


def whole_sentence(text: str, min_words: int = 5, max_words: int = 80) -> bool:
    """A sentence a reader can take on its own: starts like a sentence, ends with . ! or ? (not "..." nor a
    lead-in colon), has a verb, no Markdown fragment, and points at nothing outside itself ("the
    following", "outlined above", "this example", "To do so, ...", "... i.e."), nor only points elsewhere
    ("For more information, see ...")."""
    s = text.strip()
    n = len(s.split())
    if not min_words <= n <= max_words:
        return False
    if not re.match(r"^[A-Z0-9`\"'“(]", s) or not re.search(r"[.!?][\"')”]?$", s) or s.endswith(("...", "…")):
        return False
    return not markup_fragment(s) and not _DEICTIC.search(s) and has_verb(s)


# ----------------------------------------------------------------------------- form checks per kind

def question_problem(question: str) -> str | None:
    q = " ".join(question.split("\n")[0:1]).strip() if question else ""
    if not q:
        return "empty"
    if markup_fragment(q):
        return "markup_fragment"
    if not q.rstrip("\"')”").endswith("?"):
        return "not_a_question"
    if re.search(r"\S[ \t]{2,}\S", q.rstrip("? ")):
        return "empty_slot"
    if re.search(r"\?\s+\w", q):
        return "broken_phrase"  # "Which statement about why use a Client? is true?"
    w = words(q)
    if len(w) < 3:
        return "too_short"
    if not (w[0] in QUESTION_WORDS or w[0] in AUX_START or QUESTION_WORDS & set(w)
            or (len(w) > 1 and w[0] in ("and", "so", "then", "but", "in", "for", "with", "on", "at", "to", "from", "by")
                and (w[1] in QUESTION_WORDS or w[1] in AUX_START))):
        return "not_a_question"
    if any(p.search(q) for p in _BROKEN):
        return "broken_phrase"
    m = _ABOUT_CLAUSE.match(q)
    if m and (has_verb(m.group(1)) and set(words(m.group(1))) & VERB_HINTS):
        return "broken_phrase"  # "Which statement about HTTP/2 support is available ... is true?"
    subject = [t for t in w if t not in STOPWORDS and t not in GENERIC and t not in QUESTION_WORDS and len(t) > 1]
    if not subject:
        return "no_subject"
    return None


def topic_problem(topic: str) -> str | None:
    """A topic is a name for what a part of the passage explains: short, whole, no Markdown fragment."""
    t = topic.strip()
    if markup_fragment(t):
        return "markup_fragment"
    w = words(t)
    if not w or len(t.split()) > 10 or (w[-1] in DANGLING_END and not t.endswith("?")):
        return "fragment_topic"
    return None


def options_problem(options: list[str]) -> str | None:
    for o in options:
        s = o.strip()
        if not re.search(r"\w", s):
            return "empty_option"
        if markup_fragment(s):
            return "markup_fragment"
        if s.endswith(":") or s.endswith(("...", "…")):
            return "fragment_option"
    return None


def completion_problem(context: str, ending: str) -> str | None:
    context, ending = context.strip(), ending.strip()
    if markup_fragment(context) or markup_fragment(ending):
        return "markup_fragment"
    cw, ew = context.split(), ending.split()
    if len(cw) < 4 or len(ew) < 2 or len(cw) + len(ew) < 7 or (len(ew) < 3 and not context.endswith(":")):
        return "short_half"
    if not re.search(r"[.!?][\"')”]?$", ending) or ending.endswith(("...", "…")):
        return "not_a_sentence_end"
    last = words(cw[-1])[-1] if words(cw[-1]) else ""
    first = words(ew[0])[0] if words(ew[0]) else ""
    if context[-1] in ",;:—–" and last not in DANGLING_END:
        return None
    if last in DANGLING_END or first not in BOUNDARY_START:
        return "bad_cut"
    return None


def request_problem(request: str) -> str | None:
    r = request.strip()
    if not r:
        return "empty"
    if markup_fragment(r):
        return "markup_fragment"
    if not re.search(r"summar|sum up|overview|main points", r, re.I):
        return "not_a_summary_request"
    if len(r.split()) < 4:
        return "too_short"
    if re.search(r"\S[ \t]{2,}\S", r) or any(p.search(r) for p in _BROKEN):
        return "broken_phrase"
    return None


def _labelled(s: str) -> bool:
    """A "Label: value." statement ("Corrective action: retension the belt.")."""
    return bool(re.match(r"^[A-Z][\w ]{0,30}: \S", s)) and bool(re.search(r"[.!?]$", s)) and not markup_fragment(s)


def answer_problem(kind: str, answer: str) -> str | None:
    """What is wrong with the form of an answer of this kind (None if nothing)."""
    a = answer.strip()
    if not a:
        return "empty"
    if kind == "mcq":  # one naming no option is judged (correct = 1): the rejected side of a preference pair
        return None
    if markup_fragment(a):
        return "markup_fragment"
    if a.endswith(":"):
        return "lead_in_answer"
    if sentences(a) and all(x.rstrip("\"')”").endswith("?") for x in sentences(a)):
        return "question_as_answer"
    if kind == "summarization":
        sents = sentences(a)
        if not sents or not all(whole_sentence(s, min_words=3) or _labelled(s) for s in sents) \
                or not any(len(s.split()) >= 6 for s in sents):
            return "not_whole_sentences"
    elif kind == "qa" and len(a.split()) < 2:
        return "too_short"
    return None


# ----------------------------------------------------------------------------- passages as units

def heading_line(line: str, prev_blank: bool, next_blank: bool) -> str | None:
    """The heading text if the line is one: `#` Markdown, or a short title-like line standing alone
    between blank lines (the first line of a hard-wrapped paragraph is never a heading)."""
    s = line.strip()
    if not s:
        return None
    if re.match(r"^#{1,6}\s+\S", s):
        return re.sub(r"^#{1,6}\s+|\s+#+\s*$", "", s).strip()
    if not (prev_blank and next_blank) or len(s.split()) > 12 or s[-1] in ".!:;,":
        return None
    if re.match(r"^(?:[-*+•>|]|\d+[.)]\s|`{3}|~{3})", s) or not re.match(r"^[A-Z0-9`\"'“]", s):
        return None
    return s


_LIST = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")


@dataclass(frozen=True)
class Block:
    kind: str      # heading, sentence, item, row, code
    text: str
    heading: str   # the heading of the section it stands in


@lru_cache(maxsize=2048)
def passage_blocks(passage: str) -> tuple[Block, ...]:
    """The passage's headings, paragraph sentences, list items, table rows and code lines, in order."""
    lines = passage.split("\n")
    out: list[Block] = []
    heading, para, item = "", [], []
    fence = False

    def flush():
        if item:
            out.append(Block("item", plain_inline(" ".join(x.strip() for x in item)), heading))
            item.clear()
        if para:
            for s in sentences(plain_inline(" ".join(x.strip() for x in para))):
                out.append(Block("sentence", s, heading))
            para.clear()

    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith(("```", "~~~")):
            flush()
            fence = not fence
            continue
        if fence:
            if s:
                out.append(Block("code", s, heading))
            continue
        if not s:
            flush()
            continue
        prev_blank = i == 0 or not lines[i - 1].strip()
        next_blank = i + 1 >= len(lines) or not lines[i + 1].strip() or bool(re.match(r"^(=+|-+)\s*$", lines[i + 1]))
        if not para and not item and (h := heading_line(line, prev_blank, next_blank)) is not None:
            flush()
            heading = re.sub(r"^(?:(?:chapter|section|part|appendix)\s+\w+\.?\s*|\d+(?:\.\d+)*\.?\s+)", "", h,
                             flags=re.I).strip() or h
            out.append(Block("heading", heading, heading))
            continue
        if re.match(r"^(=+|-+)\s*$", s) and out and out[-1].kind == "heading":
            continue  # a setext underline
        if s.startswith("|") or _TABLE_SEP.match(s):
            flush()
            if not _TABLE_SEP.match(s):
                out.append(Block("row", " ".join(c.strip() for c in s.strip("|").split("|")), heading))
            continue
        if _LIST.match(line):
            flush()
            item.append(_LIST.sub("", line))
            continue
        if re.match(r"^\s*(?:!!!|\?\?\?)", line):
            flush()
            continue
        if item:  # an indented or lazy continuation line of the list item
            item.append(line)
            continue
        para.append(line)
    flush()
    return tuple(out)


# ----------------------------------------------------------------------------- support of a claim

def _term(w: str) -> str:
    w = w.lower().replace("’", "'")
    w = re.sub(r"'s$", "", w)
    for suffix in ("ing", "ed", "es", "s", "e", "ly"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix) and not w.endswith("ss"):
            return w[: -len(suffix)]
    return w


def _terms(text: str) -> list[str]:
    out = []
    for t in words(_without_code_keep(text)):
        if t in NEGATIONS or t.endswith("n't") or t in ("yes",):
            continue
        if (t in STOPWORDS or len(t) < 2) and not t.isdigit():
            continue
        out.append(_term(t))
    return out


def _without_code_keep(text: str) -> str:
    return text.replace("`", " ")


class _Vocab:
    """Terms of a window, matched loosely: equal, or one a prefix of the other when both have 5+ letters."""

    def __init__(self, terms):
        self.terms = set(terms)
        self.by_prefix: dict[str, set[str]] = {}
        for u in self.terms:
            if len(u) >= 5:
                self.by_prefix.setdefault(u[:5], set()).add(u)

    def __or__(self, other: "_Vocab") -> "_Vocab":
        return _Vocab(self.terms | other.terms)

    def __contains__(self, t: str) -> bool:
        if t in self.terms:
            return True
        return len(t) >= 5 and any(u.startswith(t) or t.startswith(u) for u in self.by_prefix.get(t[:5], ()))


@lru_cache(maxsize=512)
def _index(passage: str):
    blocks = [b for b in passage_blocks(passage) if b.kind != "heading"]
    heads = [_Vocab(_terms(b.heading)) for b in blocks]
    # a unit is read under its heading: "Probable cause: worn bearings." under "Chatter marks"
    return blocks, [_Vocab(_terms(b.text)) | h for b, h in zip(blocks, heads)], heads


def negated(text: str) -> bool:
    """Whether a clause says "not" (a code span such as `None` is a name, not a negation)."""
    return any(t in NEGATIONS or t.endswith("n't") for t in words(_CODE.sub(" ", text).replace("’", "'")))


def _clauses(text: str) -> list[str]:
    return [c for s in sentences(text) for c in re.split(r"[,;:]\s+|\s+(?:but|although|though|whereas|however)\s+", s)
            if c.strip()]


@dataclass(frozen=True)
class Support:
    ok: bool
    score: float          # the least share of a claim's new words that its best window covers
    reason: str = ""      # unsupported, off_question, contradicts_chunk, no_new_content
    evidence: str = ""    # the passage text that supports (or contradicts) the weakest claim


def claim_support(answer: str, passage: str, question: str = "", kind: str = "qa", heading: str = "",
                  min_support: float = 0.75) -> Support:
    """Whether the passage supports every claim of the answer (see the module docstring)."""
    text = re.sub(r"^\s*\(?[A-Da-d][\).:]\s+", "", plain_inline(answer or "").strip())
    polarity = ""
    if m := re.match(r"^(yes|no)\b[\s,.!;:-]*", text, re.I):
        polarity, text = m.group(1).lower(), text[m.end():]
    claims = [c for c in sentences(text) if _terms(c)] or ([text] if _terms(text) else [])
    if not claims:
        return Support(False, 0.0, "no_new_content")
    blocks, block_terms, head_terms = _index(passage)
    if not blocks:
        return Support(False, 0.0, "unsupported")
    pairs = [block_terms[i] | block_terms[i + 1] for i in range(len(blocks) - 1)]
    q_terms = _Vocab(_terms(question))
    generic = {_term(g) for g in GENERIC}
    focus = {t for t in q_terms.terms if t not in generic}
    chunk_head = _Vocab(_terms(heading))
    worst = Support(True, 1.0)
    # the answer must be about what was asked: at least one claim's evidence holds most of the question's
    # subject words (a second sentence that adds context need not)
    on_question, off_question = not (focus and kind in ("qa", "mcq")), None
    for claim in claims:
        ct = _terms(claim)
        new = [t for t in ct if t not in q_terms] if q_terms.terms else ct
        if not new:
            if not polarity:
                return Support(False, 0.0, "no_new_content")
            new = ct  # "Yes, X does Y": the restated proposition itself must be supported
        best, best_i, best_j = -1.0, 0, 0
        for i in range(len(blocks)):
            windows = [(i, block_terms[i])]
            if kind != "completion" and i < len(pairs):  # a completion is one sentence of the passage, not two
                windows.append((i + 1, pairs[i]))
            for j, vocab in windows:
                cov = sum(t in vocab for t in new) / len(new)
                if cov > best + 1e-9:
                    best, best_i, best_j = cov, i, j
        evidence = " ".join(b.text for b in blocks[best_i:best_j + 1])
        if best < (1.0 if len(new) <= 2 else min_support):
            return Support(False, round(best, 3), "unsupported", evidence)
        if focus and kind in ("qa", "mcq"):
            window = [block_terms[k] for k in range(best_i, best_j + 1)] + [chunk_head]
            hit = sum(any(t in v for v in window) for t in focus)
            if hit >= (len(focus) if len(focus) <= 2 else math.ceil(len(focus) / 2)):
                on_question = True
            elif off_question is None:
                off_question = Support(False, round(best, 3), "off_question", evidence)
        # polarity: each clause of the claim against the clause of the window that shares most of its words
        window_clauses = [(c, _Vocab(_terms(c))) for b in blocks[best_i:best_j + 1] for c in _clauses(b.text)]
        for k, cc in enumerate(_clauses(claim)):
            cterms = _terms(cc)
            if len(cterms) < 2 or not window_clauses:
                continue  # too little to tell which clause of the passage it restates
            # the clause sharing most of its words, the most specific one (fewest other words) on a tie
            wc, wv = max(window_clauses, key=lambda x: (sum(t in x[1] for t in cterms), -len(x[1].terms)))
            if sum(t in wv for t in cterms) < 0.6 * len(cterms):
                continue
            if (negated(cc) or (polarity == "no" and k == 0)) != negated(wc):
                return Support(False, round(best, 3), "contradicts_chunk", wc)
        if best < worst.score or not worst.evidence:
            worst = Support(True, round(min(best, worst.score), 3), "", evidence)
    if not on_question:
        return off_question
    return worst
