"""Specification of distributed pretraining: torchrun ranks, checkpoints that resume, Pipes to Dagster.

Every test launches real `torchrun` jobs (gloo on CPU, the tiny preset) — slow-ish (~10 s a launch),
marked `distributed`, and part of `make test`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training.checkpoint import MARKER, Checkpointer
from training.packing import pack_token_shards
from training.parallelize import DistEnv
from training.pretrain import PretrainConfig, pretrain, write_run_file
from training.tokenizer import train_bpe_tokenizer

pytestmark = pytest.mark.distributed
REPO = Path(__file__).resolve().parent.parent

WORDS = ["pump", "motor", "valve", "fan", "seal", "bearing", "worn", "loose", "overheats", "leaks", "replace", "check"]


def _doc(rng: random.Random) -> str:
    return " ".join(" ".join(rng.choice(WORDS) for _ in range(8)) + "." for _ in range(rng.randint(1, 6)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    rng = random.Random(0)
    general = [_doc(rng) for _ in range(1200)]
    domain = [f"Fault code E{rng.randint(10, 40)}: {_doc(rng)}" for _ in range(600)]
    tok = train_bpe_tokenizer(general + domain, vocab_size=512, out_dir=root / "tokenizer")
    pack_token_shards(general, tok, root / "general", seq_len=64, shard_tokens=20_000)
    pack_token_shards(domain, tok, root / "domain", seq_len=64, shard_tokens=20_000)
    return root


# Global batch = 512 tokens: micro 4 x seq 64 x (2 accumulation steps on 1 rank | 1 step on each of 2 ranks).
TINY = PretrainConfig(preset="tiny", seq_len=64, micro_batch_size=4, global_batch_tokens=512, max_steps=20, lr=3e-3,
                      warmup_steps=3, log_every=5, num_threads=1)


def _torchrun(run_file: Path, nproc: int, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "-m", "training.pretrain", str(run_file)]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


def _run_to_end(run_file: Path, nproc: int) -> list[dict]:
    proc = _torchrun(run_file, nproc)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out[-4000:]
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(model_dir / "model.safetensors")


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant (torchrun starts each rank in its own session)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    todo, tree = [pid], []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def ddp_one_node_two_ranks(corpus, tmp_path_factory) -> tuple[Path, list[dict]]:
    """TINY on one node with two DDP ranks: (model dir, rank 0's JSON lines); shared by the tests that compare."""
    root = tmp_path_factory.mktemp("ddp_1x2")
    run = write_run_file(root / "run.json", replace(TINY, parallelism="ddp"), data_dir=corpus / "general",
                         out_dir=root / "model", tokenizer_dir=corpus / "tokenizer")
    return root / "model", _run_to_end(run, nproc=2)


def test_two_rank_ddp_and_fsdp_match_a_one_rank_run(corpus, tmp_path, ddp_one_node_two_ranks):
    one = pretrain(TINY, corpus / "general", tmp_path / "one", tokenizer_dir=corpus / "tokenizer",
                   log_fn=lambda *_: None)
    assert one.config["grad_accum_steps"] == 2 and one.config["world_size"] == 1

    curves = {}
    for parallelism in ("ddp", "fsdp"):
        if parallelism == "ddp":
            out, lines = ddp_one_node_two_ranks
        else:
            out = tmp_path / parallelism
            run = write_run_file(tmp_path / f"{parallelism}.json", replace(TINY, parallelism=parallelism),
                                 data_dir=corpus / "general", out_dir=out, tokenizer_dir=corpus / "tokenizer")
            lines = _run_to_end(run, nproc=2)
        result = lines[-1]["result"]
        assert result["config"]["world_size"] == 2 and result["config"]["grad_accum_steps"] == 1
        assert [ln["step"] for ln in lines[:-1]] == [5, 10, 15, 20]  # only rank 0 logs
        curves[parallelism] = json.loads((out / "training_metrics.json").read_text())["loss_curve"]
        # The same samples in the same global batch: equal up to float reduction order.
        for (s1, l1), (s2, l2) in zip(one.loss_curve, curves[parallelism]):
            assert s1 == s2 and l1 == pytest.approx(l2, rel=1e-4, abs=1e-4)
        for name, w in _weights(out).items():
            torch.testing.assert_close(w, _weights(tmp_path / "one")[name], rtol=1e-4, atol=1e-5)
    assert curves["ddp"][-1][1] < 0.8 * curves["ddp"][0][1]  # and it learns


def test_sigkill_mid_run_then_rerun_resumes_to_identical_weights(corpus, tmp_path):
    config = replace(TINY, max_steps=60, checkpoint_every=10, keep_checkpoints=2, log_every=10)
    paths = dict(data_dir=corpus / "general", tokenizer_dir=corpus / "tokenizer")

    straight = write_run_file(tmp_path / "straight.json", config, out_dir=tmp_path / "straight",
                              checkpoint_dir=tmp_path / "ckpt_straight", **paths)
    _run_to_end(straight, nproc=2)

    run = write_run_file(tmp_path / "killed.json", config, out_dir=tmp_path / "killed",
                         checkpoint_dir=tmp_path / "ckpt", **paths)
    ckpt = Checkpointer(tmp_path / "ckpt", DistEnv(0, 1, 0, torch.device("cpu")), every_steps=10)
    proc = _torchrun(run, nproc=2, start_new_session=True)
    deadline = time.monotonic() + 180
    while (ckpt.latest_step() or 0) < 10:
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its process group...
    _kill_tree(proc.pid)  # ...and the ranks, which torchrun started in sessions of their own
    proc.wait()
    killed_at = ckpt.latest_step()
    assert killed_at < config.max_steps and not (tmp_path / "killed").exists()
    assert len(ckpt.valid_steps()) <= 2

    lines = _run_to_end(run, nproc=2)  # the rerun: same run file, same checkpoint dir
    assert lines[0] == {"step": killed_at, "resumed_from_step": float(killed_at)}
    assert lines[-1]["result"]["config"]["resumed_from_step"] == killed_at
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    metrics = json.loads((tmp_path / "killed" / "training_metrics.json").read_text())
    assert [s for s, _ in metrics["loss_curve"]] == list(range(1, 61))  # the curve spans the kill
    assert sorted(ckpt.valid_steps()) == [50, 60] and all((ckpt.step_dir(s) / MARKER).exists() for s in (50, 60))


def test_a_checkpoint_without_its_marker_is_ignored(corpus, tmp_path):
    config = replace(TINY, max_steps=10, checkpoint_every=5, num_threads=1)
    pretrain(config, corpus / "general", tmp_path / "m", tokenizer_dir=corpus / "tokenizer",
             checkpoint_dir=tmp_path / "ckpt", log_fn=lambda *_: None)
    env = DistEnv(0, 1, 0, torch.device("cpu"))
    ckpt = Checkpointer(tmp_path / "ckpt", env, every_steps=5)
    assert ckpt.valid_steps() == [5, 10]
    (ckpt.step_dir(10) / MARKER).unlink()  # as if killed between the shards and the marker
    assert ckpt.latest_step() == 5
    logged = []
    result = pretrain(config, corpus / "general", tmp_path / "m2", tokenizer_dir=corpus / "tokenizer",
                      checkpoint_dir=tmp_path / "ckpt", log_fn=lambda s, m: logged.append((s, m)))
    assert logged[0] == (5, {"resumed_from_step": 5.0}) and result.config["resumed_from_step"] == 5
    a, b = _weights(tmp_path / "m"), _weights(tmp_path / "m2")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_dapt_replay_mixes_general_samples_at_the_configured_ratio(corpus):
    from training.data import GlobalBatchSampler

    sampler = GlobalBatchSampler(corpus / "domain", 64, micro_batch_size=50, grad_accum_steps=4, seed=3,
                                 replay_data_dir=corpus / "general", replay_ratio=0.25)
    ids, from_replay = zip(*(sampler._global_ids(s) for s in range(10)))
    share = torch.cat(from_replay).float().mean().item()
    assert 0.2 < share < 0.3
    # Rank r of 2 gets exactly the micro-batches r, r+2, ... of the global batch a 1-rank run consumes.
    one = GlobalBatchSampler(corpus / "domain", 64, 2, 4, seed=3, replay_data_dir=corpus / "general", replay_ratio=0.25)
    ranks = [GlobalBatchSampler(corpus / "domain", 64, 2, 2, rank=r, world_size=2, seed=3,
                                replay_data_dir=corpus / "general", replay_ratio=0.25) for r in (0, 1)]
    flat = one.next_micro_batches()
    r0, r1 = (s.next_micro_batches() for s in ranks)
    assert all(torch.equal(x, y) for x, y in zip(flat, [r0[0], r1[0], r0[1], r1[1]]))


def test_pretraining_assets_launch_torchrun_through_pipes_and_report_live(corpus, tmp_path):
    import dagster as dg

    from assets.storage import ModelworksStorage
    from assets.training import base_model, dapt_model

    storage = ModelworksStorage(root=str(tmp_path))
    shutil.copytree(corpus / "tokenizer", tmp_path / "models" / "tokenizer")
    shutil.copytree(corpus / "general", tmp_path / "tokens" / "general_corpus")
    shutil.copytree(corpus / "domain", tmp_path / "tokens" / "domain_corpus")
    train = {"preset": "tiny", "seq_len": 64, "micro_batch_size": 4, "max_steps": 10, "warmup_steps": 2,
             "checkpoint_every": 5}
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [base_model, dapt_model], instance=instance,
        resources={"storage": storage, "pipes_subprocess_client": dg.PipesSubprocessClient()},
        run_config={"ops": {"base_model": {"config": {**train, "nproc_per_node": 2}},
                            "dapt_model": {"config": {**{k: v for k, v in train.items() if k != "preset"},
                                                      "nproc_per_node": 1, "replay_ratio": 0.25}}}})
    assert result.success
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    # Rank 0 alone streams each log step into the run's logs while it trains.
    assert sum("step 10/10: loss=" in m and "tokens_per_s=" in m for m in messages) == 2
    for asset in ("base_model", "dapt_model"):
        meta = result.asset_materializations_for_node(asset)[0].metadata
        assert meta["final_loss"].value > 0 and meta["tokens_per_s"].value > 0 and 0 < meta["mfu"].value < 1
        assert "6*N" in meta["mfu_formula"].value and meta["peak_memory_mb"].value > 0
        assert "data:image/png;base64" in meta["loss_curve"].value
        assert meta["command"].value.endswith(" -m pipelines.pretrain_job " + meta["command"].value.split()[-1])
    assert result.asset_materializations_for_node("base_model")[0].metadata["world_size"].value == 2
    assert (tmp_path / "models" / "dapt" / "model.safetensors").exists()
    assert len(list((tmp_path / "checkpoints" / "base").iterdir())) == 1


