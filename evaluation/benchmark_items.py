"""Options that only knowledge can tell apart: distractors of the key's own type, length and context.

A generated multiple-choice (or completion) item is worth something only if rules that know
nothing (the shortest option, the option sharing most words with the question, the option most
alike to the others) sit at chance on it. Sentences of *other* documents as distractors fail:
they are longer or shorter than the key, share no words with the question, and are often true as
well (a second right answer). So, for every item:

1. What may change, always of the key's own type (a code span or identifier, a number with its
   unit, a short value, a statement):
   - one slot of the key, replaced by another value of its kind from the item's chunk, then its
     document, then the other held-out documents: a code span by one of the same shape
     (`client.get()` by `client.send()`, `--verbose` by `--http2`), an identifier or acronym by
     one that stands between the same words elsewhere, a number by another with the same unit,
     a plain word by one used alike in the documents, a word by its opposite (request/response,
     before/after, can/cannot). The statement so changed is false and reads like the key;
   - or the whole option: the teacher's own distractors (an LLM writes them, as in
     DiagnosticSLM), the other values of a "Label: value" field, other sentences' endings (for
     completion), each kept only when its words belong to the item's document.
   A statement distractor that the held-out documents say verbatim is dropped (it may be true).
2. Every option is put in the key's form (trailing punctuation, first-letter case, Markdown
   marks); one outside `max_length_ratio` of the key's length is dropped.
3. Three distractors form a *design* in which the key is no more alike to the others than they
   are to each other: three values of one slot, two slots crossed (a, b, a+b), or three whole
   options (never the key changed once in three places: it would be the centre). Among the
   designs, the key's length rank follows a running quota (so "shortest" and "longest" land on
   it a quarter of the time over the benchmark), its word overlap with the question and its
   centrality are matched to chance the same way, and the most plausible candidates win.
4. The item is quarantined, with its reason, when a blind rule could still pick its key
   (`evaluation.baselines.blind_giveaways`: unique shortest/longest by a margin, unique highest
   overlap with the question, duplicate options), when it would push a rule above chance with
   nothing to offset it, when there are too few candidates, or when its key is no statement (a
   list's lead-in ending in ":", markup, a run-on of 60+ words).
"""
from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field

from evaluation.baselines import _STOPWORDS, _content_words, blind_giveaways, most_central

# --------------------------------------------------------------------------- settings


@dataclass
class OptionSettings:
    n_options: int = 4
    max_length_ratio: float = 1.5       # a distractor's length (chars) within key/ratio .. key*ratio ...
    length_slack_chars: int = 6         # ... or within this many characters of it (short values)
    min_relatedness: float = 0.5        # share of a teacher distractor's content words found in the document
    statement_words: int = 5            # an option of this many words or more is a statement (truth-checked)
    max_key_words: int = 60             # a longer key is a run-on (merged list items), not one statement
    extreme_margin: float = 0.15        # the key may be the shortest/longest only by less than this share ...
    extreme_slack_chars: int = 2        # ... or this many characters


@dataclass
class BuiltOptions:
    options: list[str] = field(default_factory=list)
    answer: int = -1
    sources: list[str] = field(default_factory=list)  # per distractor: teacher / slot:<kind> / label / tail
    reason: str = ""                                    # non-empty: rejected, and why

    @property
    def rejected(self) -> bool:
        return bool(self.reason)


def _h(*parts: object) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


# --------------------------------------------------------------------------- text forms

_WORD = re.compile(r"[a-z0-9]+")
_ADMONITION = re.compile(r'^\s*[!?]{3}\+?\s*\w+(?:\s+"[^"]*")?\s*')
_BULLET = re.compile(r"^\s*(?:[*\-+•]|\d+[.)])\s+")


