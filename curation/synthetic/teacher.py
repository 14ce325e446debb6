"""Teacher backends chosen by config: an OpenAI-compatible server, a local transformers model, or offline rules.

- `openai`: any OpenAI-compatible endpoint (vLLM, Ollama, NIM, llama.cpp server, `transformers
  serve`). A bounded pool of `max_concurrency` requests in flight, shared by all prompts of a
  call whatever their sampling (several answer samples of a question go out together, not one
  sample batch after another, each waiting for its slowest reply); retries with exponential
  backoff and jitter on 429, 5xx, timeouts and connection errors; after `max_retries` the run
  stops with `TeacherUnavailable` (answers received so far are already in the cache). The API key
  is read from the environment variable *named* by `api_key_env` and is never logged or stored:
  error texts are scrubbed of it, and the teacher's repr shows only the model name.
- `transformers`: a Hugging Face model directory or GGUF file (or "smollm2", the embedded
  SmolLM2-135M-Instruct), generated in process in batches with left padding and the model's
  chat template.
- `rules`: the deterministic offline writer (curation/synthetic/rules.py) for fast tests.
"""
from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from concurrent.futures import CancelledError, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from curation.synthetic.base import (Completion, ResponseCache, Sampling, Teacher, TeacherUnavailable,
                                     cache_key)
from curation.synthetic.rules import RulesTeacher

__all__ = ["Completion", "OpenAITeacher", "ResponseCache", "RulesTeacher", "Sampling", "Teacher", "TeacherConfig",
           "TeacherUnavailable", "TransformersTeacher", "cache_key", "make_teacher"]


@dataclass
class TeacherConfig:
    backend: str = "rules"                      # openai | transformers | rules
    base_url: str = "http://127.0.0.1:8000/v1"  # openai backend
    model: str = ""                             # openai: the served model name (empty = the server's first model)
    api_key_env: str = ""                       # NAME of the env var holding the API key (empty = no key)
    model_path: str = "smollm2"                 # transformers: HF dir, GGUF file, or "smollm2" (the embedded model)
    models_dir: str = ""                        # where a GGUF is converted once (default: <cache_dir>/models)
    max_concurrency: int = 8                    # openai: requests in flight
    timeout_s: float = 120.0                    # openai: per request
    max_retries: int = 4                        # openai: retries of one request on 429/5xx/timeouts/connection errors
    backoff_base_s: float = 0.5                 # openai: first retry delay; doubles each retry (with jitter)
    backoff_max_s: float = 8.0
    batch_size: int = 8                         # transformers: prompts per generate() call
    cache_dir: str = ""                         # response cache folder (empty = no cache)
    rules_malformed_every: int = 0              # rules: every n-th reply deliberately malformed (test knob)


def open_cache(cache_dir: str | Path) -> ResponseCache | None:
    return ResponseCache(Path(cache_dir) / "responses.sqlite") if str(cache_dir) else None


class _Retryable(Exception):
    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class OpenAITeacher(Teacher):
    """Chat completions from an OpenAI-compatible server, many in flight, each retried with backoff."""

    def __init__(self, cfg: TeacherConfig, cache: ResponseCache | None = None):
        super().__init__(cache)
        import openai

        self.cfg = cfg
        if cfg.api_key_env:
            if cfg.api_key_env not in os.environ:
                raise ValueError(f"the teacher's API key variable {cfg.api_key_env} is not set in the environment")
            self._secret = os.environ[cfg.api_key_env]
        else:
            self._secret = ""
        # The client retries nothing itself: retries, backoff and their counts are ours.
        self._client = openai.OpenAI(base_url=cfg.base_url, api_key=self._secret or "not-needed",
                                     max_retries=0, timeout=cfg.timeout_s)
        self._down = threading.Event()
        self.model_name = cfg.model or ""

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _resolve_model(self) -> None:
        if self.model_name:
            return
        try:
            models = [m.id for m in self._client.models.list()]
        except Exception as e:  # noqa: BLE001 - any failure here means the server is not usable
            raise TeacherUnavailable(f"teacher server at {self.cfg.base_url} did not list its models "
                                     f"({type(e).__name__}); set the model name in the teacher config") from None
        if not models:
            raise TeacherUnavailable(f"teacher server at {self.cfg.base_url} serves no model")
        self.model_name = models[0]

    def generate(self, prompts: list[list[dict]], sampling: Sampling | Sequence[Sampling]) -> list[Completion]:
        self._resolve_model()
        return super().generate(prompts, sampling)

    def _request(self, messages: list[dict], sampling: Sampling) -> Completion:
        import openai

        last = ""
        for attempt in range(self.cfg.max_retries + 1):
            if self._down.is_set():
                raise TeacherUnavailable(f"teacher server at {self.cfg.base_url} is unreachable")
            if attempt:
                self._count(retries=1)
                delay = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2 ** (attempt - 1))
                time.sleep(delay * (0.5 + random.random()))
            try:
                extra = {"seed": sampling.seed} if sampling.seed is not None else {}
                resp = self._client.chat.completions.create(
                    model=self.model_name, messages=messages, temperature=sampling.temperature,
                    top_p=sampling.top_p, max_tokens=sampling.max_tokens, **extra)
                usage = getattr(resp, "usage", None)
                text = resp.choices[0].message.content if resp.choices else None
                return Completion(text=text or "", prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                                  completion_tokens=getattr(usage, "completion_tokens", 0) or 0)
            except openai.APITimeoutError:
                last = "timeout"
            except openai.APIConnectionError:
                last = "connection error"
            except openai.APIStatusError as e:
                if e.status_code in (408, 409, 429) or e.status_code >= 500:
                    last = f"HTTP {e.status_code}"
                else:  # the request itself is wrong (400, 404 ...): retrying cannot help
                    return Completion(text=None, error=self._scrub(f"HTTP {e.status_code}: {e.message}")[:300])
            except Exception as e:  # noqa: BLE001 - a malformed response is one failed item, not a crashed run
                return Completion(text=None, error=self._scrub(f"{type(e).__name__}: {e}")[:300])
        self._down.set()
        raise TeacherUnavailable(f"teacher server at {self.cfg.base_url} (model {self.model_name!r}) failed "
                                 f"{self.cfg.max_retries + 1} attempts; last error: {last}. Answers received so far "
                                 f"are cached; restart the server and rerun.")

    def _complete(self, prompts, sampling) -> Iterator[tuple[int, Completion]]:
        return self._complete_each(prompts, [sampling] * len(prompts))

    def _complete_each(self, prompts, samplings) -> Iterator[tuple[int, Completion]]:
        # One pool for every prompt whatever its sampling: the pool stays full until the last reply.
        self._down.clear()
        unavailable: TeacherUnavailable | None = None
        with ThreadPoolExecutor(max_workers=max(1, self.cfg.max_concurrency)) as pool:
            futures = {pool.submit(self._request, p, s): j for j, (p, s) in enumerate(zip(prompts, samplings))}
            for fut in as_completed(futures):
                try:
                    completion = fut.result()
                except CancelledError:
                    continue
                except TeacherUnavailable as e:
                    if unavailable is None:
                        unavailable = e
                        for other in futures:
                            other.cancel()
                    continue
                yield futures[fut], completion  # cached by the caller right now, before the next one
        if unavailable is not None:
            raise unavailable


