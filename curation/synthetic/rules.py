"""The offline rules teacher: answers the chain's own prompts by extraction from the passage in the prompt.

No model: it recognises the task from the prompt's first line ("Task: ...") and reads the passage
between triple quotes. It works on any text:
- topics: the passage's section headings (sections holding "Label: value" facts first), then
  frequent content-word pairs;
- questions: from a "Label: value" fact of the topic's section when there is one ("Probable cause:
  worn bearings" -> "What is the probable cause of ...?"), else from its sentences;
- answers: the fact or the most relevant sentences; several samples (seeds) of one prompt give a
  best, a weaker (another part of the passage) and a wrong (another passage) answer, so the judge
  has something to rank for preference pairs; temperature 0 always gives the best one;
- MCQ distractors and wrong endings: the same label's values / sentences from OTHER passages of
  the same run (every prompt is observed, cached or not, so reruns see the same passages);
- judge: lexical scores (word-pair containment in the passage and in the question's section).
`malformed_every=n` turns every n-th reply into garbage (a test knob for the quarantine).
"""
from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Iterator

from curation.synthetic.base import Completion, ResponseCache, Sampling, Teacher
from curation.synthetic.text import STOPWORDS as _STOP_SET, content_words, sentences, shingles, words

_TASK = re.compile(r"^\s*Task:\s*(.+?)\.?\s*$", re.M)
_PASSAGE = re.compile(r'"""\n?(.*?)\n?"""', re.S)
_SECTION_LINE = re.compile(r"^\s*Section:\s*(.*)$", re.M)
_TOPIC = re.compile(r'about "([^"]+)"')
_FACT = re.compile(r"^([A-Z][A-Za-z ]{1,30}?):\s+(.+?)\.?$")
_NUMBERING = re.compile(r"^(?:(?:chapter|section|part|appendix)\s+\w+\.?\s*|\d+(?:\.\d+)*\.?\s+|#+\s*)", re.I)
_OPTION = re.compile(r"^([A-D])\)\s+(.+)$", re.M)


def _h(*parts: object) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def _is_heading(line: str) -> bool:
    s = line.strip()
    return bool(s) and (s.startswith("#") or (len(s.split()) <= 12 and s[-1] not in ".!?:;,"
                                                  and (s[0].isupper() or s[0].isdigit())))


def _strip_heading(line: str) -> str:
    return _NUMBERING.sub("", line.strip()).strip().strip("#").strip()


def _lc(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:2] != s[:2].upper() else s


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


@dataclass
class _Section:
    heading: str
    sentences: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)  # (label, value)

    @property
    def narrative(self) -> list[str]:
        return [s for s in self.sentences if not _FACT.match(s)]

    def text(self) -> str:
        return " ".join([self.heading] + self.sentences)


@lru_cache(maxsize=4096)  # every prompt of a chunk carries the same passage; parse it once
def _sections(passage: str) -> list[_Section]:
    """Sections of a passage: heading lines open one; hard-wrapped lines of a paragraph are joined."""
    secs = [_Section("")]
    lines: list[str] = []

    def flush():
        if lines:
            for s in sentences(" ".join(lines)):
                secs[-1].sentences.append(s)
                if (m := _FACT.match(s)) and len(m.group(1).split()) <= 4:
                    secs[-1].facts.append((m.group(1).strip(), m.group(2).strip()))
            lines.clear()

    in_fence = False
    for line in passage.splitlines():
        if line.strip().startswith(("```", "~~~")):
            flush()
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if not line.strip():
            flush()
        elif _is_heading(line) and not lines:
            secs.append(_Section(_strip_heading(line)))
        elif re.match(r"^\s*(?:[-*•+]|\d+[.)])\s+", line):  # a list item is a sentence of its own
            flush()
            lines.append(re.sub(r"^\s*(?:[-*•+]|\d+[.)])\s+", "", line).strip())
            flush()
        else:
            lines.append(line.strip())
    flush()
    return [s for s in secs if s.sentences]


