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


def test_real_chain_never_imports_the_demo_world_at_module_level():
    for pkg in ("curation", "training", "evaluation", "assets"):
        for f in (REPO / pkg).rglob("*.py"):
            if "demo" in f.relative_to(REPO).parts[:2]:
                continue
            tree = ast.parse(f.read_text())
            top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
            mods = {getattr(n, "module", None) or n.names[0].name for n in top}
            assert not any(m and m.startswith("curation.demo") for m in mods), f"{f.relative_to(REPO)} imports demo code"


PATH_LITERALS = re.compile(r"""\.(parquet|jsonl|json|duckdb|txt)["']|storage\.path\(|Path\(|table_dir\(|os\.path\.join""")


def test_assets_build_no_paths_from_literals():
    for f in (REPO / "assets").glob("*.py"):
        if f.name == "storage.py":
            continue
        hits = [f"{i}: {line.strip()}" for i, line in enumerate(f.read_text().splitlines(), 1)
                if PATH_LITERALS.search(line) and not line.strip().startswith("#")]
        assert not hits, f"{f.relative_to(REPO)} builds paths by hand:\n" + "\n".join(hits)
