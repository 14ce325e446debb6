"""The Dagster UI as a person uses it: Debian's Chromium, driven by selenium, against `dagster dev` on 127.0.0.1.

In the browser the test opens the global asset lineage, materializes `seed_corpus` from the Launchpad after
editing its YAML config, backfills `curated_pages` over two crawl shards from the partition dialog, watches
the run and the backfill pages, and opens a plot embedded in an asset's metadata. Clicks happen in the
browser; GraphQL at /graphql only verifies what the clicks did (run config, run and backfill status).

Screenshots are kept as test artifacts in $MODELWORKS_TEST_ARTIFACTS/browser (default
tests/artifacts/browser/, ignored by git); every run replaces the previous ones.
Needs /usr/bin/chromium and /usr/bin/chromedriver (`.ci/run` installs Debian's chromium and chromium-driver).
Knobs: MODELWORKS_BROWSER_PLOT_ASSET (the asset whose metadata plot is opened; it is materialized with its
upstream first) and MODELWORKS_BROWSER_PREPARE_TIMEOUT_S (seconds allowed for that).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("MODELWORKS_TEST_ARTIFACTS", REPO / "tests" / "artifacts")) / "browser"

# What the test does in the UI; the two shards are the generated demo crawl's.
LAUNCHPAD_ASSET = "seed_corpus"  # unpartitioned and cheap: reads the seed documents, writes chunks
BACKFILL_ASSET = "curated_pages"
# Materialized with its upstream assets before the UI is driven (synthetic data per seed batch, rules
# teacher on `tiny`): its metadata embeds the judge-score histogram as a PNG in Markdown. Any asset whose
# metadata holds a MetadataValue.md with an embedded PNG will do (stage_report costs the whole chain).
PLOT_ASSET = os.environ.get("MODELWORKS_BROWSER_PLOT_ASSET", "sft_conversations")
PREPARE_TIMEOUT_S = float(os.environ.get("MODELWORKS_BROWSER_PREPARE_TIMEOUT_S", 240))
RUN_TIMEOUT_S = 240  # the Launchpad run and the two backfill runs, together, on two busy cores

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver); "
                              ".ci/run installs them"),
]

# Runs in a child interpreter with the test's environment (tiny recipe, temporary homes), so that the
# code location is built exactly as `dagster dev` builds it: materializes the plot asset with everything
# upstream of it, and the shards' raw copies (crawl_shard) that the backfill from the UI curates. The
# shards' partitions already exist, so the landing sensor finds nothing new.
PREPARE = r"""
import sys
import dagster as dg
from pipelines.definitions import defs

shards, plot_asset = sys.argv[1].split(","), sys.argv[2]
instance = dg.DagsterInstance.get()
graph = defs.resolve_asset_graph()
needed = set(dg.AssetSelection.assets(plot_asset).upstream().required_multi_asset_neighbors().resolve(graph))
needed.add(dg.AssetKey("crawl_shard"))
# The project's jobs in `make demo`'s order, each limited to what is needed, once per partition.
for name in ("shard_curation_job", "seed_job", "synthetic_job", "corpus_to_model_job"):
    try:
        job = defs.resolve_job_def(name)
    except Exception:  # a layout without this job
        continue
    keys = sorted(needed & set(job.asset_layer.selected_asset_keys), key=lambda k: k.to_user_string())
    if not keys:
        continue
    pd = job.partitions_def
    # Every crawl shard (the backfill needs their raw copies) and every seed batch (the UI shows the latest
    # materialization: the last batch, which holds seed chunks in the tiny demo world, so its plot has data).
    every = True
    parts = [None] if pd is None else shards if isinstance(pd, dg.DynamicPartitionsDefinition) \
        else pd.get_partition_keys(dynamic_partitions_store=instance)
    failures = []
    for part in parts:
        result = job.execute_in_process(partition_key=part, instance=instance, asset_selection=keys,
                                        tags={"modelworks/source": "browser-test"}, raise_on_error=False)
        errors = []
        for e in result.all_events:
            if e.event_type_value == "STEP_FAILURE":
                err, chain = e.event_specific_data.error, []
                while err is not None:  # Dagster's wrapper, then the user code's own error
                    chain.append(err.message.strip())
                    err = err.cause
                errors.append(f"{e.step_key}: {' <- '.join(chain)[-1500:]}")
        if not result.success:
            failures.append(f"{name} {part or ''} failed: {errors}")
            print(failures[-1], flush=True)
            if every:
                break
            continue
        print("materialized", name, part or "", [k.to_user_string() for k in keys], flush=True)
        if not every:
            break
    assert len(failures) < len(parts) and (not every or not failures), failures
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                 data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        data = json.loads(resp.read())
    if data.get("errors"):
        raise AssertionError(f"GraphQL errors: {data['errors']}")
    return data["data"]