def _overlap(a: str, b: str) -> float:
    wa, wb = set(content_words(a)), set(content_words(b))
    return len(wa & wb) / len(wa) if wa else 0.0


def _containment(answer: str, text: str, n: int = 2) -> float:
    sa, st = shingles(answer, n), shingles(text, n)
    return len(sa & st) / len(sa) if sa else 0.0


class RulesTeacher(Teacher):
    model_name = "rules-v1"

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
        top = _strip_heading(head_m.group(1).split(" > ")[0]) if head_m else ""
        topic_m = _TOPIC.search(prompt)
        topic = topic_m.group(1) if topic_m else ""
        variant = 0 if sampling.temperature == 0 else (sampling.seed or 0) % 3
        # What follows the passage up to the task line: the question (and answer) to answer or grade.
        after = prompt[passage_m.end():]
        after = after.split("\nTask:")[0] if task_m.start() > passage_m.end() else after
        if "topic" in task:
            n = int(m.group(1)) if (m := re.search(r"List (\d+)", prompt)) else 2
            return "\n".join(f"Topic: {t}" for t in self._topics(secs, n))
        if "multiple-choice" in task:
            return self._mcq(secs, topic, top, passage)
        if "open question" in task:
            return "Question: " + self._question(self._section_for(secs, topic), topic, top, passage, secs)
        if "completion" in task:
            return self._completion(self._section_for(secs, topic), topic, passage, secs)
        if "summary" in task:
            return f"Request: Summarize what the passage says about {_lc(topic)}."
        if "grade" in task:
            q, _, a = after.partition("\n\nAnswer: ")
            return self._judge(secs, q.strip().removeprefix("Question: ").strip(), a.strip(), passage)
        if "answer" in task:
            return self._answer(secs, after.strip().removeprefix("Question: ").strip(), passage, variant)
        return "I do not know this task."

    def _topics(self, secs: list[_Section], n: int) -> list[str]:
        ranked = ([s.heading for s in secs if s.heading and s.facts]
                  + [s.heading for s in secs if s.heading and not s.facts])
        out = list(dict.fromkeys(ranked))
        if len(out) < n:  # no (or few) headings: frequent pairs of adjacent content words
            counts: dict[str, int] = {}
            for s in secs:
                for sent in s.sentences:
                    w = [x for x in words(sent)]
                    for a, b in zip(w, w[1:]):
                        if a in _STOP_SET or b in _STOP_SET or len(a) < 3 or len(b) < 3:
                            continue
                        counts[f"{a} {b}"] = counts.get(f"{a} {b}", 0) + 1
            out += [k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if k not in out]
        return out[:n]

    def _section_for(self, secs: list[_Section], text: str) -> _Section:
        return max(secs, key=lambda s: (_overlap(text, s.heading) * 2 + _overlap(text, s.text()), -secs.index(s)))

    def _fact_for(self, sec: _Section, key: str, secs: list[_Section] | None = None) -> tuple[str, str] | None:
        """A fact of the section whose label recurs in most sections (a structured field, not a one-off)."""
        facts = [f for f in sec.facts if len(f[1].split()) <= 10]
        if not facts:
            return None
        freq = {lab: sum(any(l2 == lab for l2, _ in s.facts) for s in (secs or [sec])) for lab, _ in facts}
        top = max(freq.values())
        common = [f for f in facts if freq[f[0]] == top]
        return common[_h(key) % len(common)]

    def _question(self, sec: _Section, topic: str, top: str, passage: str, secs: list[_Section]) -> str:
        where = f" in {_lc(top)}" if top and _overlap(top, topic) < 0.5 else ""
        fact = self._fact_for(sec, topic + "qa", secs)
        if fact:
            label = fact[0].lower()
            if "cause" in label:
                return f"What is the most likely cause of {_lc(topic)}{where}?"
            if any(k in label for k in ("action", "remedy", "fix", "repair", "solution")):
                return f"How do I fix {_lc(topic)}{where}?"
            return f"What is the {label} for {_lc(topic)}{where}?"
        forms = ["What does the documentation say about {t}{w}?", "Can you explain {t}{w}?",
                 "What should I know about {t}{w}?"]
        return forms[_h(topic, passage) % len(forms)].format(t=_lc(topic), w=where)

    def _mcq(self, secs, topic, top, passage) -> str:
        sec = self._section_for(secs, topic)
        where = f" in {_lc(top)}" if top and _overlap(top, topic) < 0.5 else ""
        fact = self._fact_for(sec, topic + "mcq", secs)
        pool: list[str]
        if fact:
            label, right = fact
            q = f"Which is the {label.lower()} of {_lc(topic)}{where}?"
            pool = [v for s in self._others(passage) + secs for lab, v in s.facts
                    if lab == label and v.lower() != right.lower()]
        else:
            right = (sec.narrative or sec.sentences)[0]
            q = f"Which statement about {_lc(topic)} is true?"
            pool = [x for s in self._others(passage) for x in s.narrative
                    if x.endswith(".") and len(x.split()) >= 5 and _overlap(x, passage) < 0.5]
        pool = sorted(set(pool), key=lambda v: _h(topic, v))[:3]
        options = sorted([right] + pool, key=lambda v: _h(q, v))
        lines = [f"Question: {q}"] + [f"{'ABCD'[k]}) {_cap(o)}" for k, o in enumerate(options[:4])]
        return "\n".join(lines + [f"Answer: {'ABCD'[options.index(right)]}"])

    @staticmethod
    def _split(sentence: str) -> tuple[str, str]:
        w = sentence.split()
        k = max(3, int(len(w) * 0.55))
        return " ".join(w[:k]), " ".join(w[k:])

    def _completion(self, sec: _Section, topic: str, passage: str, secs: list[_Section]) -> str:
        cands = sorted((s for s in sec.narrative if len(s.split()) >= 8),
                       key=lambda s: (-_overlap(topic, s), _h(topic, s)))
        if cands:
            context, ending = self._split(cands[0])
        elif fact := self._fact_for(sec, topic + "completion", secs):
            context, ending = f"{fact[0]} for {_lc(topic)}:", fact[1] + "."
        else:
            return "Context: \nEnding: "
        wrong = [self._split(s)[1] for s in self._others(passage) for s in s.narrative if len(s.split()) >= 8]
        wrong = sorted(set(w for w in wrong if w != ending), key=lambda v: _h(topic, v))[:3]
        return "\n".join([f"Context: {context}", f"Ending: {ending}"] + [f"Wrong ending: {w}" for w in wrong])

    def _answer(self, secs: list[_Section], question: str, passage: str, variant: int) -> str:
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
            others = [self._split(s)[1] for sec in pool for s in sec.narrative if s != full and len(s.split()) >= 6]
            if full and variant == 0 or not others:
                return full[len(context):].strip() if full else ""
            return others[_h(question) % len(others)]
        sec = self._section_for(secs, question.split("\n\n")[0])
        if variant == 1:  # weaker: another part of the same passage
            rest = [s for s in secs if s is not sec] or secs
            sec = rest[_h(question) % len(rest)]
        elif variant == 2:  # wrong: another passage altogether
            others = self._others(passage)
            sec = others[_h(question) % len(others)] if others else sec
        if question.lower().startswith("summarize") or "summary" in question.lower()[:80]:
            parts = [f"{label}: {value}." for label, value in sec.facts[:2]] + sec.narrative[:1]
            return " ".join(parts or sec.sentences[:2])
        label_words = {"cause": ("cause",), "fix": ("action", "remedy", "fix", "repair")}
        want = "cause" if "cause" in question.lower() else "fix" if "fix" in question.lower() else ""
        fact = next((f for f in sec.facts if want and any(k in f[0].lower() for k in label_words[want])), None)
        if fact:
            support = next((s for s in sec.narrative if _overlap(fact[1], s) >= 0.5), "")
            return f"The {fact[0].lower()} is {fact[1]}. {support}".strip()
        ranked = sorted(sec.sentences, key=lambda s: -_overlap(question, s))
        return " ".join(ranked[:2])

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