# --- several nodes: one torchrun per node, joined through one c10d rendezvous (training.launch) ---------------


def test_torchrun_command_joins_nodes_through_c10d_and_runs_one_node_standalone(tmp_path):
    from training.launch import local_launch_command, torchrun_command

    run = tmp_path / "run.json"
    one = torchrun_command(run, nproc_per_node=2)
    assert "--standalone" in one and "--rdzv-endpoint" not in one and one[-3:] == ["-m", "training.pretrain", str(run)]
    two = torchrun_command(run, 1, nnodes=2, node_rank=1, rdzv_endpoint="node0:29400", rdzv_id="job-7")
    assert "--standalone" not in two
    assert two[two.index("--nnodes") + 1] == "2" and two[two.index("--rdzv-backend") + 1] == "c10d"
    assert two[two.index("--rdzv-endpoint") + 1] == "node0:29400" and two[two.index("--rdzv-id") + 1] == "job-7"
    # Every node derives the same rendezvous id from the shared run file when none is given.
    node0, node1 = (torchrun_command(run, 1, 2, r, "node0:29400") for r in (0, 1))
    assert node0 == node1 and node0[node0.index("--rdzv-id") + 1].startswith("modelworks-")
    static = torchrun_command(run, 4, nnodes=2, node_rank=1, rdzv_endpoint="10.0.0.1:29500", rdzv_backend="static")
    assert static[static.index("--node-rank") + 1] == "1" and static[static.index("--master-addr") + 1] == "10.0.0.1"
    with pytest.raises(ValueError, match="rdzv_endpoint"):
        torchrun_command(run, 1, nnodes=2)
    with pytest.raises(ValueError, match="node_rank"):
        torchrun_command(run, 1, nnodes=2, node_rank=2, rdzv_endpoint="h:1")
    local = local_launch_command(run, nproc_per_node=1, nnodes=2)
    assert local[1:3] == ["-m", "training.launch"] and local[-1] == str(run)


