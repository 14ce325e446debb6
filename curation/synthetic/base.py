"""The teacher contract: chat prompts in, completions out, through an on-disk response cache.

Every backend (OpenAI-compatible server, in-process transformers model, offline rules) shares
`Teacher.generate`: identical requests are sent once, answered ones are read from the cache,
and each new answer is written to the cache the moment it arrives, so a killed run keeps what
was answered and a rerun sends no request twice. The cache key is sha256 of (model, messages,
sampling parameters).
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 256
    seed: int | None = None  # also tells apart the cache entries of several samples of one prompt


@dataclass
class Completion:
    text: str | None              # None when the request failed (see error)
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False


class TeacherUnavailable(RuntimeError):
    """The teacher could not be reached after all retries; answered prompts stay in the cache."""


def cache_key(model: str, messages: list[dict], sampling: Sampling) -> str:
    payload = json.dumps({"model": model, "messages": messages, "sampling": asdict(sampling)},
                         sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResponseCache:
    """Answers on disk in one SQLite file (WAL mode): safe for several threads and processes.

    Only successful completions are stored; a failed request is asked again on the next run.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, text TEXT, "
                         "prompt_tokens INTEGER, completion_tokens INTEGER, created REAL)")

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT text, prompt_tokens, completion_tokens FROM responses WHERE key=?",
                                   (key,)).fetchone()
        if row is None:
            return None
        return Completion(text=row[0], prompt_tokens=row[1], completion_tokens=row[2], cached=True)

    def put(self, key: str, model: str, completion: Completion) -> None:
        if completion.text is None:
            return
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                             (key, model, completion.text, completion.prompt_tokens,
                              completion.completion_tokens, time.time()))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _new_stats() -> dict:
    return {"requests": 0, "cache_hits": 0, "prompt_tokens": 0, "completion_tokens": 0, "retries": 0, "errors": 0}


class Teacher(ABC):
    """A chat model. Subclasses implement `_complete`; caching, de-duplication and stats live here."""

    model_name: str = ""

    def __init__(self, cache: ResponseCache | None = None):
        self.cache = cache
        self.stats: dict = _new_stats()
        self._stats_lock = threading.Lock()

    def __repr__(self) -> str:  # never shows clients, keys or headers
        return f"{type(self).__name__}(model={self.model_name!r})"

    def observe(self, prompts: list[list[dict]]) -> None:
        """Hook called with every prompt before the cache is consulted (the rules teacher reads passages)."""

    def generate(self, prompts: list[list[dict]], sampling: Sampling | Sequence[Sampling]) -> list[Completion]:
        """One completion per prompt (chat messages), in order; failed ones have text=None and an error.

        `sampling` is one setting for all prompts or one per prompt (several answer samples of a question
        differ in seed): prompts of different samplings go out together, not as one batch after another.
        """
        samplings = [sampling] * len(prompts) if isinstance(sampling, Sampling) else list(sampling)
        if len(samplings) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(samplings)} sampling settings")
        self.observe(prompts)
        keys = [cache_key(self.model_name, p, s) for p, s in zip(prompts, samplings)]
        out: list[Completion | None] = [None] * len(prompts)
        todo: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                out[i] = hit
                self._count(cache_hits=1)
            elif key in todo:
                todo[key].append(i)  # the same request twice in one call: ask once
            else:
                todo[key] = [i]
        first = [idxs[0] for idxs in todo.values()]
        for j, completion in self._complete_each([prompts[i] for i in first], [samplings[i] for i in first]):
            i = first[j]
            self._count(requests=1, prompt_tokens=completion.prompt_tokens,
                        completion_tokens=completion.completion_tokens, errors=int(completion.text is None))
            if self.cache is not None:
                self.cache.put(keys[i], self.model_name, completion)
            for k in todo[keys[i]]:
                out[k] = completion
        return [c if c is not None else Completion(text=None, error="not answered") for c in out]

    def _complete_each(self, prompts: list[list[dict]], samplings: list[Sampling]) -> Iterator[tuple[int, Completion]]:
        """Like `_complete`, with a sampling per prompt. By default one `_complete` per distinct sampling, in
        turn (a local model batches one generation setting at a time); a backend that can mix settings in
        flight (a server) overrides this, so that no group waits for the slowest reply of the one before."""
        for s in dict.fromkeys(samplings):
            idx = [i for i, x in enumerate(samplings) if x == s]
            for j, completion in self._complete([prompts[i] for i in idx], s):
                yield idx[j], completion

    def _count(self, **deltas: int) -> None:
        with self._stats_lock:
            for k, v in deltas.items():
                self.stats[k] = self.stats.get(k, 0) + v

    @abstractmethod
    def _complete(self, prompts: list[list[dict]], sampling: Sampling) -> Iterator[tuple[int, Completion]]:
        """Yield (index into prompts, completion) as answers arrive, in any order."""