def _runs_tagged(port: int, key: str, value: str) -> list[dict]:
    q = """query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) { __typename
             ... on Runs { results { runId jobName status } } } }"""
    return _graphql(port, q, {"tags": [{"key": key, "value": value}]})["runsOrError"]["results"]


def _wait(condition, timeout_s: float, what: str, interval_s: float = 1.0):
    """Poll `condition` until it returns something truthy; fail with `what` (and the last value) on timeout."""
    deadline, last, err = time.monotonic() + timeout_s, None, None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except Exception as e:  # the page or the server is not there yet
            err = e
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}; last={last!r} error={err!r}")


def _stop_group(proc: subprocess.Popen, grace_s: float = 10) -> None:
    """Stop a process started in its own session, with everything it spawned (same process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)  # dagster dev shuts its webserver, daemon and code servers down on ^C
            proc.wait(timeout=grace_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:  # whatever is left of the group (run workers, a hung daemon)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _start_browser(profile_dir: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    # This machine's network is closed: no background connections, no component updates, no sync.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1800,1500", f"--user-data-dir={profile_dir}"):
        opts.add_argument(arg)
    # chromedriver in its own session: chromium and its helpers share its process group, stopped together.
    service = Service(str(CHROMEDRIVER), popen_kw={"start_new_session": True})
    driver = webdriver.Chrome(service=service, options=opts)
    driver.set_page_load_timeout(60)
    return driver, service


class UI:
    """Thin helpers over the live DOM of the Dagster 1.13 UI (texts and aria-labels as it renders them)."""

    def __init__(self, driver, base: str, shots: Path):
        self.d, self.base, self.shots = driver, base, shots
        self.welcomed = False

    def open(self, path: str) -> None:
        self.d.get(self.base + path)
        if not self.welcomed:
            # A fresh browser profile gets Dagster's one-time "Join the Dagster community" dialog over the page.
            skip = self.visible_within("//button[normalize-space()='Skip']", 15)
            if skip is not None:
                skip.click()
            self.welcomed = True

    def visible(self, xpath: str, root=None) -> list:
        from selenium.webdriver.common.by import By

        return [e for e in (root or self.d).find_elements(By.XPATH, xpath) if e.is_displayed()]

    def wait_all_visible(self, xpath: str, timeout_s: float = 45, root=None) -> list:
        """Every visible match, once there is at least one (the page may still be drawing)."""
        return _wait(lambda: self.visible(xpath, root), timeout_s, f"elements {xpath}", 0.5)

    def visible_within(self, xpath: str, timeout_s: float, root=None):
        try:
            return self.wait_visible(xpath, timeout_s, root)
        except AssertionError:
            return None

    def wait_visible(self, xpath: str, timeout_s: float = 45, root=None):
        return _wait(lambda: (self.visible(xpath, root) or [None])[0], timeout_s, f"element {xpath}", 0.5)

    def dialog(self, timeout_s: float = 30):
        return self.wait_visible("//div[contains(@class,'bp5-dialog')]", timeout_s)

    def escape(self) -> None:
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        ActionChains(self.d).send_keys(Keys.ESCAPE).perform()

    def body_text(self) -> str:
        from selenium.webdriver.common.by import By

        return self.d.find_element(By.TAG_NAME, "body").text

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.d.save_screenshot(str(path))
        return path

    def header_materialize_menu(self, item: str) -> None:
        """The asset page's Materialize split button: the caret beside it, then a menu item."""
        button = self.wait_visible("//button[starts-with(normalize-space(),'Materialize')]")
        button.find_element("xpath", "following::button[1]").click()
        self.wait_visible(f"//*[@role='menu']//*[@role='menuitem'][normalize-space()='{item}']", 15).click()


