"""Versioned prompt templates: a TOML file per version, packaged (prompts/v1.toml) or in a folder of the user's."""
from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

PACKAGED_PROMPTS_DIR = Path(__file__).parent / "prompts"
TASKS = ("topics", "question_mcq", "question_qa", "question_completion", "question_summarization", "answer", "judge")
SFT_KINDS = ("mcq", "qa", "completion", "summarization")


@dataclass(frozen=True)
class PromptSet:
    version: str
    sha: str                    # first 8 hex digits of sha256 over the templates: edits show even without a new version
    templates: dict             # task -> {"system": str, "user": str}
    sft: dict                   # kind -> user-turn template
    answer_format: dict         # kind -> how the answer should look ({answer_format} in the answer template)

    def messages(self, task: str, **values: object) -> list[dict]:
        t = self.templates[task]
        msgs = [{"role": "system", "content": fill(t["system"], values)}] if t.get("system") else []
        return msgs + [{"role": "user", "content": fill(t["user"], values)}]

    def sft_user(self, kind: str, **values: object) -> str:
        return fill(self.sft[kind], values)


def fill(template: str, values: dict) -> str:
    """Plain substitution of {name} placeholders: braces in passages or other text are left alone."""
    for k, v in values.items():
        template = template.replace("{" + k + "}", str(v))
    return template


def load_prompts(version: str = "v1", prompts_dir: str | Path = "") -> PromptSet:
    folder = Path(prompts_dir) if str(prompts_dir) else PACKAGED_PROMPTS_DIR
    path = folder / f"{version}.toml"
    if not path.exists():
        have = sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []
        raise FileNotFoundError(f"no prompt file {path} (versions there: {have})")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    if data.get("version") != version:
        raise ValueError(f"{path} declares version {data.get('version')!r}, expected {version!r}")
    missing = [t for t in TASKS if t not in data or "user" not in data[t]]
    missing += [f"sft.{k}" for k in SFT_KINDS if k not in data.get("sft", {})]
    if missing:
        raise ValueError(f"{path} lacks templates: {missing}")
    templates = {t: {"system": data[t].get("system", ""), "user": data[t]["user"]} for t in TASKS}
    sft = {k: data["sft"][k] for k in SFT_KINDS}
    answer_format = {k: data.get("answer_format", {}).get(k, "") for k in (*SFT_KINDS, "qa_short", "summarization_short")}
    sha = hashlib.sha256(json.dumps([templates, sft, answer_format], sort_keys=True).encode()).hexdigest()[:8]
    return PromptSet(version=version, sha=sha, templates=templates, sft=sft, answer_format=answer_format)