def _norm(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def clean_option(text: str) -> str:
    """One line, no Markdown admonition marker ("!!! note") or list bullet in front."""
    text = " ".join(text.split())
    text = _ADMONITION.sub("", text)
    return _BULLET.sub("", text).strip()


def option_type(text: str) -> str:
    """code (a code span or identifier alone), number (with its unit), value (a short phrase) or statement."""
    t = text.strip().rstrip(".")
    if re.fullmatch(r"`[^`]+`", t) or (" " not in t and re.fullmatch(r"[\w.\-/:=()\[\]'\"]+", t)
                                        and not t.isalpha() and not re.fullmatch(r"[\d.,]+", t)):
        return "code"
    if re.fullmatch(r"[~<>≈]?\s*\d[\d.,]*\s*[%\w]{0,12}", t):
        return "number"
    return "value" if len(t.split()) < OptionSettings.statement_words else "statement"


def match_form(candidate: str, key: str) -> str:
    """The candidate in the key's form: its trailing period, first-letter case and Markdown marks."""
    c = clean_option(candidate)
    if "`" not in key:
        c = c.replace("`", "")
    elif re.fullmatch(r"`[^`]+`\.?", key.strip()) and "`" not in c:
        c = f"`{c.rstrip('.')}`"
    for mark in ("**", "__"):
        if mark not in key:
            c = c.replace(mark, "")
    end = re.search(r"[.!?:;…]*$", key.rstrip()).group()
    c = c.rstrip().rstrip(".!?:;,…") + end
    first = c.split()[0] if c.split() else ""
    if key[:1].isalpha() and first[:1].isalpha() and first[1:] == first[1:].lower():  # a word, not an acronym
        c = (c[:1].upper() if key[:1].isupper() else c[:1].lower()) + c[1:]
    return c


# --------------------------------------------------------------------------- slots

# Each pair swaps both ways; the distractor says the opposite of the key in the key's words.
_OPPOSITES = [("request", "response"), ("requests", "responses"), ("client", "server"), ("clients", "servers"),
              ("before", "after"), ("always", "never"), ("enabled", "disabled"), ("enable", "disable"),
              ("synchronous", "asynchronous"), ("sync", "async"), ("more", "less"), ("larger", "smaller"),
              ("increase", "decrease"), ("true", "false"), ("read", "write"), ("upload", "download"),
              ("uploads", "downloads"), ("send", "receive"), ("sent", "received"), ("minimum", "maximum"),
              ("first", "last"), ("inclusive", "exclusive"), ("lower", "upper"), ("required", "optional"),
              ("explicit", "implicit"), ("explicitly", "implicitly"), ("include", "exclude"),
              ("included", "excluded"), ("open", "closed"), ("input", "output"), ("incoming", "outgoing"),
              ("local", "remote"), ("allowed", "forbidden"), ("higher", "lower"), ("faster", "slower"),
              ("earlier", "later"), ("cannot", "can"), ("can't", "can"), ("must not", "must"),
              ("should not", "should"), ("will not", "will"), ("is not", "is"), ("are not", "are")]
# One way only: "does"/"do" are main verbs too ("it can do much more" must not become "it can do not much more").
_ONE_WAY = [("does not", "does"), ("do not", "do"), ("don't", "do"), ("doesn't", "does")]
_OPPOSITE: dict[str, str] = {}
for _a, _b in _OPPOSITES:
    _OPPOSITE.setdefault(_a, _b)
    _OPPOSITE.setdefault(_b, _a)
for _a, _b in _ONE_WAY:
    _OPPOSITE.setdefault(_a, _b)
_OPPOSITE_RE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _OPPOSITE), key=len, reverse=True)) + r")\b",
                          re.I)
_UNITS = ("ms|milliseconds?|seconds?|secs?|s|minutes?|mins?|hours?|days?|bytes?|kb|kib|mb|mib|gb|gib|%|percent|"
          "connections?|requests?|retries|times|redirects?|characters?|chars?|lines?|items?|ports?|x")
_NUMBER = re.compile(r"(?<![\w./\-#])(\d+(?:[.,]\d+)?)(?![\w/]|\.\d)(?:\s?(" + _UNITS + r")\b)?", re.I)
_CODE = re.compile(r"`([^`\n]+)`")
_IDENT = re.compile(r"(?<![\w./`])(?:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?|[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+"
                    r"|[a-z][a-z0-9]*(?:_[a-z0-9]+)+|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?![\w`])")
