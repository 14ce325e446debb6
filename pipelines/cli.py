"""`modelworks`: run a recipe through the Dagster instance the UI shows.

    modelworks run RECIPE [--set key=value ...] [--only ASSET ...]   materialize the graph for a recipe
    modelworks demo [--recipe RECIPE] [--regenerate]                  generate the demo crawl (only here) and run it
    modelworks report                                                 the stage table and where the HTML report is
    modelworks ui [RECIPE]                                            dagster dev on 127.0.0.1 (same DAGSTER_HOME)
    modelworks check RECIPE [--set ...]                               validate and print the resolved recipe
    modelworks keys                                                   every recipe key, its type and default

RECIPE is a file (`recipes/tiny.yaml`, `my.yaml`) or the name of one shipped in recipes/ (`tiny`). The storage root
is `--home`, else `MODELWORKS_HOME`, else `.modelworks/` in the checkout; runs are recorded in `DAGSTER_HOME`
(default `.dagster_home/`). The terminal shows one line per stage; everything else (Dagster's log, library
output) goes to a log file under the storage root (`--verbose`: to the terminal).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="modelworks", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p, recipe: str | None):
        if recipe == "positional":
            p.add_argument("recipe", help="a recipe file, or the name of one in recipes/ (tiny, demo, smollm, ...)")
        elif recipe == "optional":
            p.add_argument("recipe", nargs="?", default=None,
                           help="a recipe file or name (default: the storage root's latest resolved recipe)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a recipe key (dotted, value read as YAML), e.g. --set dapt.lr=1e-3")
        p.add_argument("--home", default=None, help="storage root (default: $MODELWORKS_HOME or .modelworks/)")

    def running(p):
        p.add_argument("--only", nargs="+", action="extend", default=None, metavar="ASSET",
                       help="materialize only these assets (NAME+ : and everything downstream)")
        p.add_argument("--log", default=None, help="the full log (default: <home>/logs/<command>-<time>.log)")
        p.add_argument("--verbose", action="store_true", help="Dagster's log on the terminal instead of a file")

    p = sub.add_parser("run", help="materialize the graph for a recipe")
    common(p, "positional")
    running(p)
    p = sub.add_parser("demo", help="generate the demo crawl into the demo's home and run a recipe on it")
    p.add_argument("--recipe", default="demo", help="default: demo (recipes/demo.yaml)")
    common(p, None)
    running(p)
    p.add_argument("--regenerate", action="store_true", help="write the demo crawl again even if it exists")
    p = sub.add_parser("report", help="print the stage table and where the HTML report is")
    p.add_argument("--home", default=None)
    p = sub.add_parser("ui", help="dagster dev on 127.0.0.1, with the recipe's code location")
    common(p, "optional")
    p.add_argument("--port", type=int, default=3000)
    p = sub.add_parser("check", help="validate a recipe and print it resolved")
    common(p, "positional")
    sub.add_parser("keys", help="every recipe key with its type and default")
    return ap


def _home(arg: str | None) -> str:
    from assets.storage import modelworks_home

    home = arg or modelworks_home()
    home = home if "://" in home else str(Path(home).expanduser().resolve())
    os.environ["MODELWORKS_HOME"] = home
    return home


def _err(lines) -> int:
    for line in lines:
        print(f"modelworks: {line}", file=sys.stderr, flush=True)
    return 2


def run_command(recipe_arg: str, overrides: list[str], home: str | None, *, only=None, log: str | None = None,
                verbose: bool = False, demo: bool = False, regenerate: bool = False) -> tuple[int, dict]:
    """`modelworks run` / `modelworks demo`: (exit code, {"report", "table", ...})."""
    from pipelines.recipe import RecipeError
    from pipelines.runner import RunFailed, launch, load_for_run, print_report, quiet

    t0 = time.perf_counter()
    home = _home(home)
    try:
        recipe, storage = load_for_run(recipe_arg, overrides, home, only=only, demo=demo)
    except RecipeError as err:
        return _err(err.lines), {}
    log_path = None
    if not verbose:
        name = f"{'demo' if demo else 'run'}-{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        log_path = Path(log) if log else (Path(storage.log_file(name)) if storage.is_local
                                          else Path(os.environ.get("TMPDIR", "/tmp")) / name)
    with quiet(log_path) as out:
        if log_path:
            out(f"full log: {log_path}")
        try:
            result = launch(recipe, storage, home, recipe_arg=recipe_arg, overrides=overrides, out=out, only=only,
                            verbose=verbose, demo=demo, regenerate=regenerate,
                            source="modelworks-demo" if demo else "modelworks-cli")
            recipe = result["recipe"]
        except RecipeError as err:
            for line in err.lines:
                out(f"error: {line}")
            return 2, {}
        except RunFailed:
            if log_path:
                out(f"full log: {log_path}")
            return 1, {}
        except Exception:  # a bug, not a failed step: show it here, once
            out("modelworks failed:")
            out(traceback.format_exc().rstrip(), raw=True)
            return 1, {}
        if "comparison" in result:  # a recipe with variants: the comparison, not one stage table
            from pipelines.runner import print_comparison

            table = print_comparison(result["storage"], out)
            out(f"recipe {recipe.name} ({recipe.digest}): {len(result['runs'])} runs for {len(result['variants'])} "
                f"variants in {time.perf_counter() - t0:.0f}s; what each reused: {storage.reuse_log()}")
            return 0, {**result, "table": table, "recipe": recipe}
        table = print_report(result["storage"], out)
        if table is None:
            out(f"no stage report in {home} yet (not materialized by this run)")
        out(f"recipe {recipe.name} ({recipe.digest}): {len(result['runs'])} runs in "
            f"{time.perf_counter() - t0:.0f}s; resolved recipe: {storage.recipe_resolved()}")
        return 0, {**result, "table": table, "recipe": recipe}


def report_command(home: str | None) -> int:
    from assets.storage import ModelworksStorage
    from pipelines.runner import Console, print_report

    storage = ModelworksStorage(root=_home(home))
    out = Console()
    if storage.exists(storage.recipe_resolved()):
        out(storage.read_text(storage.recipe_resolved()).splitlines()[0].lstrip("# "), raw=True)
    if print_report(storage, out, header=True) is None:
        return _err([f"no report in {storage.root} yet: run `modelworks run RECIPE` (or `modelworks demo`)"])
    return 0


def ui_command(recipe_arg: str | None, overrides: list[str], home: str | None, port: int) -> int:
    from assets.storage import ModelworksStorage
    from pipelines.recipe import RecipeError, load_recipe
    from pipelines.runner import ensure_dagster_home

    home = _home(home)
    storage = ModelworksStorage(root=home)
    try:
        if recipe_arg is None and storage.exists(storage.recipe_resolved()):
            recipe_arg = storage.recipe_resolved()
        recipe = load_recipe(recipe_arg, overrides) if recipe_arg else None
    except RecipeError as err:
        return _err(err.lines)
    if recipe is not None:
        # the code location loads the resolved recipe (absolute paths, no extends): the same settings, same hash
        loc = storage.recipe_copy(recipe.name, recipe.digest)
        storage.write_text(recipe.to_yaml(), loc)
        os.environ["MODELWORKS_RECIPE"] = loc
        print(f"modelworks ui: recipe {recipe.name} ({recipe.digest}), MODELWORKS_HOME={home}", flush=True)
    dagster_home = ensure_dagster_home()
    print(f"modelworks ui: DAGSTER_HOME={dagster_home}, http://127.0.0.1:{port}", flush=True)
    exe = Path(sys.executable).parent / "dagster"
    os.chdir(REPO)
    cmd = [str(exe), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO / "workspace.yaml")]
    os.execv(cmd[0], cmd)
    return 0  # not reached


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("run", "demo"):
        code, _ = run_command(args.recipe, args.overrides, args.home, only=args.only, log=args.log,
                              verbose=args.verbose, demo=args.command == "demo",
                              regenerate=getattr(args, "regenerate", False))
        return code
    if args.command == "report":
        return report_command(args.home)
    if args.command == "ui":
        return ui_command(args.recipe, args.overrides, args.home, args.port)
    from pipelines.recipe import RecipeError, describe_keys, load_recipe

    if args.command == "keys":
        print(describe_keys())
        return 0
    try:
        recipe = load_recipe(args.recipe, args.overrides)
    except RecipeError as err:
        return _err(err.lines)
    print(recipe.to_yaml(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
