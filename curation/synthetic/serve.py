"""Run a local teacher behind `transformers serve` on 127.0.0.1: start it, wait until it answers, stop it by pid.

`serve_model(model_dir)` launches `transformers serve <model_dir>` (the model pinned, loaded at
start, offline: HF_HUB_OFFLINE=1) in its own process group, waits until `GET /v1/models`
answers, and returns a `TeacherServer` handle with `.base_url` (for `TeacherConfig.base_url`),
`.model_name` (the name the OpenAI API expects: the served directory's path, exactly as given to
the server; see `_sampling_view` for why it may be a view of `model_dir`) and `.pid`. `.stop()`
ends only that process group (SIGTERM, then SIGKILL); `.kill()` ends it at once, as a crash
would. Use it as a context manager so the server never outlives its user.

Concurrency: without continuous batching `transformers serve` runs one generation at a time on
one inference thread (concurrent requests queue). With `--continuous-batching` (on by default
here) concurrent requests are decoded together with paged attention, which is what makes the
openai teacher's pool of concurrent requests pay off. Measured on 2 shared cores with
SmolLM2-135M, 1 torch thread, 16-token greedy replies, two servers up and jobs alternated:
8 concurrent requests 36-56 tok/s with continuous batching against 13 tok/s without it (queued),
one request at a time 14 tok/s with it and 16-17 tok/s without. The first batched request pays a
one-off warm-up (about 15 s here).

Threads: on a CPU shared with other work, torch's default (one OpenMP thread per core)
oversubscribes the cores and spin-waits; measured on 2 shared cores (load ~6-10), one 24-token
reply to a 166-token prompt took 2.5-2.9 s with 1 thread against 10-29 s with the default. So
the server runs with `torch_threads=1` unless told otherwise (0 = torch's default, right for a
machine the server has to itself).

Every request the server answers leaves one uvicorn access line in the log
(`"POST /v1/chat/completions HTTP/1.1" 200`); `request_count()` counts them, so a test or a
benchmark can check at the server side how many requests a run really sent.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

__all__ = ["ServeConfig", "TeacherServer", "free_port", "serve_model"]

_ACCESS_LINE = re.compile(r'"POST /v1/chat/completions HTTP/[0-9.]+" (\d{3})')


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 0                       # 0 = a free port picked at start
    continuous_batching: bool = True    # decode concurrent requests together (paged attention)
    cb_max_batch_tokens: int = 0        # 0 = the server's default
    torch_threads: int = 1              # OMP/MKL threads of the server (0 = torch's default); see the module docstring
    dtype: str = "auto"
    sample_when_asked: bool = True      # see _sampling_view: honour temperature > 0 (else the server decodes greedily)
    view_root: str = ""                 # where that view lives (empty = <tmp>/modelworks-serve); stable across restarts
    startup_timeout_s: float = 180.0    # model load + first answer of /v1/models
    stop_timeout_s: float = 5.0         # SIGTERM grace before SIGKILL (a second SIGTERM forces uvicorn out)
    extra_args: list[str] = field(default_factory=list)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _serve_command() -> list[str]:
    # The console script next to this interpreter belongs to the same environment as this code.
    script = Path(sys.executable).parent / "transformers"
    if script.exists():
        return [str(script), "serve"]
    found = shutil.which("transformers")
    if found:
        return [found, "serve"]
    return [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve"]


def _sampling_view(model_dir: Path, view_root: str) -> Path:
    """`model_dir`, or a view of it whose generation config samples by default.

    `transformers serve` applies a request's temperature but never turns sampling on: a model
    whose generation_config.json lacks `do_sample: true` (SmolLM2 converted from GGUF) answers
    greedily whatever the temperature, so several sampled answers to one question come out
    identical. The view holds links to the model's files and a generation config with
    `do_sample: true` (a request with temperature 0 still decodes greedily). Its path, which is
    the served model name and thus part of the response-cache key, depends only on the model
    directory and its files, so a restarted server keeps the same name and retrained weights get
    a new one.
    """
    import hashlib
    import json
    import tempfile

    gen_path = model_dir / "generation_config.json"
    gen = json.loads(gen_path.read_text()) if gen_path.exists() else {}
    if gen.get("do_sample") is True:
        return model_dir
    gen["do_sample"] = True
    root = Path(view_root) if view_root else Path(tempfile.gettempdir()) / "modelworks-serve"
    files = sorted(p.name for p in model_dir.iterdir() if p.is_file() and p.name != "generation_config.json")
    # Named by the directory and its files' sizes and times: retrained weights get a new name, hence new cache keys.
    h = hashlib.sha256(str(model_dir.resolve()).encode())
    for f in files:
        st = (model_dir / f).stat()
        h.update(f"|{f}|{st.st_size}|{int(st.st_mtime)}".encode())
    view = root / f"{model_dir.name}-{h.hexdigest()[:10]}"
    gen_text = json.dumps(gen, indent=2, sort_keys=True)

    def current() -> bool:
        return (view / "generation_config.json").exists() \
            and (view / "generation_config.json").read_text() == gen_text \
            and all((view / f).resolve() == (model_dir / f).resolve() for f in files)

    if view.is_dir() and current():
        return view
    # Build beside and rename, so a concurrent start never sees a half-made view.
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{view.name}-", dir=root))
    for f in files:
        (tmp / f).symlink_to((model_dir / f).resolve())
    (tmp / "generation_config.json").write_text(gen_text)
    if view.exists():
        shutil.rmtree(view, ignore_errors=True)
    try:
        tmp.rename(view)
    except OSError:  # another start made it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
        if not current():
            raise
    return view


class TeacherServer:
    """A running `transformers serve` process group; see the module docstring."""

    def __init__(self, model_dir: str | Path, cfg: ServeConfig, log_path: str | Path):
        self.model_dir = Path(model_dir)
        self.cfg = cfg
        self.host = cfg.host
        self.port = cfg.port or free_port(cfg.host)
        self.continuous_batching = cfg.continuous_batching
        self.served_dir = _sampling_view(self.model_dir, cfg.view_root) if cfg.sample_when_asked else self.model_dir
        # The server is pinned to this exact string and rejects any other model name.
        self.model_name = str(self.served_dir)
        self.base_url = f"http://{self.host}:{self.port}/v1"
        self.log_path = Path(log_path)
        self._proc: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"TeacherServer(model={self.model_name!r}, base_url={self.base_url!r}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> "TeacherServer":
        c = self.cfg
        cmd = _serve_command() + [self.model_name, "--host", self.host, "--port", str(self.port),
                                  "--dtype", c.dtype, "--log-level", "warning"]
        if self.continuous_batching:
            cmd.append("--continuous-batching")
            if c.cb_max_batch_tokens:
                cmd += ["--cb-max-batch-tokens", str(c.cb_max_batch_tokens)]
        cmd += list(c.extra_args)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1",
                   HF_HUB_DISABLE_TELEMETRY="1")
        if c.torch_threads:
            env.update(OMP_NUM_THREADS=str(c.torch_threads), MKL_NUM_THREADS=str(c.torch_threads))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n# modelworks: starting {' '.join(cmd)}\n".encode())
            log.flush()
            # A new session: the server and anything it spawns form one process group we can end alone.
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=env, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.cfg.startup_timeout_s
        url = f"{self.base_url}/models"
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"transformers serve exited with code {self._proc.returncode} while starting; "
                                   f"last log lines:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"transformers serve did not answer {url} within {self.cfg.startup_timeout_s:.0f}s; "
                           f"last log lines:\n{self.log_tail()}")

    def _signal_group(self, sig: int) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, sig)  # the group id is the server's pid (start_new_session)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """End the server at once (SIGKILL), as a crash or an OOM kill would."""
        if self._proc is not None and self._proc.poll() is None:
            self._signal_group(signal.SIGKILL)
            self._proc.wait()

    def stop(self) -> None:
        """End the server gracefully (SIGTERM), SIGKILL after `stop_timeout_s`."""
        if self._proc is None or self._proc.poll() is not None:
            return
        # uvicorn waits for running generations after the first SIGTERM and quits at the second.
        for _ in range(2):
            self._signal_group(signal.SIGTERM)
            try:
                self._proc.wait(timeout=self.cfg.stop_timeout_s / 2)
                return
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def request_count(self, status: str | None = None) -> int:
        """Chat-completion requests answered so far, from the access lines of the log (all runs in this log)."""
        return sum(1 for m in _ACCESS_LINE.finditer(self.log_text()) if status is None or m.group(1) == status)

    def __enter__(self) -> "TeacherServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_model(model_dir: str | Path, host: str = "127.0.0.1", port: int = 0, log_path: str | Path | None = None,
                cfg: ServeConfig | None = None) -> TeacherServer:
    """Start `transformers serve` on a local Hugging Face model directory; return the running handle.

    `model_dir` must be a model directory (config, safetensors, tokenizer with chat template);
    convert a GGUF file once with `training.open_model.ensure_hf_model` first. `host`/`port`
    override `cfg` (port 0 = a free port). The server's output goes to `log_path` (default: a new
    temp folder), never into the model directory.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(f"{model_dir} is not a Hugging Face model directory (no config.json); convert a "
                                f"GGUF file with training.open_model.ensure_hf_model first")
    base = cfg or ServeConfig()
    cfg = replace(base, host=host, port=port or base.port)
    if log_path is None:
        import tempfile

        log_path = Path(tempfile.mkdtemp(prefix="mw-serve-")) / "server.log"
    return TeacherServer(model_dir, cfg, log_path).start()