def _launch(run_file: Path, nnodes: int, nproc: int, **popen) -> subprocess.Popen:
    from training.launch import local_launch_command

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(local_launch_command(run_file, nproc_per_node=nproc, nnodes=nnodes), cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def _alive(pids: list[int]) -> list[int]:
    """The pids still running (a zombie has exited; init reaps it)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            out.append(pid)
    return out


def _tree(pid: int) -> list[int]:
    from training.launch import descendants

    return descendants(pid)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return ""


class _Lines:
    """Collects a process's output lines in a thread, so a test can wait for one without blocking on the pipe."""

    def __init__(self, proc: subprocess.Popen):
        import threading

        self.lines: list[str] = []
        self._thread = threading.Thread(target=lambda: self.lines.extend(iter(proc.stdout.readline, "")), daemon=True)
        self._thread.start()

    def wait_for(self, needle: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(needle in ln for ln in self.lines):
            assert proc.poll() is None, "".join(self.lines)[-4000:]
            assert time.monotonic() < deadline, f"no {needle!r} within {timeout_s} s"
            time.sleep(0.05)

    def text(self) -> str:
        self._thread.join(timeout=10)
        return "".join(self.lines)


def test_two_nodes_through_c10d_match_one_node_with_two_ranks(corpus, tmp_path, ddp_one_node_two_ranks):
    """Same data, seed, global batch (512 tokens) and steps; world size 2 either way, only the topology differs.

    Each rank draws the same micro-batches in both runs and DDP all-reduces the same two gradients (a sum of two
    floats does not depend on their order), so the curves should agree to the bit; the tolerance, 1e-6 absolute
    (a few float32 ulps at a loss of ~4), only admits a reduction-order change inside gloo, and is ~10^4 times
    smaller than the loss change between two consecutive steps.
    """
    one_node_dir, _ = ddp_one_node_two_ranks
    two_nodes = write_run_file(tmp_path / "2x1.json", TINY, data_dir=corpus / "general", out_dir=tmp_path / "2x1",
                               tokenizer_dir=corpus / "tokenizer")
    proc = _launch(two_nodes, nnodes=2, nproc=1)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out[-4000:]
    assert "[training.launch] all 2 nodes finished" in out
    # Global rank 0 (on node 0: the launcher orders the nodes' addresses) alone logs steps and the result.
    steps = [ln for ln in out.splitlines() if '{"step"' in ln]
    assert len(steps) == 4 and all(ln.startswith("[node 0] ") for ln in steps), steps
    result = json.loads(next(ln for ln in out.splitlines() if '{"result"' in ln).split(" ", 2)[2])["result"]
    assert result["config"]["world_size"] == 2 and result["config"]["grad_accum_steps"] == 1

    curves = {run: json.loads((out / "training_metrics.json").read_text())["loss_curve"]
              for run, out in (("1x2", one_node_dir), ("2x1", tmp_path / "2x1"))}
    assert [s for s, _ in curves["2x1"]] == [s for s, _ in curves["1x2"]] == list(range(1, 21))
    diff = max(abs(a - b) for (_, a), (_, b) in zip(curves["1x2"], curves["2x1"]))
    print(f"max |loss(2 nodes x 1) - loss(1 node x 2)| over 20 steps = {diff:.3g}")
    assert diff <= 1e-6
    for name, w in _weights(tmp_path / "2x1").items():
        torch.testing.assert_close(w, _weights(one_node_dir)[name], rtol=1e-6, atol=1e-7)
    assert curves["2x1"][-1][1] < 0.8 * curves["2x1"][0][1]


def test_a_failing_node_stops_the_other_and_the_launcher_exits_non_zero(corpus, tmp_path):
    long_run = replace(TINY, max_steps=100_000, log_every=1)
    run = write_run_file(tmp_path / "run.json", long_run, data_dir=corpus / "general", out_dir=tmp_path / "m",
                         tokenizer_dir=corpus / "tokenizer")
    proc = _launch(run, nnodes=2, nproc=1, start_new_session=True)
    try:
        lines = _Lines(proc)
        lines.wait_for('[node 0] {"step"', proc)  # both nodes are training, node 0 inside its all-reduces
        tree = _tree(proc.pid)
        node1 = next(p for p in tree if "is_host=0" in _cmdline(p))
        t0 = time.monotonic()
        os.kill(node1, signal.SIGKILL)  # node 1 is lost (its ranks die with their torchrun)
        rc = proc.wait(timeout=60)
        stopped_s = time.monotonic() - t0
    finally:
        _kill_tree(proc.pid)
    out = lines.text()
    assert rc != 0, out[-3000:]
    assert f"FAILED: node 1 (torchrun pid {node1}) was killed by SIGKILL" in out, out[-3000:]
    assert stopped_s < 30  # the launcher stopped node 0 (grace 10 s), not gloo's 30-minute collective timeout
    deadline = time.monotonic() + 10
    while _alive(tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(tree) == [], "orphans left behind"
    assert not (tmp_path / "m").exists()


def test_sigint_to_the_launcher_stops_every_node_and_rank(corpus, tmp_path):
    # Dagster Pipes sends SIGINT to the launched process when a run is cancelled.
    long_run = replace(TINY, max_steps=100_000, log_every=1)
    run = write_run_file(tmp_path / "run.json", long_run, data_dir=corpus / "general", out_dir=tmp_path / "m",
                         tokenizer_dir=corpus / "tokenizer")
    proc = _launch(run, nnodes=2, nproc=1, start_new_session=True)
    try:
        lines = _Lines(proc)
        deadline = time.monotonic() + 120
        while sum("training.pretrain" in _cmdline(p) for p in _tree(proc.pid)) < 4:  # 2 agents, 2 ranks
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines.lines)[-3000:]
            time.sleep(0.05)
        tree = _tree(proc.pid)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
    finally:
        _kill_tree(proc.pid)
    out = lines.text()
    assert rc == 128 + signal.SIGINT and "FAILED: got SIGINT; stopped all 2 nodes" in out, out[-3000:]
    deadline = time.monotonic() + 10
    while _alive(tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(tree) == [], "orphans left behind"


def test_base_model_asset_trains_on_two_local_nodes_through_pipes(corpus, tmp_path):
    """`nnodes: 2, local_nodes: true` runs two torchrun nodes on this host through training.launch and Pipes."""
    import dagster as dg

    from assets.storage import ModelworksStorage
    from assets.training import base_model

    storage = ModelworksStorage(root=str(tmp_path))
    shutil.copytree(corpus / "tokenizer", tmp_path / "models" / "tokenizer")
    shutil.copytree(corpus / "general", tmp_path / "tokens" / "general_corpus")
    config = {"preset": "tiny", "seq_len": 64, "micro_batch_size": 4, "max_steps": 10, "warmup_steps": 2,
              "nnodes": 2, "nproc_per_node": 1, "local_nodes": True}
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([base_model], instance=instance,
                            resources={"storage": storage, "pipes_subprocess_client": dg.PipesSubprocessClient()},
                            run_config={"ops": {"base_model": {"config": config}}})
    assert result.success
    messages = [e.user_message for e in instance.all_logs(result.run_id)]
    assert sum("step 10/10: loss=" in m for m in messages) == 1  # one report: global rank 0 only
    meta = result.asset_materializations_for_node("base_model")[0].metadata
    assert meta["world_size"].value == 2 and meta["final_loss"].value > 0
    assert "training.launch" in meta["command"].value and "--nnodes 2" in meta["command"].value
    assert (tmp_path / "models" / "base" / "model.safetensors").exists()
