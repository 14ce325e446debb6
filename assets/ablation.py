"""Ablation group: the variants of one recipe side by side (`modelworks run` with `variants:` materializes every
variant, then this asset). The comparison itself lives in `evaluation.comparison`."""

import json
import shutil
import tempfile

import dagster as dg

from assets.evaluation import STAGES
from assets.storage import ModelworksStorage


@dg.asset(group_name="evaluation", code_version="1", deps=[f"{s}_model_scores" for s in STAGES],
          kinds={"html", "markdown"},
          description="The variants of an ablation side by side on the same test items: every metric of every stage "
                      "with its 95% CI per variant, and each variant against the first: the paired difference with "
                      "its CI and a verdict (helped / no significant change / hurt / too few to tell), forgetting "
                      "included. Reads reports/variants.json (written by the runner); writes reports/comparison.*")
def variant_comparison(context: dg.AssetExecutionContext, storage: ModelworksStorage) -> dg.MaterializeResult:
    from evaluation.comparison import build_variant_comparison
    from evaluation.plots import png_markdown

    manifest = json.loads(storage.read_text(storage.variants_manifest()))
    results, settings, reuse, runs = {}, {}, {}, {}
    for v in manifest["variants"]:
        seen = storage.with_stage_keys(v["stage_keys"])
        results[v["name"]] = {s: json.loads(seen.read_text(seen.scores(s, "test"))) for s in STAGES}
        settings[v["name"]] = {k: x for k, x in _flat(v["overrides"]).items()}
    if storage.exists(storage.reuse_log()):
        for line in storage.read_text(storage.reuse_log()).splitlines():
            row = json.loads(line)
            if row.get("launch") == manifest.get("launch"):
                op = row["op"] + (f"[{row['partition']}]" if row.get("partition") else "")
                reuse.setdefault(row["variant"], {"reused": [], "materialized": []})[row["action"]].append(op)
                if row.get("run_id") and not row.get("partition"):
                    runs.setdefault(row["variant"], {})[row["op"]] = (row["run_id"], row.get("from_variant"))
    with tempfile.TemporaryDirectory() as tmp:
        built = build_variant_comparison(results, tmp, stages=list(STAGES), settings=settings, reuse=reuse,
                                         title=f"Ablation {manifest['recipe']}: variants side by side")
        files = built["paths"]
        for suffix, name in (("png", "chart"), ("md", "markdown"), ("html", "html"), ("json", "json")):
            with storage.writing(storage.comparison(suffix)) as out:  # json last: it says the comparison is whole
                shutil.copyfile(files[name], out)
        with open(files["chart"], "rb") as f:
            png = f.read()
    report = built["report"]
    context.log.info("\n" + built["summary"])
    return dg.MaterializeResult(metadata={
        "summary": dg.MetadataValue.md(f"```\n{built['summary']}\n```"),
        "chart": dg.MetadataValue.md(png_markdown(png, "variants")),
        "verdicts": dg.MetadataValue.json(report["verdicts"]),
        "variants": dg.MetadataValue.json({v["name"]: v["stage_keys"] for v in manifest["variants"]}),
        "variant_runs": dg.MetadataValue.md(_variant_runs_table(manifest, settings, runs)),
        "reuse": dg.MetadataValue.json({v: {k: len(x) for k, x in r.items()} for v, r in reuse.items()}),
        "json_path": dg.MetadataValue.path(storage.comparison("json")),
        "html_path": dg.MetadataValue.path(storage.comparison("html"))})


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


MODEL_OPS = ("base_model", "dapt_model", "sft_model", "dpo_model")


def _variant_runs_table(manifest: dict, settings: dict, runs: dict) -> str:
    """Each variant's models and scores as links to the runs that made them (a stage shared with an earlier variant
    links to that variant's run), so the UI shows which model and which scores are whose."""
    ops = [*MODEL_OPS, *(f"{s}_model_scores" for s in STAGES)]
    head = "| variant | settings | " + " | ".join(ops) + " |"
    lines = [head, "|" + "---|" * (len(ops) + 2)]
    for v in manifest["variants"]:
        name = v["name"]
        cells = []
        for op in ops:
            run_id, shared_from = runs.get(name, {}).get(op, (None, None))
            if run_id is None:
                cells.append("-")
                continue
            link = f"[{run_id[:8]}](/runs/{run_id})"
            cells.append(link + (f" (shared with {shared_from})" if shared_from and shared_from != name else ""))
        overrides = ", ".join(f"{k}={x}" for k, x in settings.get(name, {}).items()) or "the recipe as is"
        lines.append(f"| {name} | {overrides} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