_ACRONYM = re.compile(r"(?<![\w./`\-])[A-Z]{2,6}[0-9]?(?![\w`\-/])")
_MARKUP = re.compile(r"</?[a-zA-Z][\w-]*(?:\s[^>]*)?>|^\s*[|{<]")
_MASK = re.compile(r"https?://\S+|\]\([^)]*\)|\[[^\]]*\]\[[^\]]*\]")
_FILE_EXT = {"md", "py", "txt", "pem", "json", "toml", "cfg", "ini", "yaml", "yml", "crt", "key", "html", "netrc", "sh"}


def code_shape(code: str) -> str:
    """What kind of code a span is, so that it is replaced by one of its kind."""
    c = code.strip()
    if c.endswith(")"):
        return "call"
    if c.startswith("-"):
        return "flag"
    if re.match(r"^\w+\s*=", c):
        return "kwarg"
    if c[:1] in "'\"" and c[-1:] == c[:1]:
        return "string"
    if "://" in c or c.startswith("/"):
        return "url"
    if "." in c and c.rsplit(".", 1)[-1].lower() in _FILE_EXT:
        return "file"
    if "/" in c and " " not in c:
        return "path"
    if re.fullmatch(r"[\d.,]+", c):
        return "number"
    if " " in c:
        return "expr"
    if "." in c:
        return "dotted"
    if re.fullmatch(r"[A-Z][A-Z0-9_]+", c):
        return "const"
    if re.fullmatch(r"[A-Z]\w*[a-z]\w*", c):
        return "class"
    return "name"


@dataclass(frozen=True)
class Slot:
    start: int
    end: int
    kind: str    # code:<shape>, ident:<shape>, number:<unit>, opposite
    value: str   # the text of the span


def _unit(u: str | None) -> str:
    u = (u or "").lower()
    return {"millisecond": "ms", "milliseconds": "ms", "second": "s", "seconds": "s", "sec": "s", "secs": "s",
            "minute": "min", "minutes": "min", "mins": "min", "hour": "h", "hours": "h", "percent": "%"}.get(
        u, u.rstrip("s") if len(u) > 3 else u)


def find_slots(text: str, opposites: bool = True) -> list[Slot]:
    """The replaceable spans of a text, non-overlapping: code spans, identifiers, numbers, then opposite words."""
    found: list[Slot] = []
    taken = [False] * len(text)

    def add(s: int, e: int, kind: str) -> None:
        if s < e and not any(taken[s:e]):
            found.append(Slot(s, e, kind, text[s:e]))
            taken[s:e] = [True] * (e - s)

    for m in _CODE.finditer(text):
        add(m.start(), m.end(), "code:" + code_shape(m.group(1)))
    masked = _MASK.sub(lambda m: " " * len(m.group()), text)
    for m in _MASK.finditer(text):  # nothing inside a link target or URL is a slot
        taken[m.start():m.end()] = [True] * (m.end() - m.start())
    for m in _IDENT.finditer(masked):
        v = m.group()
        if v.lower() in ("e.g", "i.e", "etc") or v.split(".")[-1].lower() in _FILE_EXT:
            continue
        add(m.start(), m.end(), "ident:" + code_shape(v))
    for m in _NUMBER.finditer(masked):
        add(m.start(), m.end(), "number:" + _unit(m.group(2)))
    for m in _ACRONYM.finditer(masked):
        add(m.start(), m.end(), "term:acronym")
    if opposites:
        for m in _OPPOSITE_RE.finditer(masked):
            add(m.start(), m.end(), "opposite")
    return sorted(found, key=lambda s: s.start)


def _number_neighbours(value: str) -> list[str]:
    """Other numbers in the same unit and format, for a number slot the documents give no alternative to."""
    m = _NUMBER.fullmatch(value.strip())
    if not m:
        return []
    raw, unit = m.group(1), value.strip()[len(m.group(1)):]
    try:
        x = float(raw.replace(",", ""))
    except ValueError:
        return []
    out = []
    for y in (x * 2, x / 2, x * 10, x + 1, x * 3):
        if y <= 0 or y == x:
            continue
        if "." in raw:
            s = f"{y:.{len(raw.split('.')[1])}f}"
        elif y != int(y):
            continue
        else:
            s = str(int(y))
        out.append(s + unit)
    return out


