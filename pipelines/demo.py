"""`python -m pipelines.demo --profile X`: `modelworks demo --recipe X` (recipes/X.yaml), kept for scripts and docs.

Generates the demo crawl into the demo's own home (`MODELWORKS_HOME`, default `.modelworks/`) unless it is there,
materializes the whole graph through the jobs and the Dagster instance (`DAGSTER_HOME`) the UI shows, and prints
the stage table. See pipelines/cli.py.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def run(profile_name: str | None = None, regenerate: bool = False) -> dict:
    """Run the demo with the recipe named like the profile (default `MODELWORKS_PROFILE` or demo)."""
    from pipelines.cli import run_command

    name = profile_name or os.environ.get("MODELWORKS_PROFILE", "demo")
    code, result = run_command(name, [], None, demo=True, regenerate=regenerate)
    if code:
        raise SystemExit(code)
    storage = result["storage"]
    return {"report": json.loads(storage.read_text(result["report"])) if result["report"] else None,
            "table": result["table"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None, help="tiny | demo | smollm | smollm_gpu | gpu: the recipe "
                                                    "recipes/<profile>.yaml (default: $MODELWORKS_PROFILE or demo)")
    ap.add_argument("--regenerate", action="store_true", help="write the demo crawl again even if shards exist")
    args = ap.parse_args(argv)
    from pipelines.cli import main as cli_main

    name = args.profile or os.environ.get("MODELWORKS_PROFILE", "demo")
    return cli_main(["demo", "--recipe", name] + (["--regenerate"] if args.regenerate else []))


if __name__ == "__main__":
    sys.exit(main())