def _launchpad_yaml(ui: UI) -> str:
    return ui.d.execute_script("return document.querySelector('.CodeMirror').CodeMirror.getValue()")


def _set_launchpad_yaml(ui: UI, text: str) -> None:
    # The Launchpad's editor is CodeMirror 5: set the document on its instance, as typing would.
    ui.d.execute_script("const cm = document.querySelector('.CodeMirror').CodeMirror; cm.setValue(arguments[0]);"
                        "cm.focus(); cm.setCursor(cm.lineCount(), 0);", text)


def _run(port: int, run_id: str) -> dict:
    q = """query($id: ID!) { runOrError(runId: $id) { __typename
             ... on Run { runId status runConfigYaml tags { key value } } } }"""
    return _graphql(port, q, {"id": run_id})["runOrError"]


def _backfill(port: int, backfill_id: str) -> dict:
    q = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
             ... on PartitionBackfill { id status partitionNames runs(limit: 20) { runId status } } } }"""
    return _graphql(port, q, {"id": backfill_id})["partitionBackfillOrError"]


def _materializations(port: int, asset: str, run_ids: set[str]) -> list[dict]:
    """The asset's materialization events written by these runs: partition and text metadata."""
    q = """query($path: [String!]!) { assetOrError(assetKey: {path: $path}) {
             ... on Asset { assetMaterializations(limit: 50) { partition runId
                 metadataEntries { label ... on TextMetadataEntry { text } } } } } }"""
    events = _graphql(port, q, {"path": [asset]})["assetOrError"]["assetMaterializations"]
    return [e for e in events if e["runId"] in run_ids]


