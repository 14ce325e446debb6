"""Build torchrun command lines, and launch an n-node torchrun job on one machine (nodes simulated as processes).

`torchrun_command` is the one place that knows torchrun's flags: a single node uses `--standalone`
(a local rendezvous on a free port); several nodes join one c10d rendezvous at `rdzv_endpoint`
(host:port of node 0), or, with `rdzv_backend="static"`, a fixed master address and `--node-rank`.

`python -m training.launch --nnodes 2 --nproc-per-node 1 [--rdzv-endpoint 127.0.0.1:PORT] RUN.json`
starts one torchrun per "node" on this machine, all joined through the same c10d rendezvous, as a
real cluster would run them. It forwards each node's output prefixed `[node i]`, waits for all, and
when one node fails — or the launcher gets SIGTERM/SIGINT/SIGHUP — stops every other node and every
rank below them, then exits non-zero with a message naming the node that failed. Dagster runs it
through Pipes (the Pipes environment is inherited by every rank; only global rank 0 opens it).
On a real cluster each node runs `torchrun_command(...)` itself; see docs/multinode.md.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import ipaddress
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

TRAINING_MODULE = "training.pretrain"
PREFIX = "training.launch"

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` now (the OS picks it; another process could still take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def default_rdzv_id(run_file: str | os.PathLike) -> str:
    """A rendezvous id every node derives alike from the run file's path (shared storage on a cluster)."""
    digest = hashlib.sha1(str(Path(run_file).absolute()).encode()).hexdigest()[:12]
    return f"modelworks-{digest}"


def torchrun_command(
    run_file: str | os.PathLike,
    nproc_per_node: int,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str = "",
    rdzv_id: str = "",
    standalone: bool | None = None,
    *,
    rdzv_backend: str = "c10d",
    rdzv_conf: dict[str, str] | None = None,
    local_addr: str = "",
    module: str = TRAINING_MODULE,
    python: str = sys.executable,
) -> list[str]:
    """The argv of one node's `python -m torch.distributed.run ... -m training.pretrain RUN_FILE`.

    standalone None means: standalone exactly when there is one node and no endpoint. With several
    nodes every node gets the same endpoint and id. c10d assigns node ranks at the rendezvous (torchrun
    ignores --node-rank there, so it is not passed); `rdzv_backend="static"` pins node `node_rank` to
    the ranks node_rank*nproc_per_node.. and needs the endpoint to be node 0's address:port.
    """
    if nproc_per_node < 1 or nnodes < 1:
        raise ValueError(f"nproc_per_node and nnodes must be >= 1, got {nproc_per_node} and {nnodes}")
    if not 0 <= node_rank < nnodes:
        raise ValueError(f"node_rank {node_rank} is outside 0..{nnodes - 1}")
    if standalone is None:
        standalone = nnodes == 1 and not rdzv_endpoint
    cmd = [python, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc_per_node)]
    if standalone:
        if nnodes != 1:
            raise ValueError("standalone is a single-node rendezvous; use rdzv_endpoint with nnodes > 1")
        cmd += ["--standalone"]
    else:
        if not rdzv_endpoint:
            raise ValueError(f"nnodes={nnodes} needs rdzv_endpoint (host:port of node 0's rendezvous)")
        host, _, port = rdzv_endpoint.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"rdzv_endpoint must be host:port, got {rdzv_endpoint!r}")
        cmd += ["--nnodes", str(nnodes)]
        if rdzv_backend == "static":
            cmd += ["--node-rank", str(node_rank), "--master-addr", host, "--master-port", port]
        elif rdzv_backend == "c10d":
            cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint,
                    "--rdzv-id", rdzv_id or default_rdzv_id(run_file)]
            if rdzv_conf:
                cmd += ["--rdzv-conf", ",".join(f"{k}={v}" for k, v in rdzv_conf.items())]
        else:
            raise ValueError(f"rdzv_backend must be 'c10d' or 'static', got {rdzv_backend!r}")
    if local_addr:
        cmd += ["--local-addr", local_addr]
    return [*cmd, "-m", module, str(run_file)]


def local_launch_command(
    run_file: str | os.PathLike,
    nproc_per_node: int,
    nnodes: int,
    rdzv_endpoint: str = "",
    rdzv_id: str = "",
    python: str = sys.executable,
    module: str = TRAINING_MODULE,
) -> list[str]:
    """The argv that runs this module's launcher: `nnodes` torchrun nodes on this machine (for Pipes)."""
    cmd = [python, "-m", "training.launch", "--nnodes", str(nnodes), "--nproc-per-node", str(nproc_per_node)]
    if module != TRAINING_MODULE:
        cmd += ["--module", module]
    if rdzv_endpoint:
        cmd += ["--rdzv-endpoint", rdzv_endpoint]
    if rdzv_id:
        cmd += ["--rdzv-id", rdzv_id]
    return [*cmd, str(run_file)]


