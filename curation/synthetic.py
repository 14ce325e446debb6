"""Guided synthetic data: seed manuals -> grounded facts -> SFT conversations and preference pairs.

The embedded default teacher is offline and rule-guided: it parses the troubleshooting entries
of the seed manuals ("Probable cause: ... Corrective action: ..."), asks questions about them in
several phrasings, answers from the manual, and a judge keeps only answers that agree with the
source entry. Preference pairs use the grounded answer as `chosen` and a plausible wrong answer
(another fault of the same machine) as `rejected`. A hosted teacher (an OpenAI-compatible
endpoint) can replace the question/answer writer; the grounding and the judge stay the same.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

_CHAPTER = re.compile(r"^Chapter \d+\. The (?P<equipment>.+)$")
_ENTRY = re.compile(r"^\d+\.\d+ (?P<symptom>.+)$")
_BODY = re.compile(r"^Probable cause: (?P<cause>[^.]+)\. Corrective action: (?P<fix>[^.]+)\.")


@dataclass(frozen=True)
class ManualEntry:
    source: str
    equipment: str
    symptom: str
    cause: str
    fix: str


@dataclass(frozen=True)
class SyntheticConfig:
    questions_per_entry: int = 4
    seed: int = 0


def parse_manual(text: str, source: str) -> list[ManualEntry]:
    """Troubleshooting entries of one manual; lines that do not fit the pattern are ignored."""
    entries, equipment, symptom = [], None, None
    for line in text.splitlines():
        line = line.strip()
        if m := _CHAPTER.match(line):
            equipment, symptom = m["equipment"], None
        elif m := _ENTRY.match(line):
            symptom = m["symptom"][:1].lower() + m["symptom"][1:]
        elif (m := _BODY.match(line)) and equipment and symptom:
            entries.append(ManualEntry(source, equipment, symptom, m["cause"], m["fix"]))
            symptom = None
    return entries


def parse_seed_corpus(paths: list[str | Path]) -> list[ManualEntry]:
    entries = []
    for p in sorted(map(Path, paths)):
        entries += parse_manual(p.read_text(encoding="utf-8"), p.name)
    return entries


_QUESTIONS = [
    ("cause", "What is the most likely cause of {symptom} in a {equipment}?"),
    ("cause", "My {equipment} shows {symptom}. What should I check first?"),
    ("cause", "Why would a {equipment} develop {symptom}?"),
    ("fix", "How do I fix {symptom} on a {equipment}?"),
    ("fix", "Which repair corrects {symptom} in a {equipment}?"),
    ("diagnose", "Diagnose this: a {equipment} with {symptom}. Give the cause and the fix."),
]


def _answer(entry: ManualEntry, kind: str, cause: str, fix: str) -> str:
    if kind == "cause":
        return f"The most likely cause is {cause}. To correct it, {fix}."
    if kind == "fix":
        return f"{fix[:1].upper() + fix[1:]}. The usual cause of {entry.symptom} is {cause}."
    return f"Cause: {cause}. Fix: {fix}."


def judge(answer: str, entry: ManualEntry) -> bool:
    """Rule judge: an answer is grounded when it names the manual's cause and fix for the symptom."""
    text = answer.lower()
    return entry.cause.lower() in text and entry.fix.lower() in text


def generate(entries: list[ManualEntry], config: SyntheticConfig = SyntheticConfig()) -> dict:
    """SFT conversations and preference pairs from manual entries, plus generation statistics."""
    rng = random.Random(config.seed)
    sft, prefs, rejected_by_judge = [], [], 0
    for entry in entries:
        same_machine = [e for e in entries if e.equipment == entry.equipment and e.cause != entry.cause]
        for kind, template in rng.sample(_QUESTIONS, min(config.questions_per_entry, len(_QUESTIONS))):
            question = template.format(symptom=entry.symptom, equipment=entry.equipment)
            answer = _answer(entry, kind, entry.cause, entry.fix)
            if not judge(answer, entry):
                rejected_by_judge += 1
                continue
            sft.append({"messages": [{"role": "user", "content": question},
                                     {"role": "assistant", "content": answer}],
                        "source": entry.source, "equipment": entry.equipment})
            if same_machine:
                wrong = rng.choice(same_machine)
                prefs.append({"prompt": [{"role": "user", "content": question}],
                              "chosen": [{"role": "assistant", "content": answer}],
                              "rejected": [{"role": "assistant",
                                            "content": _answer(entry, kind, wrong.cause, wrong.fix)}],
                              "source": entry.source})
    return {"sft": sft, "preferences": prefs,
            "stats": {"entries": len(entries), "sft_conversations": len(sft), "preference_pairs": len(prefs),
                      "rejected_by_judge": rejected_by_judge,
                      "equipment": len({e.equipment for e in entries})}}