def _fix_articles(text: str) -> str:
    """"a"/"an" agreeing with the word after it, after a replacement changed that word."""
    def fix(m: re.Match) -> str:
        article, word = m.group(1), m.group(2)
        if re.fullmatch(r"[A-Z]{2,}\d?", word):  # an acronym is read letter by letter: "an HTTP", "a URL"
            vowel = word[0] in "AEFHILMNORSX"
        else:
            vowel = word[:1].lower() in "aeiou" and not word.lower().startswith(("uni", "use", "usu", "one"))
        want = ("an" if vowel else "a")
        return (want.capitalize() if article[:1].isupper() else want) + m.group(0)[len(article):]
    return re.sub(r"\b([Aa]n?)\s+(?=[`\"'*]?([A-Za-z]\w*))", fix, text)


def _case_like(replacement: str, original: str) -> str:
    if original[:1].isupper() and replacement[:1].islower():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def _opposite(word: str) -> str:
    return _case_like(_OPPOSITE[word.lower()], word)


# --------------------------------------------------------------------------- the builder

_STOP = _STOPWORDS | frozenset("""these those would should could have been being their there which where when what
also only than then them they your some such other each very just like used using both either neither within without
about every many much well into onto over under upon while because until whether""".split())
_FACT = re.compile(r"^([A-Z][A-Za-z ]{1,30}?):\s+(.+?)\.?$")


@dataclass
class _Doc:
    text: str
    norm: str
    words: set
    slots: dict      # kind -> [values], in order of appearance
    facts: dict      # label -> [values]
    around: dict     # value -> {"<word before", ">word after"} wherever it stands
    between: dict    # (word before, word after) -> {content words standing between them}
    contexts: dict   # word -> {"<word before", ">word after"} over all its occurrences


def _neighbours(sentence: str, slot: Slot) -> set[str]:
    before = _WORD.findall(sentence[:slot.start].lower())[-1:]
    after = _WORD.findall(sentence[slot.end:].lower())[:1]
    return {"<" + w for w in before} | {">" + w for w in after}