# --- the local multi-node launcher ------------------------------------------------------------------


@dataclass
class NodeExit:
    node_rank: int
    pid: int
    returncode: int

    def describe(self) -> str:
        if self.returncode < 0:
            try:
                how = f"was killed by {signal.Signals(-self.returncode).name}"
            except ValueError:
                how = f"was killed by signal {-self.returncode}"
        else:
            how = f"exited with code {self.returncode}"
        return f"node {self.node_rank} (torchrun pid {self.pid}) {how}"


@dataclass
class LocalLaunchConfig:
    nnodes: int = 2
    nproc_per_node: int = 1
    rdzv_endpoint: str = ""  # empty: 127.0.0.1 and a free port
    rdzv_id: str = ""  # empty: derived from the run file's path
    grace_s: float = 10.0  # after SIGTERM, how long nodes get to stop before SIGKILL (Pipes waits 20 s)
    join_timeout_s: int = 120  # how long a node waits at the rendezvous for the others
    module: str = TRAINING_MODULE
    extra_env: dict[str, str] = field(default_factory=dict)


def _libc():
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # not Linux: no subreaper / parent-death signal, the /proc sweep below finds nothing
        return None


def _die_with_parent(libc) -> None:
    # Runs in the child between fork and exec: if the launcher is SIGKILLed, the node gets SIGTERM and
    # torchrun stops its ranks, instead of training on with nobody to report to. (Linux ties this to the
    # forking thread: run() starts the nodes from the thread that then waits for them.)
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state letter) of every process, from /proc (empty where there is no /proc)."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            rest = stat.read_text().rsplit(")", 1)[1].split()
            table[int(stat.parent.name)] = (int(rest[1]), rest[0])
        except (OSError, IndexError, ValueError):
            continue
    return table