def _dir_fingerprint(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.name}|{st.st_size}|{int(st.st_mtime)}".encode())
    return h.hexdigest()[:10]


class TransformersTeacher(Teacher):
    """A causal LM in this process: batched, left-padded generation through the model's chat template."""

    def __init__(self, cfg: TeacherConfig, cache: ResponseCache | None = None):
        super().__init__(cache)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not cfg.model_path:
            raise ValueError("the transformers teacher needs model_path: a model directory, a GGUF file or 'smollm2'")
        path = Path(cfg.model_path).expanduser()
        if cfg.model_path in ("smollm2", "embedded") or path.suffix == ".gguf":
            from training.open_model import ensure_hf_model

            models_dir = Path(cfg.models_dir) if cfg.models_dir else (
                Path(cfg.cache_dir) / "models" if cfg.cache_dir else Path.home() / ".cache" / "modelworks" / "models")
            name = "smollm2" if cfg.model_path in ("smollm2", "embedded") else path.stem
            path = ensure_hf_model(cfg.model_path, models_dir / name)
        self.cfg = cfg
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        # The weights' fingerprint is part of the name, so a retrained model never reads stale cache entries.
        self.model_name = cfg.model or f"{path.name}@{_dir_fingerprint(path)}"

    def _complete(self, prompts, sampling) -> Iterator[tuple[int, Completion]]:
        import torch

        tok = self.tokenizer
        texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
        # Similar lengths in one batch waste less compute on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        bs = max(1, self.cfg.batch_size)
        for start in range(0, len(order), bs):
            idx = order[start:start + bs]
            try:
                enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
                torch.manual_seed(sampling.seed if sampling.seed is not None else 0)
                kwargs = dict(max_new_tokens=sampling.max_tokens, pad_token_id=tok.pad_token_id)
                if sampling.temperature > 0:
                    kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
                else:
                    kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
                with torch.no_grad():
                    out = self.model.generate(**enc, **kwargs)
                new = out[:, enc["input_ids"].shape[1]:]
            except Exception as e:  # noqa: BLE001 - one failed batch is counted, the run goes on
                for i in idx:
                    yield i, Completion(text=None, error=f"{type(e).__name__}: {e}"[:300])
                continue
            for row, i in enumerate(idx):
                ids = new[row].tolist()
                n = next((k for k, t in enumerate(ids) if t in (tok.eos_token_id, tok.pad_token_id)), len(ids))
                yield i, Completion(text=tok.decode(ids[:n], skip_special_tokens=True).strip(),
                                    prompt_tokens=int(enc["attention_mask"][row].sum()), completion_tokens=n)


def make_teacher(cfg: TeacherConfig) -> Teacher:
    cache = open_cache(cfg.cache_dir)
    if cfg.backend == "openai":
        return OpenAITeacher(cfg, cache)
    if cfg.backend == "transformers":
        return TransformersTeacher(cfg, cache)
    if cfg.backend == "rules":
        return RulesTeacher(cache, malformed_every=cfg.rules_malformed_every)
    raise ValueError(f"unknown teacher backend {cfg.backend!r}: choose openai, transformers or rules")
