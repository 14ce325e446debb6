"""`make ui`: dagster dev binds 127.0.0.1 and serves the whole asset graph over GraphQL."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_dagster_dev_serves_the_asset_graph_on_loopback(tmp_path):
    dagster = Path(sys.executable).parent / "dagster"
    if not dagster.exists():
        pytest.skip("dagster CLI not installed beside this interpreter")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "pipelines" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "MODELWORKS_HOME": str(tmp_path / "mw"),
           "MODELWORKS_PROFILE": "tiny"}
    # Own session: dagster dev spawns a webserver, a daemon and code servers; we stop exactly that group.
    log = (tmp_path / "dagster_dev.log").open("w")
    proc = subprocess.Popen([str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, keys = time.time() + 180, []
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail("dagster dev exited early:\n" + (tmp_path / "dagster_dev.log").read_text()[-3000:])
            try:
                data = _graphql(port, "{ assetNodes { assetKey { path } groupName } }")
                keys = [("/".join(n["assetKey"]["path"]), n["groupName"]) for n in data["data"]["assetNodes"]]
                if keys:
                    break
            except Exception:  # not up yet
                pass
            time.sleep(2)
        names = {k for k, _ in keys}
        assert {"crawl_shard", "curated_pages", "deduplicated_pages", "base_model", "dpo_model",
                "stage_report"} <= names, keys
        assert {g for _, g in keys} >= {"ingest", "curation", "dedup", "domain", "synthetic", "benchmarks",
                                        "training", "evaluation"}
        # Bound to loopback only: the machine's own non-loopback address must not answer.
        try:
            external = socket.gethostbyname(socket.gethostname())
        except OSError:
            external = None
        if external and not external.startswith("127."):
            with socket.socket() as s:
                s.settimeout(1)
                assert s.connect_ex((external, port)) != 0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
