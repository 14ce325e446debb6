"""The offline rules teacher: answers the chain's own prompts by extraction from the passage in the prompt.

No model: it recognises the task from the prompt's first line ("Task: ...") and reads the passage
between triple quotes as the chain's checks read it (`checks.passage_blocks`): headings are `#`
lines or short title-like lines standing alone between blank lines (never the first line of a
hard-wrapped paragraph); paragraphs are joined and cut into sentences; Markdown links count as their
text; tables, code blocks and admonition markers are never taken for sentences. It asks real
questions of real text, built from whole sentences (`checks.whole_sentence`), definitions and
structured facts, never from heading fragments:
- topics: the passage's section headings (sections holding "Label: value" facts first), then the
  terms its lists define ("`max_connections`: ..."), then the subjects of its "X is Y" sentences;
- questions: from a "Label: value" fact of the topic's section when there is one ("Probable cause:
  worn bearings" -> "What is the most likely cause of ...?"); else from a sentence of a known shape
  ("X is a Y." -> "What is X?", "To do Y, use X." -> "How do I do Y?", "X does not Y." -> "Does X Y?",
  "You can Y." -> "Can I Y?"); else a question about the topic (a heading that asks, "Why use
  HTTP/2?", is asked as it is); completions cut a whole sentence at a clause boundary;
- answers: the fact or the most relevant whole sentences ("Yes, ..." / "No, ..." for yes/no questions);
  several samples (seeds) of one prompt give a best, a weaker (another part of the passage, or the
  wrong polarity) and a wrong (another passage) answer, so the judge has something to rank for
  preference pairs; temperature 0 always gives the best one;
- MCQ distractors and wrong endings: the same label's values / other definitions / predicates /
  sentences from OTHER passages of the same run (every prompt is observed, cached or not, so reruns
  see the same passages);
- judge: lexical scores (word-pair containment in the passage and in the question's section).
`malformed_every=n` turns every n-th reply into garbage (a test knob for the quarantine).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterator

from curation.synthetic.base import Completion, ResponseCache, Sampling, Teacher
from curation.synthetic.checks import (ADMONITION_WORDS, AUX_START, BOUNDARY_START, IMPERATIVES, VERB_HINTS,
                                       completion_problem, negated, passage_blocks, question_problem, whole_sentence)
from curation.synthetic.text import STOPWORDS as _STOP_SET, content_words, sentences, shingles, words

_TASK = re.compile(r"^\s*Task:\s*(.+?)\.?\s*$", re.M)
_PASSAGE = re.compile(r'"""\n?(.*?)\n?"""', re.S)
_SECTION_LINE = re.compile(r"^\s*Section:\s*(.*)$", re.M)
_TOPIC = re.compile(r'about "(.+?)"(?= that | from |\. |\.?$)', re.M)
_FACT = re.compile(r"^([A-Z][A-Za-z ]{1,30}?):\s+(.+?)\.?$")
_NUMBERING = re.compile(r"^(?:(?:chapter|section|part|appendix)\s+\w+\.?\s*|\d+(?:\.\d+)*\.?\s+|#+\s*)", re.I)
_OPTION = re.compile(r"^([A-D])\)\s+(.+)$", re.M)
_DEF = re.compile(r"^(`[^`]+`|[A-Za-z][\w .'/+-]{0,40}?)\s*(?::|\s[-–—]\s)\s+(.+)$")
_CODE_DEF = re.compile(r"^(`[^`]+`),\s+(.+)$")
_PRONOUN_SUBJECT = frozenset("it this that these those there they we you he she i here such".split())
# words that point outside the sentence: a question built around them asks about nothing ("What is one example?")
_DEICTIC = frozenset("""it its this that these those them they such above below following former latter last one
example examples either here""".split())
_IS = re.compile(r"^(?P<s>(?:The |An? )?[`A-Z][^,;:]{0,70}?) (?P<v>is|are) (?P<r>(?:an?|the|one)\b.{3,})\.$")
_TO = re.compile(r"^To (?P<goal>[a-z][^,]{5,90}), (?P<rest>.{8,})\.$")
_NEG = re.compile(r"^(?P<s>[`A-Z][^,;:]{0,70}?) (?P<aux>does|do|is|are|can|will|should|must) not (?P<r>.{4,})\.$")
_CAN = re.compile(r"^(?P<s>You|[`A-Z][^,;:]{0,70}?) (?P<aux>can|should|must|will) (?P<r>(?!not\b).{4,})\.$")
_YOU = {"you": "I", "your": "my", "yours": "mine", "yourself": "myself", "you're": "I'm", "you'll": "I'll",
        "you've": "I've"}


def _h(*parts: object) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def _strip_heading(line: str) -> str:
    return _NUMBERING.sub("", line.strip()).strip().strip("#").strip()


def _lc(s: str) -> str:
    """Lower-case a phrase's first letter when it is an ordinary capitalised word ("Making" -> "making"),
    never an acronym, a name in CamelCase or a Title Case Name."""
    w = s.split()
    if not w or not w[0][:1].isupper() or not w[0][1:].islower():
        return s
    if len(w) > 1 and sum(x[:1].isupper() for x in w[1:]) >= max(1, len(w[1:]) // 2 + 1):
        return s  # "Requests Compatibility Guide"
    return s[:1].lower() + s[1:]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _swap_person(text: str) -> str:
    return re.sub(r"\b(you're|you'll|you've|yourself|yours|your|you)\b", lambda m: _YOU[m.group(1).lower()], text,
                  flags=re.I)


def _good_label(label: str) -> bool:
    w = label.lower().split()
    return (1 <= len(w) <= 4 and not any(x in _STOP_SET or x in VERB_HINTS for x in w)
            and w[-1] not in ADMONITION_WORDS)


@dataclass
class _Section:
    heading: str
    sentences: list[str] = field(default_factory=list)     # whole sentences, facts included
    facts: list[tuple[str, str]] = field(default_factory=list)  # (label, value) of "Label: value" sentences
    defs: list[tuple[str, str]] = field(default_factory=list)   # (term, definition) of list entries

    @property
    def narrative(self) -> list[str]:
        return [s for s in self.sentences if not (_FACT.match(s) and _good_label(_FACT.match(s).group(1)))]

    def text(self) -> str:
        return " ".join([self.heading] + self.sentences + [f"{t}: {d}" for t, d in self.defs])


@lru_cache(maxsize=4096)  # every prompt of a chunk carries the same passage; parse it once
def _sections(passage: str) -> list[_Section]:
    """Sections of a passage: whole sentences, facts and definitions under each heading."""
    secs = [_Section("")]
    for b in passage_blocks(passage):
        if b.kind == "heading":
            secs.append(_Section(_strip_heading(b.text)))
        elif b.kind == "sentence":
            s = b.text
            m = _FACT.match(s)
            if m and _good_label(m.group(1)) and len(m.group(2).split()) >= 1 and not m.group(2).endswith(":"):
                secs[-1].facts.append((m.group(1).strip(), m.group(2).strip()))
                secs[-1].sentences.append(s if s[-1] in ".!?" else s + ".")
            elif whole_sentence(s) and not s.endswith("?"):  # a statement, not a question of the text's own
                secs[-1].sentences.append(s)
        elif b.kind == "item":
            s = b.text.strip()
            m = _DEF.match(s) or ((m2 := _CODE_DEF.match(s)) and m2.group(2)[:1].islower() and m2)
            if m and len(m.group(1).split()) <= 5 and len(words(re.sub(r"`[^`]*`", "", m.group(2)))) >= 3 \
                    and not set(words(m.group(1))) & VERB_HINTS and not m.group(2).rstrip().endswith(":"):
                term, definition = m.group(1).strip(), m.group(2).strip().rstrip(".")
                if _good_label(term) or term.startswith("`"):
                    secs[-1].defs.append((term, definition))
                    continue
            # a list entry is a sentence only when it says something ("A bed mesh probed with X." does not)
            for x in sentences(s):
                if whole_sentence(x) and not x.endswith("?") and words(x)[0] not in AUX_START \
                        and (set(words(x)) & VERB_HINTS or words(x)[0] in IMPERATIVES):
                    secs[-1].sentences.append(x)
    return [s for s in secs if s.sentences or s.defs]


def _overlap(a: str, b: str) -> float:
    wa, wb = set(content_words(a)), set(content_words(b))
    return len(wa & wb) / len(wa) if wa else 0.0


def _containment(answer: str, text: str, n: int = 2) -> float:
    sa, st = shingles(answer, n), shingles(text, n)
    return len(sa & st) / len(sa) if sa else 0.0


def _cut(sentence: str) -> tuple[str, str] | None:
    """A whole sentence cut at the clause boundary nearest its middle (both halves substantial), or None."""
    toks = sentence.split()
    best = None
    for k in range(4, len(toks) - 2):
        context, ending = " ".join(toks[:k]), " ".join(toks[k:])
        if context.count("`") % 2 or completion_problem(context, ending):
            continue
        first = words(toks[k])[0] if words(toks[k]) else ""
        if not (context[-1] in ",;:" or first in BOUNDARY_START):
            continue
        score = abs(k - 0.55 * len(toks)) - (2 if context[-1] in ",;:" else 0)
        if best is None or score < best[0]:
            best = (score, context, ending)
    return (best[1], best[2]) if best else None


def _pointing(text: str) -> bool:
    """Whether a phrase points outside its sentence ("this", "the following") or opens a subordinate clause
    ("If a target temperature ..." is no subject)."""
    w = words(text)
    return bool(set(w) & _DEICTIC) or (bool(w) and w[0] in BOUNDARY_START)


def _shapes(sentence: str) -> list[tuple[str, str, str]]:
    """(shape, question, answer) pairs a sentence of a known shape gives; the answer is the sentence itself."""
    out = []
    if (m := _IS.match(sentence)) and not negated(sentence):
        subj = m.group("s")
        if len(subj.split()) <= 7 and subj.split()[0].lower() not in _PRONOUN_SUBJECT \
                and not set(words(subj)) & VERB_HINTS and not _pointing(subj):
            out.append(("is", f"What {m.group('v')} {_lc(subj)}?", sentence))
    if (m := _TO.match(sentence)) and not _pointing(m.group("goal")):
        goal = _swap_person(m.group("goal"))
        out.append(("to", f"How do I {goal}?", sentence))
    if m := _NEG.match(sentence):
        subj = m.group("s")
        if len(subj.split()) <= 6 and not set(words(subj)) & (VERB_HINTS - {"can"}) \
                and not _pointing(subj + " " + m.group("r")):
            aux = m.group("aux")
            subj_q = "I" if subj.lower() == "you" else _lc(subj)
            out.append(("neg", f"{_cap(aux)} {subj_q} {_swap_person(m.group('r'))}?",
                        f"No, {_lc(sentence)}"))
    elif (m := _CAN.match(sentence)) and not negated(sentence):
        subj = m.group("s")
        if len(subj.split()) <= 6 and not set(words(subj)) & (VERB_HINTS - {"can"}) \
                and subj.split()[0].lower() not in _PRONOUN_SUBJECT - {"you"} \
                and not _pointing(subj + " " + m.group("r")):
            subj_q = "I" if subj.lower() == "you" else _lc(subj)
            out.append(("can", f"{_cap(m.group('aux'))} {subj_q} {_swap_person(m.group('r'))}?",
                        f"Yes, {_lc(sentence)}"))
    return [o for o in out if question_problem(o[1]) is None and len(o[1].split()) <= 30]


class RulesTeacher(Teacher):
    model_name = "rules-v3"  # v3: short answers and one-sentence summaries (ChainConfig.short_answers)

    def __init__(self, cache: ResponseCache | None = None, malformed_every: int = 0):
        super().__init__(cache)
        self.malformed_every = malformed_every
        self._passages: dict[str, list[_Section]] = {}
        self._replies = 0

    # -- the passages it has seen, for distractors from other chunks
    def observe(self, prompts: list[list[dict]]) -> None:
        # A chain run starts with one batch of topic prompts, one per chunk: the passages of that
        # batch become the pool of distractors, so held-out chunks seen in an earlier run (benchmark
        # generation) never leak into the SFT data of the next one.
        if any(_TASK.search(p[-1]["content"]) and "topic" in _TASK.search(p[-1]["content"]).group(1).lower()
               for p in prompts):
            self._passages = {}
        for p in prompts:
            m = _PASSAGE.search(p[-1]["content"])
            if m and m.group(1) not in self._passages:
                self._passages[m.group(1)] = _sections(m.group(1))

    def _others(self, passage: str) -> list[_Section]:
        return [s for p, secs in self._passages.items() if p != passage for s in secs]

    def _complete(self, prompts, sampling) -> Iterator[tuple[int, Completion]]:
        for i, p in enumerate(prompts):
            self._replies += 1
            if self.malformed_every and self._replies % self.malformed_every == 0:
                text = "Sorry, I am not sure what you mean."
            else:
                text = self.reply(p[-1]["content"], sampling)
            yield i, Completion(text=text, prompt_tokens=sum(len(m["content"].split()) for m in p),
                                completion_tokens=len(text.split()))

    # -- one reply
    def reply(self, prompt: str, sampling: Sampling) -> str:
        task_m, passage_m = _TASK.search(prompt), _PASSAGE.search(prompt)
        if not task_m or not passage_m:
            return "I need a task line and a passage in triple quotes."
        task, passage = task_m.group(1).lower(), passage_m.group(1)
        secs = _sections(passage)
        if not secs:
            return ""
        head_m = _SECTION_LINE.search(prompt)
        path = [_strip_heading(x) for x in head_m.group(1).split(" > ")] if head_m else []
        topic_m = _TOPIC.search(prompt)
        topic = topic_m.group(1) if topic_m else ""
        # where the topic stands: the headings above the chunk's first section (a chapter, the document's title)
        above = [x for x in path[:-1] if x.lower() != topic.lower()]
        top = above[-1] if above and len(above[-1].split()) > 1 else ""
        variant = 0 if sampling.temperature == 0 else (sampling.seed or 0) % 3
        # What follows the passage up to the task line: the question (and answer) to answer or grade.
        after = prompt[passage_m.end():]
        after = after.split("\nTask:")[0] if task_m.start() > passage_m.end() else after
        if "topic" in task:
            n = int(m.group(1)) if (m := re.search(r"List (\d+)", prompt)) else 2
            return "\n".join(f"Topic: {t}" for t in self._topics(secs, n, path[-1] if path else ""))
        if "multiple-choice" in task:
            return self._mcq(secs, topic, top, passage)
        if "open question" in task:
            return "Question: " + self._question(self._section_for(secs, topic), topic, top, passage, secs)
        if "completion" in task:
            return self._completion(self._section_for(secs, topic), topic, passage, secs)
        if "summary" in task:
            if topic.endswith("?"):
                return f"Request: Summarize how the passage answers this question: {topic}"
            return f"Request: Summarize what the passage says about {_lc(topic)}."
        if "grade" in task:
            q, _, a = after.partition("\n\nAnswer: ")
            return self._judge(secs, q.strip().removeprefix("Question: ").strip(), a.strip(), passage)
        if "answer" in task:
            asks = prompt[task_m.end():].lower()
            short = "in a few words" in asks or "one-sentence summary" in asks  # the *_short answer formats
            return self._answer(secs, after.strip().removeprefix("Question: ").strip(), passage, variant, short)
        return "I do not know this task."

    def _topics(self, secs: list[_Section], n: int, section: str) -> list[str]:
        ranked = ([s.heading for s in secs if s.heading and s.facts]
                  + [s.heading for s in secs if s.heading and not s.facts])
        ranked += [t for s in secs for t, _ in s.defs]
        for s in secs:  # the subjects of "X is a Y." sentences
            for sent in s.narrative:
                ranked += [_lc(m.group("s")) for m in [_IS.match(sent)] if m and _shapes(sent)]
        if section and not ranked:
            ranked.append(section)
        out, seen = [], set()
        for t in ranked:
            if t.lower() not in seen and len(t.split()) <= 12:
                seen.add(t.lower())
                out.append(t)
        return out[:n]

    def _section_for(self, secs: list[_Section], text: str) -> _Section:
        def score(s: _Section) -> tuple:
            defs = max((_overlap(text, t) for t, _ in s.defs), default=0.0)
            return (_overlap(text, s.heading) * 2 + _overlap(text, s.text()) + defs * 2, -secs.index(s))
        return max(secs, key=score)

    def _fact_for(self, sec: _Section, key: str, secs: list[_Section] | None = None) -> tuple[str, str] | None:
        """A fact of the section whose label recurs in most sections (a structured field, not a one-off)."""
        # a fact that only repeats the topic ("Symptom: hard starting" for "Hard starting") asks nothing
        facts = [f for f in sec.facts if len(f[1].split()) <= 10 and _overlap(f[1], sec.heading) < 0.5]
        if not facts:
            return None
        freq = {lab: sum(any(l2 == lab for l2, _ in s.facts) for s in (secs or [sec])) for lab, _ in facts}
        top = max(freq.values())
        common = [f for f in facts if freq[f[0]] == top]
        return common[_h(key) % len(common)]

    def _def_for(self, sec: _Section, topic: str) -> tuple[str, str] | None:
        return next((d for d in sec.defs if d[0].lower() == topic.lower()), None)

    def _shaped(self, sec: _Section, topic: str, shapes: tuple = ("is", "to", "neg", "can")) -> list[tuple]:
        """Shaped questions from the section's sentences, those about the topic first."""
        found = [(sh, q, a, s) for s in sec.narrative for sh, q, a in _shapes(s) if sh in shapes]
        return sorted(found, key=lambda x: (-_overlap(topic, x[3]), _h(topic, x[1])))

    def _question(self, sec: _Section, topic: str, top: str, passage: str, secs: list[_Section]) -> str:
        where = f" in {_lc(top)}" if top and _overlap(top, topic) < 0.5 else ""
        if topic.endswith("?") and question_problem(topic) is None:
            return topic  # a heading that asks: "Why use HTTP/2?"
        fact = self._fact_for(sec, topic + "qa", secs)
        if fact:
            label = fact[0].lower()
            if "cause" in label:
                return f"What is the most likely cause of {_lc(topic)}{where}?"
            if any(k in label for k in ("action", "remedy", "fix", "repair", "solution")):
                return f"How do I fix {_lc(topic)}{where}?"
            return f"What is the {label} for {_lc(topic)}{where}?"
        if d := self._def_for(sec, topic):
            return f"What is {d[0]}{where}?" if d[0].startswith("`") else f"What is meant by {_lc(d[0])}{where}?"
        shaped = self._shaped(sec, topic)
        if shaped:
            return shaped[0][1]
        forms = ["What does the documentation say about {t}{w}?", "Can you explain {t}{w}?",
                 "What should I know about {t}{w}?"]
        return forms[_h(topic, passage) % len(forms)].format(t=_lc(topic), w=where)

    def _mcq(self, secs, topic, top, passage) -> str:
        sec = self._section_for(secs, topic)
        where = f" in {_lc(top)}" if top and _overlap(top, topic) < 0.5 else ""
        fact = self._fact_for(sec, topic + "mcq", secs)
        pool: list[str] = []
        q, right = "", ""
        if fact:
            label, right = fact
            q = f"Which is the {label.lower()} of {_lc(topic)}{where}?"
            pool = [v for s in self._others(passage) + secs for lab, v in s.facts
                    if lab == label and v.lower() != right.lower()]
        elif d := self._def_for(sec, topic) or (sec.defs[_h(topic) % len(sec.defs)] if sec.defs and not sec.narrative
                                                else None):
            term, right = d
            q = f"What is {term}?" if term.startswith("`") else f"What is meant by {_lc(term)}?"
            pool = [x for s in secs + self._others(passage) for t, x in s.defs if t != term and x != right]
        else:
            for _, question, _, sent in self._shaped(sec, topic, ("is",)):
                m = _IS.match(sent)
                cand = [m2.group("r") for s in self._others(passage) for x in s.narrative
                        if (m2 := _IS.match(x)) and m2.group("r") != m.group("r")]
                if len(set(cand)) >= 3:
                    q, right, pool = question, m.group("r"), cand
                    break
        if not q:
            cands = sorted(sec.narrative, key=lambda s: (-_overlap(topic, s), sec.narrative.index(s)))
            if not cands:
                return "Question: \n"
            right = cands[0]
            q = topic if topic.endswith("?") else f"Which statement about {_lc(topic)} is true?"
            pool = [x for s in self._others(passage) for x in s.narrative
                    if len(x.split()) >= 5 and _overlap(x, passage) < 0.5]
        pool = sorted(set(pool) - {right}, key=lambda v: _h(topic, v))[:3]
        options = sorted([right] + pool, key=lambda v: _h(q, v))
        lines = [f"Question: {q}"] + [f"{'ABCD'[k]}) {_cap(o)}" for k, o in enumerate(options[:4])]
        return "\n".join(lines + [f"Answer: {'ABCD'[options.index(right)]}"])

    def _completion(self, sec: _Section, topic: str, passage: str, secs: list[_Section]) -> str:
        cands = sorted((s for s in sec.narrative if len(s.split()) >= 8),
                       key=lambda s: (-_overlap(topic, s), _h(topic, s)))
        cut = next((c for s in cands if (c := _cut(s))), None)
        if cut:
            context, ending = cut
        elif fact := self._fact_for(sec, topic + "completion", secs):
            context, ending = f"{fact[0]} for {_lc(topic)}:", fact[1] + "."
        else:
            return "Context: \nEnding: "
        wrong = [c[1] for s in self._others(passage) for x in s.narrative if len(x.split()) >= 8 and (c := _cut(x))]
        wrong = sorted(set(w for w in wrong if w != ending), key=lambda v: _h(topic, v))[:3]
        return "\n".join([f"Context: {context}", f"Ending: {ending}"] + [f"Wrong ending: {w}" for w in wrong])

    @staticmethod
    def _one_sentence_summary(sec: _Section) -> str:
        """What happened, its cause and its fix in one sentence, from the section's labelled facts and in their own
        words ("" without a cause): "Chatter marks on the CNC spindle: the probable cause is worn spindle bearings,
        and the corrective action is to replace the spindle bearings." """
        cause = next(((k, v) for k, v in sec.facts if "cause" in k.lower()), None)
        fix = next(((k, v) for k, v in sec.facts if any(w in k.lower() for w in ("action", "remedy", "fix", "repair"))),
                   None)
        facts = {k.lower(): v for k, v in sec.facts}
        what = facts.get("symptom") or sec.heading
        if not cause or not what:
            return ""
        where = f" on the {facts['equipment']}" if facts.get("equipment") else ""
        out = f"{_cap(what)}{where}: the {cause[0].lower()} is {cause[1]}"
        return out + (f", and the {fix[0].lower()} is to {_lc(fix[1])}." if fix else ".")

    def _answer(self, secs: list[_Section], question: str, passage: str, variant: int, short: bool = False) -> str:
        options = dict(_OPTION.findall(question))
        if options:  # multiple choice: the option best contained in the passage
            ranked = sorted(options, key=lambda k: (-_containment(options[k], passage, 1), k))
            k = ranked[min(variant, len(ranked) - 1)]
            return f"{k}) {options[k]}"
        if question.startswith("Complete the sentence:"):
            context = question.split(":", 1)[1].strip()
            full = next((s for sec in secs for s in sec.sentences if s.startswith(context)), None)
            if full is None and context.endswith(":"):  # "<Label> for <topic>:" made from a fact
                label = context[:-1].split(" for ")[0]
                sec = self._section_for(secs, context)
                full = next((f"{context} {v}." for lab, v in sec.facts if lab == label), None)
            pool = self._others(passage) if variant == 2 else secs
            others = [c[1] for sec in pool for s in sec.narrative if s != full and (c := _cut(s))]
            if full and variant == 0 or not others:
                return full[len(context):].strip() if full else ""
            return others[_h(question) % len(others)]
        asked = question.split("\n\n")[0]
        sec = self._section_for(secs, asked)
        if variant == 1:  # weaker: another part of the same passage
            rest = [s for s in secs if s is not sec] or secs
            sec = rest[_h(question) % len(rest)]
        elif variant == 2:  # wrong: another passage altogether
            others = self._others(passage)
            sec = others[_h(question) % len(others)] if others else sec
        if asked.lower().startswith("summarize") or "summary" in asked.lower():
            request = asked.split("\n")[0].lower()
            if short and (one := self._one_sentence_summary(sec)):
                return one
            parts = [f"{t}: {d}." for t, d in sec.defs if t.lower() in request]  # a term's summary is its definition
            parts += [f"{label}: {value}." for label, value in sec.facts[:2]] + sec.narrative[:1]
            if not parts:
                parts = sec.narrative[:3] or [f"{t}: {d}." for t, d in sec.defs[:3]]
            out: list[str] = []
            for p in parts or sec.sentences[:2]:
                if out and len(" ".join(out + [p]).split()) > 90:
                    break
                out.append(p)
            return " ".join(out)
        label_words = {"cause": ("cause",), "fix": ("action", "remedy", "fix", "repair")}
        want = "cause" if "cause" in asked.lower() else "fix" if "fix" in asked.lower() else ""
        fact = next((f for f in sec.facts if want and any(k in f[0].lower() for k in label_words[want])), None)
        if fact:
            if short:  # the value itself, as an extractive QA reference would give it
                return f"{_cap(fact[1])}."
            support = next((s for s in sec.narrative if _overlap(fact[1], s) >= 0.5), "")
            return f"The {fact[0].lower()} is {fact[1]}. {support}".strip()
        term = re.match(r"^What is (?:meant by )?(.+?)(?: in .+)?\?$", asked)
        d = next((d for s in ([sec] + secs) for d in s.defs if term and d[0].lower() == term.group(1).lower()), None)
        if d and variant == 0:
            return f"{_cap(d[1])}." if short else f"{d[0]}: {d[1]}."
        subject = m.group(1).lower() if (m := re.match(r"^What (?:is|are) (.+?)\?$", asked)) else None
        ranked = sorted(sec.narrative or sec.sentences,
                        key=lambda s: (not (subject and s.lower().startswith(subject)), -_overlap(asked, s)))
        if not ranked:
            return " ".join(f"{t}: {x}." for t, x in sec.defs[:2])
        first = asked.split()[0].lower() if asked.split() else ""
        yes_no = first in ("does", "do", "is", "are", "can", "should", "must", "will") \
            and not re.match(r"^(?:can|could|will|would) you\b", asked, re.I)  # "Can you explain ...?" is no yes/no
        if yes_no and variant != 2:
            best = ranked[0]
            no = negated(best) if variant == 0 else not negated(best)  # variant 1: the wrong polarity
            body = _lc(best)
            return f"{'No' if no else 'Yes'}, {body}"
        return ranked[0] if short else " ".join(ranked[:2])

    def _judge(self, secs, question: str, answer: str, passage: str) -> str:
        options = dict(_OPTION.findall(question))
        text = options.get(answer[:1], answer) if options and re.match(r"^[A-D]\)", answer) else answer
        asked = question.split("\n\n")[0]  # a summary request carries the passage after a blank line
        grounded = _containment(text, passage)
        correct = _containment(text, self._section_for(secs, asked).text())
        n = len(answer.split())
        if options:
            helpful = 5 if re.match(r"^[A-D]\)", answer) else 2
        else:
            helpful = 5 if 3 <= n <= 150 and _overlap(answer, asked) < 0.9 else 2
        well = 5 if answer[:1].isalnum() and answer[:1] == answer[:1].upper() else 3
        score = lambda x: 1 + round(4 * x)  # noqa: E731
        return (f"Grounded: {score(grounded)}\nCorrect: {score(correct)}\n"
                f"Helpful: {helpful}\nWell-formed: {well}")