def _sentences(text: str) -> list[str]:
    out = []
    for para in re.split(r"\n\s*\n", text):
        lines = [ln for ln in para.splitlines() if ln.strip() and not ln.lstrip().startswith(("#", "```", "    "))]
        joined = " ".join(clean_option(ln) for ln in lines)
        out += [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z`\"'(\[])", joined) if s.strip()]
    return out


def _index(text: str) -> _Doc:
    slots: dict[str, list[str]] = {}
    facts: dict[str, list[str]] = {}
    around: dict[str, set[str]] = {}
    between: dict[tuple[str, str], set[str]] = {}
    contexts: dict[str, set[str]] = {}
    for sentence in _sentences(text):
        w = _WORD.findall(_CODE.sub(" ", sentence).lower())
        for i in range(1, len(w) - 1):
            contexts.setdefault(w[i], set()).update(("<" + w[i - 1], ">" + w[i + 1]))
            if len(w[i]) >= 4 and w[i] not in _STOP and not w[i].isdigit():
                between.setdefault((w[i - 1], w[i + 1]), set()).add(w[i])
                # one side only where that side is a content word ("HTTP ___", "___ authentication")
                if _content_words(w[i - 1]):
                    between.setdefault((w[i - 1], "*"), set()).add(w[i])
                if _content_words(w[i + 1]):
                    between.setdefault(("*", w[i + 1]), set()).add(w[i])
        for s in find_slots(sentence, opposites=False):
            slots.setdefault(s.kind, [])
            if s.value not in slots[s.kind]:
                slots[s.kind].append(s.value)
            around.setdefault(s.value, set()).update(_neighbours(sentence, s))
        if (m := _FACT.match(sentence)) and len(m.group(1).split()) <= 4:
            facts.setdefault(m.group(1).strip().lower(), []).append(m.group(2).strip())
    return _Doc(text, _norm(text), set(_content_words(text)), slots, facts, around, between, contexts)


@dataclass(frozen=True)
class _Alt:
    """One way to change the key: a slot's replacement, or (span None) a whole other option."""
    span: tuple[int, int] | None
    text: str
    source: str
    cost: float


class OptionBuilder:
    """Builds the options of generated items over one set of held-out chunks (their documents are the pool)."""

    def __init__(self, chunks: list, seed: int = 0, settings: OptionSettings | None = None) -> None:
        self.settings = settings or OptionSettings()
        self.seed = seed
        by_doc: dict[str, list] = {}
        for c in chunks:
            by_doc.setdefault(c.doc_id, []).append(c)
        self.docs = {d: _index("\n\n".join(c.text for c in sorted(cs, key=lambda c: c.index)))
                     for d, cs in by_doc.items()}
        self.corpus = _index("\n\n".join(d.text for d in self.docs.values()))
        self._chunks: dict[str, _Doc] = {}
        # per kind (mcq / completion): items built and how often each blind rule would have picked the key,
        # so that the next item's length rank, overlap and centrality steer the sums to chance
        self._tally: dict[bool, dict[str, float]] = {}

    def _chunk(self, chunk) -> _Doc:
        if chunk.id not in self._chunks:
            self._chunks[chunk.id] = _index(chunk.text)
        return self._chunks[chunk.id]

    # -- what may change in the key
    def slot_alternatives(self, key: str, levels: list[_Doc]) -> list[list[_Alt]]:
        """Per slot of the key, its replacements of the same kind, most plausible first.

        Values that stand between the same words somewhere in the documents ("the `Host` header"
        for "the `Authorization` header") come first: they fit the sentence. A plain word is
        replaced only by a word used alike in the documents (same neighbours).
        """
        out: list[list[_Alt]] = []
        key_words = set(_WORD.findall(key.lower()))
        slots = find_slots(key)
        for slot in slots:
            alts: list[tuple[str, float]] = []
            if slot.kind == "opposite":
                alts = [(_opposite(slot.value), 0.0)]
            else:
                here = _neighbours(key, slot)
                for level, doc in enumerate(levels):
                    for v in doc.slots.get(slot.kind, []):
                        fits = len(here & self.corpus.around.get(v, set()))
                        if fits or not slot.kind.startswith("term"):  # an acronym only where it stands alike
                            alts.append((v, level - 0.75 * fits))
                if slot.kind.startswith("number"):
                    alts += [(v, float(len(levels))) for v in _number_neighbours(slot.value)]
            seen, mine = {_norm(slot.value)}, []
            for alt, cost in sorted(alts, key=lambda a: a[1]):
                n = _norm(alt)
                new = set(n.split()) - set(_norm(slot.value).split())
                if not n or n in seen or not new or new <= key_words:
                    continue  # the same value, or one the key already names ("either `trio` or `trio`")
                seen.add(n)
                mine.append(_Alt((slot.start, slot.end), _case_like(alt, slot.value), "slot:" + slot.kind, cost))
            if mine:
                out.append(mine)
        taken = [(s.start, s.end) for s in slots]
        for m in re.finditer(r"[A-Za-z][a-z]{3,}", key):
            if m.group().lower() in _STOP or any(a < m.end() and m.start() < b for a, b in taken):
                continue
            before = _WORD.findall(key[:m.start()].lower())[-1:] or ["^"]
            after = _WORD.findall(key[m.end():].lower())[:1] or ["$"]
            if key[m.end():m.end() + 1] not in " ,.;:)" or not (_content_words(before[0]) or _content_words(after[0])):
                continue  # "are ... to" says nothing about what may stand between; "HTTP ... authentication" does
            word = m.group().lower()
            both = self.corpus.between.get((before[0], after[0]), set())
            one = self.corpus.between.get((before[0], "*"), set()) | self.corpus.between.get(("*", after[0]), set())
            used = self.corpus.contexts.get(word, set())
            mine = []
            for cost, pool in ((len(levels), both), (len(levels) + 1, one - both)):
                for alt in sorted(pool - key_words):
                    if alt[:5] == word[:5]:
                        continue  # another form of the same word
                    if pool is not both and len(used & self.corpus.contexts.get(alt, set())) < 3:
                        continue  # one shared neighbour is not enough: the word must be used alike elsewhere too
                    mine.append(_Alt((m.start(), m.end()), _case_like(alt, m.group()), "slot:word", float(cost)))
            if mine:
                out.append(mine)
        return out

    def whole_alternatives(self, key: str, teacher: list[str], doc: _Doc, context: str,
                           completion: bool) -> list[_Alt]:
        """Other options altogether: the teacher's distractors, the label's other values, other sentences' ends."""
        out = [_Alt(None, t, "teacher", 0.0) for t in teacher]
        bare = key.strip().rstrip(".")
        for label, values in doc.facts.items():
            if any(_norm(v) == _norm(bare) for v in values):
                out += [_Alt(None, v, "label", 1.0) for v in values]
                out += [_Alt(None, v, "label", 2.0) for d in self.docs.values() if d is not doc
                        for v in d.facts.get(label, [])]
        if completion:
            n = len(key.split())
            for sentence in _sentences(doc.text):
                w = sentence.split()
                if re.search(r"[=#{}<>]|\.\.\.|\w\(", _CODE.sub("", sentence)):
                    continue  # code or markup, not prose
                if "`" in " ".join(w[-n:]) and "`" not in key:
                    continue  # its code spans would lose their marks
                if len(w) >= n + 3 and _norm(sentence) != _norm(context + " " + key):
                    out.append(_Alt(None, " ".join(w[-n:]), "tail", 2.0))
        return out

    # -- one distractor, checked
    def _distractor(self, key: str, alts: tuple[_Alt, ...], doc: _Doc, context: str, completion: bool,
                    cache: dict) -> tuple[str, float] | None:
        """(the distractor in the key's form, its plausibility cost), or None when it is no fit distractor."""
        if alts in cache:
            return cache[alts]
        st = self.settings
        if alts[0].span is None:
            text = alts[0].text
        else:
            text = key
            for a in sorted(alts, key=lambda a: -a.span[0]):
                text = text[:a.span[0]] + a.text + text[a.span[1]:]
            text = _fix_articles(text)
        c = match_form(text, key)
        n, result = _norm(c), None
        words = _content_words(c)
        related = len(words & doc.words) / len(words) if words else 1.0
        ok = bool(n) and n != _norm(key) and option_type(c) == option_type(key)
        ok = ok and (key_len_ok(len(c), len(key), st))
        if ok and alts[0].span is None and related < st.min_relatedness:
            ok = False  # an unrelated sentence: implausible in this item's context
        if ok and (option_type(key) == "statement" or completion):
            whole = _norm(f"{context} {c}") if completion else n
            ok = whole not in self.corpus.norm  # said in the held-out documents: possibly true, never a distractor
        if ok:
            result = (c, sum(a.cost for a in alts) / len(alts) + (1.0 - related))
        cache[alts] = result
        return result

    def designs(self, key: str, slots: list[list[_Alt]], whole: list[_Alt]) -> list[list[tuple[_Alt, ...]]]:
        """Sets of three distractors in which the key is no more alike to the others than they are to each other.

        Three values of one slot, or two slots crossed (a, b, a+b), or three whole other options:
        never the key with one slot changed in three different places, where the key would be the
        option most alike to all others (a blind rule would find it).
        """
        out = []
        for alts in slots:
            out += [[(a,), (b,), (c,)] for a, b, c in itertools.combinations(alts[:6], 3)]
        ranked = sorted(slots, key=lambda alts: alts[0].cost)[:8]
        for s1, s2 in itertools.combinations(ranked, 2):
            out += [[(a,), (b,), (a, b)] if a.span[0] < b.span[0] else [(b,), (a,), (b, a)]
                    for a in s1[:3] for b in s2[:3]]
        out += [[(a,), (b,), (c,)] for a, b, c in itertools.combinations(whole[:8], 3)]
        return out

    # -- choosing three
    def build(self, question: str, key: str, teacher_distractors: list[str], chunk, item_id: str = "",
              completion: bool = False) -> BuiltOptions:
        """The item's options and the key's index, or a rejection reason (see the module docstring)."""
        st = self.settings
        key = clean_option(key)
        if not key:
            return BuiltOptions(reason="empty_key")
        if len(key.split()) > st.max_key_words:
            return BuiltOptions(reason="key_too_long")
        if not completion and key.rstrip().endswith(":"):
            return BuiltOptions(reason="key_not_a_statement")
        if _MARKUP.search(_CODE.sub("", key)):
            return BuiltOptions(reason="key_is_markup")
        doc = self.docs.get(chunk.doc_id) or _index(chunk.text)
        slots = self.slot_alternatives(key, [self._chunk(chunk), doc, self.corpus])
        whole = self.whole_alternatives(key, teacher_distractors, doc, question, completion)
        need = st.n_options - 1
        chance = 1 / st.n_options
        tally = self._tally.setdefault(completion, {"n": 0, "short": 0.0, "long": 0.0, "overlap": 0.0,
                                                    "central": 0.0})
        due = chance * (tally["n"] + 1)
        if due - tally["short"] >= 0.5:
            target_rank = 0
        elif due - tally["long"] >= 0.5:
            target_rank = need
        else:
            target_rank = 1 + _h(self.seed, "rank", item_id or key) % (need - 1)
        want = {rule: min(1.0, max(0.0, due - tally[rule])) for rule in ("overlap", "central")}
        asked = _content_words(question)
        key_overlap = len(_content_words(key) & asked)
        cache: dict = {}
        best, best_cost, picked, reasons = None, None, None, []
        for design in self.designs(key, slots, whole):
            made = [self._distractor(key, alts, doc, question, completion, cache) for alts in design]
            if any(m is None for m in made):
                continue
            texts = [m[0] for m in made]
            if len({_norm(t) for t in texts}) < need:
                continue
            options = [key] + texts
            found = blind_giveaways(question, options, 0, st.extreme_margin, st.extreme_slack_chars)
            if found:
                reasons += found
                continue
            overlaps = [len(_content_words(t) & asked) for t in texts]
            top = max([key_overlap] + overlaps)
            e_overlap = 1.0 / (1 + sum(o == top for o in overlaps)) if key_overlap == top else 0.0
            e_central = most_central(options, 0)
            # the shortest and the longest rule should each land on the key exactly when the draw says so
            lengths = [len(t) for t in texts]
            shorter = sum(n < len(key) for n in lengths)
            as_short = 1.0 / (1 + lengths.count(len(key))) if len(key) <= min(lengths) else 0.0
            as_long = 1.0 / (1 + lengths.count(len(key))) if len(key) >= max(lengths) else 0.0
            rank_cost = (abs(as_short - (target_rank == 0)) + abs(as_long - (target_rank == need))
                         + 0.25 * abs(shorter - target_rank))
            spread = sum(abs(n - len(key)) for n in lengths) / (len(key) * need)
            cost = (2 * abs(e_overlap - chance) + 3 * abs(e_overlap - want["overlap"])
                    + 2 * abs(e_central - chance) + 3 * abs(e_central - want["central"]) + 2 * rank_cost
                    + 0.5 * sum(m[1] for m in made) / need + 0.5 * spread)
            if best_cost is None or cost < best_cost:
                best, best_cost, picked = design, cost, (as_short, as_long, e_overlap, e_central)
                chosen_texts = texts
        if best is None:
            if not reasons:
                return BuiltOptions(reason="too_few_plausible_distractors")
            return BuiltOptions(reason=max(sorted(set(reasons)), key=reasons.count))
        for name, rule, value in (("overlap", "key_word_overlap", picked[2]), ("central", "key_most_alike", picked[3])):
            if value > chance and tally[name] + value - due > 0.5:
                # this item would lift the rule above chance by more than half an item, with nothing to offset it
                return BuiltOptions(reason=f"{rule}_above_chance")
        tally["n"] += 1
        for name, value in zip(("short", "long", "overlap", "central"), picked):
            tally[name] += value
        chosen = [(key, "key")] + [(t, "+".join(a.source for a in alts)) for t, alts in zip(chosen_texts, best)]
        ordered = sorted(chosen, key=lambda o: _h(self.seed, item_id, o[0]))
        options = [o for o, _ in ordered]
        return BuiltOptions(options=options, answer=options.index(key), sources=[s for _, s in chosen[1:]])


def key_len_ok(n: int, key_n: int, st: OptionSettings) -> bool:
    """A distractor's length is within the ratio bounds of the key's, or a few characters from it."""
    return key_n / st.max_length_ratio <= n <= key_n * st.max_length_ratio or abs(n - key_n) <= st.length_slack_chars