def descendants(root: int) -> list[int]:
    """Every live (not zombie) process below `root`, parents before children."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, state) in _process_table().items():
        if state != "Z":
            children.setdefault(ppid, []).append(pid)
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class LocalMultiNodeLauncher:
    """Runs `nnodes` torchrun processes on this machine as the nodes of one c10d rendezvous."""

    def __init__(self, run_file: str | os.PathLike, config: LocalLaunchConfig, out: IO[bytes] | None = None):
        if config.nnodes < 1:
            raise ValueError(f"nnodes must be >= 1, got {config.nnodes}")
        self.run_file = Path(run_file)
        self.config = config
        self.out = out or sys.stdout.buffer
        self.endpoint = config.rdzv_endpoint or f"127.0.0.1:{free_port('127.0.0.1')}"
        self.rdzv_id = config.rdzv_id or default_rdzv_id(run_file)
        self.procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()
        self._readers: list[threading.Thread] = []
        self._signal: int | None = None

    def node_command(self, node_rank: int) -> list[str]:
        c = self.config
        host = self.endpoint.rpartition(":")[0]
        # Node 0 hosts the rendezvous store (no race with the others for its port). c10d ranks nodes by
        # sorted address, so on loopback node i advertises 127.0.0.(i+1): node 0 then holds global rank 0.
        conf = {"is_host": "1" if node_rank == 0 else "0", "join_timeout": str(c.join_timeout_s)}
        local_addr = f"127.0.0.{node_rank + 1}" if _loopback(host) and c.nnodes <= 9 else ""
        return torchrun_command(self.run_file, c.nproc_per_node, c.nnodes, node_rank, self.endpoint, self.rdzv_id,
                                standalone=False, rdzv_conf=conf, local_addr=local_addr, module=c.module)

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **self.config.extra_env}
        # All ranks share this machine's cores; torchrun only limits threads when one node has several ranks.
        ranks = self.config.nnodes * self.config.nproc_per_node
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // ranks)))
        return env

    def _say(self, message: str) -> None:
        with self._lock:
            self.out.write(f"[{PREFIX}] {message}\n".encode())
            self.out.flush()

    def _forward(self, node_rank: int, stream: IO[bytes]) -> None:
        tag = f"[node {node_rank}] ".encode()
        for line in iter(stream.readline, b""):
            with self._lock:
                self.out.write(tag + line if line.endswith(b"\n") else tag + line + b"\n")
                self.out.flush()
        stream.close()

    def _on_signal(self, signum, _frame) -> None:
        self._signal = signum

    def run(self) -> int:
        """Start every node, wait for all; returns 0, or non-zero after stopping every node (see module doc)."""
        libc = _libc()
        if libc is not None:
            # Ranks orphaned by a dying torchrun are re-parented to us, not to init: the final sweep finds them.
            libc.prctl(_PR_SET_CHILD_SUBREAPER, 1)
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        previous = {s: signal.signal(s, self._on_signal) for s in handled} \
            if threading.current_thread() is threading.main_thread() else {}
        env = self._env()
        failure: NodeExit | None = None
        try:
            self._say(f"{self.config.nnodes} nodes x {self.config.nproc_per_node} processes, c10d rendezvous "
                      f"{self.rdzv_id} at {self.endpoint}")
            for node_rank in range(self.config.nnodes):
                cmd = self.node_command(node_rank)
                self._say(f"node {node_rank}: {' '.join(cmd)}")
                proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, preexec_fn=lambda: _die_with_parent(libc))
                self.procs.append(proc)
            # Readers start after the last fork, so no thread runs while a child is between fork and exec.
            for node_rank, proc in enumerate(self.procs):
                reader = threading.Thread(target=self._forward, args=(node_rank, proc.stdout), daemon=True)
                reader.start()
                self._readers.append(reader)
            failure = self._wait()
        finally:
            if failure is not None or self._signal is not None or any(p.poll() is None for p in self.procs):
                self._stop_all()
            for reader in self._readers:
                reader.join(timeout=5)
            for s, handler in previous.items():
                signal.signal(s, handler)
        if self._signal is not None:
            name = signal.Signals(self._signal).name
            self._say(f"FAILED: got {name}; stopped all {self.config.nnodes} nodes")
            return 128 + self._signal
        if failure is not None:
            self._say(f"FAILED: {failure.describe()}; stopped the other nodes (its output above is "
                      f"prefixed [node {failure.node_rank}])")
            return failure.returncode if failure.returncode > 0 else 128 - failure.returncode
        self._say(f"all {self.config.nnodes} nodes finished")
        return 0

    def _wait(self) -> NodeExit | None:
        """Block until all nodes exited 0 (None), one failed (the first to fail), or a signal arrived (None)."""
        exits: queue.Queue[NodeExit] = queue.Queue()
        for node_rank, proc in enumerate(self.procs):
            # One waiter per node: the queue then holds exits in the order they happened, so the node
            # that failed first is named, not a node that failed only because its peer vanished.
            threading.Thread(target=lambda r=node_rank, p=proc: exits.put(NodeExit(r, p.pid, p.wait())),
                             daemon=True).start()
        finished = 0
        while self._signal is None and finished < len(self.procs):
            try:
                exit_ = exits.get(timeout=0.2)  # a timeout, so a signal handler's flag is seen promptly
            except queue.Empty:
                continue
            if exit_.returncode != 0:
                others = sum(p.poll() is None for p in self.procs)
                self._say(f"{exit_.describe()}; stopping the other {others} running node(s)")
                return exit_
            finished += 1
            self._say(f"node {exit_.node_rank} finished")
        return None

    def _stop_all(self) -> None:
        """SIGTERM every node (torchrun stops its ranks), then SIGKILL whatever still lives below us."""
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + self.config.grace_s
        while time.monotonic() < deadline and (any(p.poll() is None for p in self.procs)
                                               or descendants(os.getpid())):
            self._reap_orphans()
            time.sleep(0.1)
        for pid in descendants(os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            proc.wait()
        self._reap_orphans()

    def _reap_orphans(self) -> None:
        # As subreaper we inherit ranks whose torchrun died; reap those zombies (never a Popen child's pid,
        # whose status belongs to its Popen object).
        ours, me = {p.pid for p in self.procs}, os.getpid()
        for pid, (ppid, state) in _process_table().items():
            if ppid == me and state == "Z" and pid not in ours:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.launch",
        description="Run an n-node torchrun job on this machine: one torchrun per node, one c10d rendezvous.")
    parser.add_argument("run_file", help="the run file (JSON) every node trains from")
    parser.add_argument("--nnodes", type=int, default=2)
    parser.add_argument("--nproc-per-node", type=int, default=1)
    parser.add_argument("--rdzv-endpoint", default="", help="host:port (default: 127.0.0.1 and a free port)")
    parser.add_argument("--rdzv-id", default="", help="rendezvous id (default: derived from the run file path)")
    parser.add_argument("--grace-s", type=float, default=LocalLaunchConfig.grace_s,
                        help="seconds the nodes get to stop after SIGTERM before SIGKILL")
    parser.add_argument("--join-timeout-s", type=int, default=LocalLaunchConfig.join_timeout_s)
    parser.add_argument("--module", default=TRAINING_MODULE, help="the module every rank runs with the run file")
    args = parser.parse_args(argv)
    if not Path(args.run_file).is_file():
        parser.error(f"run file not found: {args.run_file}")
    config = LocalLaunchConfig(nnodes=args.nnodes, nproc_per_node=args.nproc_per_node,
                               rdzv_endpoint=args.rdzv_endpoint, rdzv_id=args.rdzv_id, grace_s=args.grace_s,
                               join_timeout_s=args.join_timeout_s, module=args.module)
    return LocalMultiNodeLauncher(args.run_file, config).run()


if __name__ == "__main__":
    sys.exit(main())


def code_root() -> Path:
    """The folder that holds the `training` package: torchrun's workers need it on PYTHONPATH and as cwd."""
    return Path(__file__).resolve().parent.parent
