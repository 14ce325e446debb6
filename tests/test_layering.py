"""The layering rules: libraries never import dagster, assets never import pipelines, assets build no paths."""
import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_libraries_never_import_dagster():
    for pkg in ("curation", "training", "evaluation"):
        for f in (REPO / pkg).rglob("*.py"):
            bad = {m for m in _imports(f) if m.split(".")[0] in ("dagster", "dagster_pipes", "dagster_ray", "assets", "pipelines")}
            assert not bad, f"{f.relative_to(REPO)} imports {bad}"


def test_assets_never_import_pipelines():
    for f in (REPO / "assets").glob("*.py"):
        bad = {m for m in _imports(f) if m.split(".")[0] == "pipelines"}
        assert not bad, f"{f.relative_to(REPO)} imports {bad}"


def test_real_chain_never_imports_the_demo_world_anywhere():
    """Not at module level, not inside a function: every import in the whole module (`_imports` walks the AST).
    Only curation/demo itself and pipelines/ (pipelines/demo_checks.py: the demo's ground-truth checks, which only
    a demo run registers) may import it."""
    checked = 0
    for pkg in ("curation", "training", "evaluation", "assets"):
        for f in (REPO / pkg).rglob("*.py"):
            if f.relative_to(REPO).parts[:2] == ("curation", "demo"):
                continue
            mods = _imports(f)
            bad = {m for m in mods if m == "curation.demo" or m.startswith("curation.demo.")}
            assert not bad, f"{f.relative_to(REPO)} imports demo code: {bad}"
            tree = ast.parse(f.read_text())  # `from curation import demo` names the package as an imported name
            assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "curation"
                        and any(a.name == "demo" for a in n.names)], f"{f.relative_to(REPO)} imports curation.demo"
            checked += 1
    assert checked > 20


def test_the_layering_check_sees_imports_inside_functions():
    source = "def f():\n    if True:\n        from curation.demo.truth import score_dedup\n"
    tree = ast.parse(source)
    assert "curation.demo.truth" in {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


def test_no_asset_branches_on_the_demo_world():
    """The real chain's assets hold no demo branch: no asset reads the demo generator's truth or fact base."""
    for f in (REPO / "assets").glob("*.py"):
        if f.name == "storage.py":  # the path layer names the demo's folders for pipelines/ (the demo command)
            continue
        text = f.read_text()
        for needle in ("demo_truth", "demo_facts", "load_truth", "load_fact_base", "vs_ground_truth"):
            assert needle not in text, f"{f.relative_to(REPO)} mentions {needle}"


PATH_LITERALS = re.compile(r"""\.(parquet|jsonl|json|duckdb|txt)["']|storage\.path\(|Path\(|table_dir\(|os\.path\.join""")


def test_assets_build_no_paths_from_literals():
    for f in (REPO / "assets").glob("*.py"):
        if f.name == "storage.py":
            continue
        hits = [f"{i}: {line.strip()}" for i, line in enumerate(f.read_text().splitlines(), 1)
                if PATH_LITERALS.search(line) and not line.strip().startswith("#")]
        assert not hits, f"{f.relative_to(REPO)} builds paths by hand:\n" + "\n".join(hits)