def test_a_person_materializes_backfills_and_reads_a_plot_in_the_dagster_ui(tmp_path):
    t_start = time.monotonic()

    def phase(name: str) -> None:  # progress with elapsed seconds, shown by `pytest -s` and on failure
        print(f"[browser-ui {time.monotonic() - t_start:6.1f}s] {name}", flush=True)
    dagster = Path(sys.executable).parent / "dagster"
    if not dagster.exists():
        pytest.skip("dagster CLI not installed beside this interpreter")
    import dagster as dg

    from curation.demo.crawl import DemoCrawlConfig, generate_demo_crawl

    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    home, dagster_home = tmp_path / "mw", tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "pipelines" / "dagster.yaml", dagster_home / "dagster.yaml")
    shards = generate_demo_crawl(home, DemoCrawlConfig(n_shards=2, pages_per_shard=40, seed=0))["shards"]
    assert len(shards) == 2
    # Partitions exist before the daemon starts, so the landing sensor launches nothing of its own.
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    instance.add_dynamic_partitions("crawl_shards", shards)
    instance.dispose()

    # The location's recipe, as a user writes one: tiny, with this demo world's manuals as the seed documents.
    recipe = tmp_path / "ui.yaml"
    recipe.write_text(f"extends: {REPO / 'recipes' / 'tiny.yaml'}\ninputs:\n  seed_docs: {home / 'demo' / 'seed'}\n")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "MODELWORKS_HOME": str(home),
           "MODELWORKS_RECIPE": str(recipe), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    port = _free_port()
    dev_log = tmp_path / "dagster_dev.log"
    procs: list[subprocess.Popen] = []
    driver = service = None
    try:
        # dagster dev and the preparation run side by side; each in its own session, stopped as a group.
        with dev_log.open("w") as log:
            dev = subprocess.Popen([str(dagster), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
                                   cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(dev)
        prep_log = tmp_path / "prepare.log"
        with prep_log.open("w") as log:
            prep = subprocess.Popen([sys.executable, "-c", PREPARE, ",".join(shards), PLOT_ASSET], cwd=REPO, env=env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(prep)
        driver, service = _start_browser(Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)))
        prep.wait(timeout=PREPARE_TIMEOUT_S)
        assert prep.returncode == 0, f"preparing the instance failed:\n{prep_log.read_text()[-4000:]}"
        phase("prepared: " + "; ".join(l[13:] for l in prep_log.read_text().splitlines()
                                       if l.startswith("materialized ")))

        def graph_served():
            if dev.poll() is not None:
                raise AssertionError("dagster dev exited early:\n" + dev_log.read_text()[-3000:])
            return _graphql(port, "{ assetNodes { assetKey { path } } }")["assetNodes"]
        _wait(graph_served, 180, "dagster dev to serve the asset graph", 2)
        phase("dagster dev serves the graph")
        ui = UI(driver, f"http://127.0.0.1:{port}", ARTIFACTS)

        # (1) The global asset lineage, every group expanded.
        ui.open("/asset-groups")
        ui.wait_visible("//*[normalize-space()='Global asset lineage']")
        ui.wait_visible("//button[.//div[@aria-label='zoom_in']]")  # the graph's controls are drawn
        settings = ui.wait_all_visible("//button[.//div[@aria-label='settings']]", 20)[-1]  # the graph's, not the nav's
        settings.click()
        toggle = ui.wait_visible("//*[normalize-space(text())='Expand all groups' or "
                                 "normalize-space(text())='Collapse all groups']", 20)
        if toggle.text.strip().startswith("Expand"):
            toggle.click()
        # The expanded groups are remembered by the browser; a fresh load without the zoom it remembered
        # fits the whole expanded graph into view.
        time.sleep(1)
        ui.d.execute_script("window.localStorage.removeItem('defaultZoom')")
        ui.d.refresh()
        for name in ("crawl_shard", BACKFILL_ASSET, LAUNCHPAD_ASSET, "deduplicated_pages"):
            ui.wait_visible(f"//*[local-name()='foreignObject']//*[normalize-space(text())='{name}']", 45)
        time.sleep(1)  # let the layout animation settle
        ui.shot("1_asset_graph")
        phase("asset graph")

        # (2) Materialize seed_corpus from the Launchpad with one config field changed.
        ui.open(f"/assets/{LAUNCHPAD_ASSET}")
        ui.header_materialize_menu("Open launchpad")
        pad = ui.dialog()
        ui.wait_visible(".//div[contains(@class,'CodeMirror')]", 30, pad)
        yaml_text = _wait(lambda: _launchpad_yaml(ui), 30, "the Launchpad's default config")
        seed_dir = str(home / "demo" / "seed")
        assert re.search(r"^\s*source_dir:", yaml_text, re.M), yaml_text
        _set_launchpad_yaml(ui, re.sub(r"^(\s*source_dir:).*$", rf"\1 {seed_dir}", yaml_text, count=1, flags=re.M))
        ui.wait_visible(".//*[normalize-space()='No errors']", 30, pad)
        assert f"source_dir: {seed_dir}" in _launchpad_yaml(ui)
        ui.shot("2_launchpad_config_changed")
        # The button stays disabled while the edited config is being validated against the code location.
        launch = _wait(lambda: [b for b in ui.visible(".//button[normalize-space()='Materialize']", pad)
                                if b.is_enabled()], 60, "the Launchpad's Materialize button to be enabled", 0.5)
        launch[-1].click()
        run_id = _wait(lambda: (m := re.search(r"/runs/([0-9a-f-]{36})", ui.d.current_url)) and m.group(1), 60,
                       "the Launchpad to open the launched run")
        ui.wait_visible(f"//*[normalize-space()='{LAUNCHPAD_ASSET}']", 45)
        ui.wait_visible("//*[normalize-space()='RUN_ENQUEUED' or normalize-space()='RUN_STARTING' "
                        "or normalize-space()='RUN_START']", 60)
        ui.shot("3_launched_run")
        phase(f"launched run {run_id}")
        # What the click did: a run of seed_corpus whose config carries the edited field.
        run_config = yaml.safe_load(_run(port, run_id)["runConfigYaml"])
        assert run_config["ops"][LAUNCHPAD_ASSET]["config"]["source_dir"] == seed_dir, run_config

        # (3) Backfill curated_pages over the two shards from the partition dialog.
        ui.open(f"/assets/{BACKFILL_ASSET}")
        dialog = None
        for _ in range(4):  # on a loaded machine the page may still be hydrating when the button first shows
            ui.wait_visible("//*[normalize-space()='Definition']", 60)
            ui.wait_visible(f"//button[starts-with(normalize-space(),'Materialize')]").click()
            dialog = ui.visible_within("//div[contains(@class,'bp5-dialog')]", 20)
            if dialog is not None:
                break
        assert dialog is not None, "the partition dialog never opened"
        ui.wait_visible(".//*[normalize-space()='Partition selection']", 30, dialog)
        selector = ui.wait_visible(".//*[normalize-space()='Select a partition or create one']", 30, dialog)
        selector.click()
        for shard in shards:
            # Each menu item carries the partition key in a title (its text is doubled by a measuring span).
            ui.wait_visible(f"//ul[@role='menu']//*[@role='menuitem'][.//*[@title='{shard}']]", 20).click()
            time.sleep(0.3)
        ui.escape()  # closes the partition menu, not the dialog
        ui.wait_visible(".//*[normalize-space()='2 partitions']", 20, dialog)
        ui.shot("4_backfill_dialog")
        ui.wait_visible(".//button[normalize-space()='Launch backfill']", 20, dialog).click()
        toast = ui.wait_visible("//*[starts-with(normalize-space(),'Created backfill')]", 30)
        backfill_id = re.search(r"Created backfill (\w+)", toast.text).group(1)
        ui.open(f"/runs/b/{backfill_id}")
        for shard in shards:
            ui.wait_visible(f"//*[normalize-space()='{shard}']", 45)
        ui.shot("5_backfill_launched")
        phase(f"launched backfill {backfill_id}")
        assert sorted(_backfill(port, backfill_id)["partitionNames"]) == sorted(shards)

        # (4) Wait until the run and the backfill succeed (verified over GraphQL).
        def finished():
            run, bf = _run(port, run_id), _backfill(port, backfill_id)
            bad = [r for r in [run, *bf["runs"]] if r["status"] in ("FAILURE", "CANCELED")]
            if bad:
                raise AssertionError(f"runs failed: {bad}; see {dev_log}")
            done = (run["status"] == "SUCCESS" and bf["status"] in ("COMPLETED", "COMPLETED_SUCCESS")
                    and len(bf["runs"]) == 2 and all(r["status"] == "SUCCESS" for r in bf["runs"]))
            return (run, bf) if done else None
        try:
            run, bf = _wait(finished, RUN_TIMEOUT_S, "the Launchpad run and the backfill to succeed", 3)
        except AssertionError as err:
            raise AssertionError(f"{err}\n--- dagster dev log ---\n{dev_log.read_text()[-4000:]}") from None
        phase("run and backfill succeeded")
        assert {e["partition"] for e in _materializations(port, BACKFILL_ASSET, {r["runId"] for r in bf["runs"]})} \
            == set(shards)
        seed_events = _materializations(port, LAUNCHPAD_ASSET, {run_id})
        assert len(seed_events) == 1, seed_events
        # The materialization reports the folder it read (where the asset's metadata names it).
        source = [m["text"] for m in seed_events[0]["metadataEntries"] if m["label"] == "source"]
        assert source in ([], [seed_dir]), source
        ui.d.refresh()
        ui.wait_visible("//*[normalize-space(text())='Status']/following-sibling::*//*[normalize-space()='Succeeded']", 45)
        ui.shot("6_backfill_succeeded")
        ui.open(f"/runs/{run_id}")
        ui.wait_visible("//*[normalize-space()='RUN_SUCCESS']", 45)
        ui.shot("7_run_succeeded")

        # (5) An asset whose metadata holds a plot: the Markdown viewer renders the embedded PNG.
        ui.open(f"/assets/{PLOT_ASSET}")
        ui.wait_visible("//*[normalize-space()='Metadata']", 45)
        links = _wait(lambda: ui.visible("//a[normalize-space()='[Show Markdown]']"), 45,
                      f"a Markdown metadata entry on {PLOT_ASSET}")
        plot = None
        for link in links:
            ui.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
            link.click()
            md = ui.dialog()
            ui.wait_all_visible(".//button[normalize-space()='Close']", 20, md)  # the dialog is drawn

            def decoded_sizes():  # a data: PNG decodes after it is attached; give a loaded machine a few seconds
                images = ui.visible(".//img[starts-with(@src,'data:image/png')]", md)
                sizes = [ui.d.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", i)
                         for i in images]
                return sizes if images and all(w > 0 for w, _ in sizes) else None
            try:
                sizes = _wait(decoded_sizes, 10, "the Markdown entry's images to decode", 0.5)
            except AssertionError:
                sizes = []  # an entry without images: close it and try the next
            if any(w > 100 and h > 100 for w, h in sizes):
                plot = sizes
                ui.shot("8_metadata_plot")
                break
            ui.wait_all_visible(".//button[normalize-space()='Close']", 20, md)[-1].click()
        assert plot, f"no rendered PNG plot in the Markdown metadata of {PLOT_ASSET}"
        phase("plot opened")

        # (6) A recipe launched from the Launchpad: recipe_job, its default config the location's recipe; a recipe's
        # YAML pasted in its place runs as `modelworks run` would, each stage its own run in this instance.
        ui.open("/locations/__repository__@modelworks/jobs/recipe_job/playground")
        ui.wait_visible("//div[contains(@class,'CodeMirror')]", 45)
        default = _wait(lambda: _launchpad_yaml(ui), 30, "recipe_job's default config")
        assert str(recipe) in default, default
        pasted = f"extends: tiny.yaml\ninputs:\n  seed_docs: {seed_dir}\nseed:\n  max_chunk_words: 90\n"
        # as a person types it: the recipe as a YAML block, the fields left out at their defaults
        _set_launchpad_yaml(ui, "ops:\n  run_recipe:\n    config:\n      recipe: |\n"
                            + "".join(f"        {line}\n" for line in pasted.splitlines())
                            + f"      only: [{LAUNCHPAD_ASSET}]\n")
        ui.wait_visible("//*[normalize-space()='No errors']", 30)
        ui.shot("9_recipe_launchpad")
        button = _wait(lambda: [b for b in ui.visible("//button[normalize-space()='Launch Run']") if b.is_enabled()],
                       60, "recipe_job's Launch Run button to be enabled", 0.5)
        button[-1].click()
        launcher = _wait(lambda: (m := re.search(r"/runs/([0-9a-f-]{36})", ui.d.current_url)) and m.group(1), 60,
                         "the Launchpad to open the recipe_job run")

        def children_done():
            top = _run(port, launcher)
            if top["status"] in ("FAILURE", "CANCELED"):
                raise AssertionError(f"recipe_job run {launcher} {top['status']}; see {dev_log}")
            kids = _runs_tagged(port, "modelworks/launched_by", launcher)
            return kids if top["status"] == "SUCCESS" else None
        try:
            kids = _wait(children_done, RUN_TIMEOUT_S, "the recipe_job run to succeed", 2)
        except AssertionError as err:
            raise AssertionError(f"{err}\n--- dagster dev log ---\n{dev_log.read_text()[-4000:]}") from None
        assert [(k["jobName"], k["status"]) for k in kids] == [("seed_job", "SUCCESS")], kids
        child = _run(port, kids[0]["runId"])
        assert yaml.safe_load(child["runConfigYaml"])["ops"][LAUNCHPAD_ASSET]["config"]["max_chunk_words"] == 90
        ui.open(f"/runs/{launcher}")
        ui.wait_visible("//*[normalize-space()='RUN_SUCCESS']", 45)
        ui.shot("10_recipe_run_succeeded")
        phase(f"plot opened; screenshots in {ARTIFACTS}: {sorted(p.name for p in ARTIFACTS.glob('*.png'))}")
    except BaseException:
        if driver is not None:  # what the browser showed when the test gave up
            try:
                driver.save_screenshot(str(ARTIFACTS / "failure.png"))
            except Exception:
                pass
        raise
    finally:
        if driver is not None:
            try:
                driver.quit()
            except Exception:
                pass
        if service is not None and service.process is not None:
            _stop_group(service.process, grace_s=5)
        for proc in reversed(procs):
            _stop_group(proc)
        phase("stopped dagster dev and chromium")
