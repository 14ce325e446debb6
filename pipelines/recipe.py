"""Recipes: one YAML file holds a run's inputs and, stage by stage, the settings that differ from the defaults.

    extends: demo.yaml                 # another recipe, relative to this file; this file's keys win
    inputs:
      crawl: ../data/crawl/            # a folder, a glob or a list of WARC/ARC/JSONL/Parquet files (local or fsspec)
      seed_docs: ../data/manuals/      # a folder of Markdown, text, HTML, PDF
      benchmarks: [../data/bench/]     # JSONL files or folders
      lm_eval_tasks: [hellaswag, ./my_tasks/]   # task names, or folders of lm-eval task YAML
      base_model: smollm2              # scratch | smollm2 | a GGUF file | a Hugging Face directory
      teacher: {backend: openai, base_url: http://127.0.0.1:8000/v1, model: m, api_key_env: MY_KEY}
    dapt: {max_steps: 300, lr: 3.0e-3}

`load_recipe(path, overrides)` follows `extends`, applies `--set key=value` overrides (dotted keys, values read as
YAML) and validates everything before anything runs: an unknown key or a value of the wrong type is one line naming
the key, the file it came from and the valid keys near it.

The valid keys are not written down here; they come from the code, so they cannot drift from it:

- a stage section holds the fields of its asset's `Config` class (`dapt` <- `dapt_model`'s `DaptAssetConfig`,
  `eval` <- every `*_model_scores` asset's `EvalConfig`, ...; `STAGE_ASSETS` names which asset a section sets),
  and those classes are derived from the libraries' dataclasses (assets/configs.py): a setting and its default
  live in one place, the library, and a recipe holds only what differs from it;
- `checks` holds the fields of the asset checks' configs (`blind_baselines_at_chance`'s tolerance and split);
- `inputs.teacher` holds the `TeacherResource`'s fields, `demo_crawl` the demo generator's `DemoCrawlConfig`.

A resolved recipe has every key of every section, set or defaulted (what ran does not depend on defaults that may
change later). It becomes what the jobs take: the teacher resource, the crawl (the storage resource reads it where
it is), and run config for every op. This module needs no Dagster API: it reads the Config classes' pydantic
fields (importing the asset modules imports dagster, as any use of the assets does).
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

REPO = Path(__file__).resolve().parent.parent
RECIPES_DIR = REPO / "recipes"

# A recipe section -> the assets (op names) whose Config it sets; its valid keys are those Configs' fields.
STAGE_ASSETS: dict[str, tuple[str, ...]] = {
    "curation": ("curated_pages",),
    "minhash": ("minhash_signatures",),
    "dedup": ("deduplicated_pages",),
    "seed": ("seed_corpus",),
    "domain": ("domain_selection",),
    "synthetic": ("synthetic_data",),
    "benchmarks": ("benchmark_suite",),
    "decontamination": ("decontaminated_training_sets",),
    "open_model": ("open_model",),
    "tokenizer": ("tokenizer",),
    "tokens": ("token_shards",),
    "pretrain": ("base_model",),
    "dapt": ("dapt_model",),
    "sft": ("sft_model",),
    "dpo": ("dpo_model",),
    "eval": ("*_model_scores",),  # every stage's scores (base, dapt, sft, dpo)
}

# Config fields that an input sets (they are not keys of their stage section: one home per setting).
INPUT_FIELDS = {
    ("seed_corpus", "source_dir"): "inputs.seed_docs",
    ("benchmark_suite", "benchmark_sources"): "inputs.benchmarks",
    ("benchmark_suite", "lm_eval_tasks"): "inputs.lm_eval_tasks",
    ("benchmark_suite", "lm_eval_task_dirs"): "inputs.lm_eval_tasks",
    ("open_model", "source"): "inputs.base_model",
}

# Asset checks with settings of their own: the recipe's `checks:` section (check name -> its config's fields).
CHECK_CONFIGS = ("blind_baselines_at_chance",)

TOP_LEVEL = ("extends", "name", "inputs", "demo_crawl", *STAGE_ASSETS, "checks", "variants")


class RecipeError(ValueError):
    """One line per problem: the file, the key, and what would have been valid."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Key:
    """One valid recipe key: its type (validated with pydantic), default, description, and where it goes."""

    type: Any
    default: Any = None
    doc: str = ""
    path: str | None = None  # inputs resolved relative to their file: "path", "paths", "model", "tasks"


# ---------------------------------------------------------------------------------------------- the schema
def _pydantic_keys(cls) -> dict[str, Key]:
    keys = {}
    for name, f in cls.model_fields.items():
        default = f.get_default(call_default_factory=True)
        keys[name] = Key(type=f.annotation, default=default, doc=f.description or "")
    return keys


def _config_classes(assets_defs) -> dict[str, type]:
    """Asset op name -> the Config class of its `config` argument."""
    out = {}
    for a in assets_defs:
        op = getattr(a, "node_def", None)
        fn = getattr(getattr(op, "compute_fn", None), "decorated_fn", None)
        if fn is None:
            continue
        cls = typing.get_type_hints(fn).get("config")
        if cls is not None and hasattr(cls, "model_fields"):
            out[op.name] = cls
    return out


@dataclass
class Schema:
    sections: dict[str, dict[str, Any]]  # section -> key -> Key (or a nested dict of Keys: inputs.teacher)
    stage_ops: dict[str, tuple[str, ...]]  # section -> op names
    check_ops: dict[str, str] = field(default_factory=dict)  # check name -> the op that runs it

    def key(self, dotted: str) -> Key | None:
        node: Any = self.sections
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node if isinstance(node, Key) else None


_SCHEMAS: dict[int, Schema] = {}


def stage_schema(assets_defs=None) -> Schema:
    """The recipe schema, derived from the asset Config classes (of `assets_defs`, default: the code location's
    assets), the asset checks' configs, the teacher resource and the demo generator's config."""
    if assets_defs is None:
        from pipelines.definitions import all_assets as assets_defs
    if id(assets_defs) in _SCHEMAS:
        return _SCHEMAS[id(assets_defs)]
    from assets.teacher import TeacherResource
    from curation.demo.crawl import DemoCrawlConfig
    configs = _config_classes(assets_defs)
    stage_ops: dict[str, tuple[str, ...]] = {}
    sections: dict[str, dict[str, Any]] = {}
    for section, ops in STAGE_ASSETS.items():
        names = tuple(sorted(o for o in configs if any(re.fullmatch(p.replace("*", ".*"), o) for p in ops)))
        if not names:
            raise RuntimeError(f"recipe section {section!r}: no asset {ops} with a Config in the code location")
        stage_ops[section] = names
        keys: dict[str, Key] = {}
        for op in names:
            for name, k in _pydantic_keys(configs[op]).items():
                if (op, name) not in INPUT_FIELDS:
                    keys.setdefault(name, k)
        if keys:
            sections[section] = keys
    demo_hints = typing.get_type_hints(DemoCrawlConfig)
    sections["demo_crawl"] = {f.name: Key(type=demo_hints[f.name], default=f.default)
                              for f in dataclasses.fields(DemoCrawlConfig)}
    teacher = _pydantic_keys(TeacherResource)
    for k, v in teacher.items():
        if k == "model_path":
            teacher[k] = dataclasses.replace(v, path="model")
    sections["inputs"] = {
        "crawl": Key(list[str], [], "A folder, glob or list of WARC/ARC/JSONL/Parquet files, local or fsspec; read "
                                    "where they are. Empty: the storage root's landing folder.", path="paths"),
        "seed_docs": Key(str, "", "A folder of seed documents (Markdown, text, HTML, PDF); required for the seed stage "
                                 "(`modelworks demo` sets it to the demo world's manuals).", path="path"),
        "benchmarks": Key(list[str], [], "Benchmark JSONL files or folders.", path="paths"),
        "lm_eval_tasks": Key(list[str], [], "lm-eval task names, or folders of lm-eval task YAML.", path="tasks"),
        "base_model": Key(str, "scratch", "scratch, smollm2, a GGUF file or a Hugging Face directory.", path="model"),
        "ground_truth": Key(str, "", "The demo generator's world (its truth sidecars), set by `modelworks demo`: the "
                                     "demo checks score each stage against it. Empty: no demo checks.", path="path"),
        "teacher": teacher,
    }
    from pipelines.definitions import all_checks

    check_ops: dict[str, str] = {}
    for c in all_checks:
        fn = getattr(getattr(c.node_def, "compute_fn", None), "decorated_fn", None)
        cls = typing.get_type_hints(fn).get("config") if fn is not None else None
        for key in c.check_keys:
            if key.name in CHECK_CONFIGS and cls is not None:
                check_ops[key.name] = c.node_def.name
                sections.setdefault("checks", {})[key.name] = _pydantic_keys(cls)
    missing = sorted(set(CHECK_CONFIGS) - set(check_ops))
    if missing:
        raise RuntimeError(f"recipe section 'checks': no asset check {missing} with a config in the code location")
    schema = Schema(sections=sections, stage_ops=stage_ops, check_ops=check_ops)
    _SCHEMAS[id(assets_defs)] = schema
    return schema


# ---------------------------------------------------------------------------------------------- YAML
class _Loader(yaml.SafeLoader):
    """YAML with YAML 1.2 floats: `3e-3` is a number (PyYAML's 1.1 rules read it as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def parse_value(text: str) -> Any:
    """A `--set` value: read as YAML (numbers, booleans, null, [lists]); anything YAML cannot read stays a string."""
    try:
        value = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError:
        return text
    return "" if value is None and text.strip() == "" else value


def _read_yaml(path: Path, text: str | None = None) -> dict:
    label = path if text is None else TEXT_LABEL
    try:
        data = yaml.load(path.read_text(encoding="utf-8") if text is None else text, Loader=_Loader)  # noqa: S506
    except FileNotFoundError:
        raise RecipeError([f"{path}: no such recipe file"]) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise RecipeError([f"{label}{where}: not valid YAML ({getattr(err, 'problem', err)})"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError([f"{label}: a recipe is a mapping of keys (inputs:, dapt:, ...), not a "
                           f"{type(data).__name__}"])
    return data


# ---------------------------------------------------------------------------------------------- merge
def _merge(base: dict, over: dict, origins: dict, origin: str, prefix: tuple = ()) -> dict:
    """`over` on top of `base` (mappings merge key by key, anything else replaces); records each key's origin."""
    out = dict(base)
    for k, v in over.items():
        path = (*prefix, str(k))
        origins[path] = origin
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v, origins, origin, path)
        else:
            out[k] = v
            if isinstance(v, dict):
                _note(v, origins, origin, path)
    return out


def _note(d: dict, origins: dict, origin: str, prefix: tuple) -> None:
    for k, v in d.items():
        origins[(*prefix, str(k))] = origin
        if isinstance(v, dict):
            _note(v, origins, origin, (*prefix, str(k)))


def _resolve_paths(data: dict, schema: Schema, base_dir: Path) -> dict:
    """Relative input paths of one file, made absolute against that file's folder (`--set`: the working dir)."""
    inputs = data.get("inputs")
    if not isinstance(inputs, dict):
        return data

    def one(value, kind):
        if not isinstance(value, str) or not value:
            return value
        if "://" in value or os.path.isabs(os.path.expanduser(value)):
            return os.path.expanduser(value)
        if kind == "model" and value in ("scratch", "smollm2"):
            return value
        if kind == "tasks" and not (os.sep in value or "/" in value or value.startswith((".", "~"))
                                    or (base_dir / value).is_dir()):
            return value  # an lm-eval task name
        return os.path.normpath(str(base_dir / value))

    inputs = dict(inputs)
    for name, key in schema.sections["inputs"].items():
        if isinstance(key, dict):
            if isinstance(inputs.get(name), dict):
                sub = dict(inputs[name])
                for k, kk in key.items():
                    if kk.path and k in sub:
                        sub[k] = one(sub[k], kk.path)
                inputs[name] = sub
            continue
        if key.path and name in inputs:
            v = inputs[name]
            inputs[name] = [one(x, key.path) for x in v] if isinstance(v, list) else one(v, key.path)
    return {**data, "inputs": inputs}


def _set(data: dict, dotted: str, value: Any) -> dict:
    parts = dotted.split(".")
    out = dict(data)
    node = out
    for p in parts[:-1]:
        child = node.get(p)
        node[p] = dict(child) if isinstance(child, dict) else {}
        node = node[p]
    node[parts[-1]] = value
    return out


# ---------------------------------------------------------------------------------------------- validation
def _type_name(tp) -> str:
    name = getattr(tp, "__name__", None) if typing.get_origin(tp) is None else None
    return name or str(tp).replace("typing.", "")


def _admits_bool(tp) -> bool:
    if tp is bool or tp is Any:
        return True
    return any(_admits_bool(a) for a in typing.get_args(tp))


def _check_value(key: Key, value):
    """The value coerced to the key's type, or a ValueError saying what was expected."""
    from pydantic import TypeAdapter, ValidationError

    if isinstance(value, bool) and not _admits_bool(key.type):
        raise ValueError(f"expected {_type_name(key.type)}, got {value!r}")
    if typing.get_origin(key.type) is list and isinstance(value, str):
        value = [value]  # one path or name where a list is allowed
    try:
        return TypeAdapter(key.type).validate_python(value)
    except ValidationError as err:
        raise ValueError(f"expected {_type_name(key.type)}, got {value!r}"
                         f" ({err.errors()[0]['msg'].lower()})") from None


def _where(origins: dict, path: tuple) -> str:
    for n in range(len(path), 0, -1):
        if path[:n] in origins:
            return origins[path[:n]]
    return "recipe"


def _unknown(label: str, dotted: str, name: str, valid: Iterable[str], scope: str) -> str:
    valid = list(valid)
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
    near = dotted.rsplit(".", 1)[0] + "." if "." in dotted else ""
    hint = f"did you mean {', '.join(repr(near + c) for c in close)}? " if close else ""
    return f"{label}: unknown key {dotted!r} ({hint}valid keys in {scope}: {', '.join(valid)})"


def _validate(data: dict, schema: Schema, origins: dict, prefix: str = "",
              top_level: Iterable[str] = TOP_LEVEL) -> tuple[dict, list[str]]:
    """(the data with every value coerced to its key's type, errors)."""
    errors: list[str] = []
    out: dict = {}
    top = list(top_level)
    for name, value in data.items():
        path = tuple(filter(None, prefix.split("."))) + (str(name),)
        dotted = ".".join(path)
        label = _where(origins, path)
        if name not in top:
            errors.append(_unknown(label, dotted, str(name), top, "a recipe" if not prefix else repr(prefix[:-1])))
            continue
        if name in ("extends", "name"):
            if not isinstance(value, str) or not value:
                errors.append(f"{label}: {dotted!r} must be a non-empty string, got {value!r}")
            out[name] = value
            continue
        if name == "variants":
            out[name], errs = _validate_variants(value, data, schema, origins)
            errors += errs
            continue
        section = schema.sections.get(name)
        if section is None:  # a stage whose Config fields all come from inputs (open_model)
            errors.append(f"{label}: {dotted!r} has no settings of its own "
                          f"(set {', '.join(sorted({v for (op, _), v in INPUT_FIELDS.items() if op in schema.stage_ops.get(name, ())}))} instead)")
            continue
        out[name], errs = _validate_section(value, section, path, origins, schema)
        errors += errs
    return out, errors


def _validate_section(value, section: dict, path: tuple, origins: dict, schema: Schema) -> tuple[dict, list[str]]:
    dotted = ".".join(path)
    label = _where(origins, path)
    if value is None:
        return {}, []
    if not isinstance(value, dict):
        return {}, [f"{label}: {dotted!r} must be a mapping of settings ({', '.join(section)}), got {value!r}"]
    out, errors = {}, []
    for k, v in value.items():
        kpath = (*path, str(k))
        kdotted = ".".join(kpath)
        klabel = _where(origins, kpath)
        spec = section.get(k)
        if spec is None:
            moved = [i for (op, f), i in INPUT_FIELDS.items() if f == k and op in schema.stage_ops.get(path[-1], ())]
            if moved:
                errors.append(f"{klabel}: {kdotted!r} is set by {moved[0]!r} (one home per setting)")
            else:
                errors.append(_unknown(klabel, kdotted, str(k), section, repr(dotted)))
            continue
        if isinstance(spec, dict):
            out[k], errs = _validate_section(v, spec, kpath, origins, schema)
            errors += errs
            continue
        try:
            out[k] = _check_value(spec, v)
        except ValueError as err:
            errors.append(f"{klabel}: bad value for {kdotted!r}: {err}")
    return out, errors


def _validate_variants(value, data: dict, schema: Schema, origins: dict) -> tuple[dict, list[str]]:
    label = _where(origins, ("variants",))
    if value is None:
        return {}, []
    if not isinstance(value, dict):
        return {}, [f"{label}: 'variants' must map variant names to settings, got {value!r}"]
    out, errors = {}, []
    allowed = [k for k in TOP_LEVEL if k not in ("extends", "name", "variants")]
    for vname, overlay in value.items():
        if overlay is None:
            overlay = {}  # a variant that changes nothing: the reference the others are compared with
        if not isinstance(overlay, dict):
            errors.append(f"{_where(origins, ('variants', str(vname)))}: variant {vname!r} must be a mapping of "
                          f"settings, got {overlay!r}")
            continue
        overlay = _expand_dotted(overlay)
        checked, errs = _validate(overlay, schema, origins, prefix=f"variants.{vname}.", top_level=allowed)
        out[vname] = checked
        errors += errs
    return out, errors


def _expand_dotted(overlay: dict) -> dict:
    """`{"dapt.lr": 1e-3, "sft": {...}}` -> `{"dapt": {"lr": 1e-3}, "sft": {...}}` (a variant's dotted keys)."""
    out: dict = {}
    for k, v in overlay.items():
        parts = str(k).split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if isinstance(v, dict) and isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = {**node[parts[-1]], **_expand_dotted(v)}
        else:
            node[parts[-1]] = _expand_dotted(v) if isinstance(v, dict) else v
    return out


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (leaves only)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# ---------------------------------------------------------------------------------------------- the recipe
@dataclass
class Recipe:
    """A resolved, validated recipe and what the jobs take from it."""

    name: str
    files: tuple[str, ...]  # the recipe file and the files it extends, nearest first
    overrides: tuple[str, ...]
    data: dict  # every key, set (after extends and --set) or defaulted, coerced; inputs absolute
    schema: Schema = field(repr=False)
    origins: dict = field(default_factory=dict, repr=False)  # key path -> the file (or --set) it came from
    path: str = ""  # the recipe file, absolute (variants are loaded from it again)
    text: str = field(default="", repr=False)  # a recipe given as YAML text (the Launchpad), not as a file

    def where(self, dotted: str) -> str:
        return _where(self.origins, tuple(dotted.split(".")))

    def check_inputs(self) -> None:
        """Every input the recipe names exists (the crawl names at least one shard file): RecipeError otherwise.
        Run before anything runs; `load_recipe` does not call it, so a recipe with placeholder paths still loads."""
        from curation.readers import expand_sources

        inputs = self.data.get("inputs", {})
        errors = []

        def exists(loc: str) -> bool:
            if "://" in loc and not loc.startswith("file://"):
                import fsspec

                fs, path = fsspec.core.url_to_fs(loc)
                return fs.exists(path)
            return Path(loc.removeprefix("file://")).exists()

        if self.crawl:
            try:
                expand_sources(self.crawl)
            except FileNotFoundError as err:
                errors.append(f"{self.where('inputs.crawl')}: inputs.crawl: {err}")
        for key in ("seed_docs",):
            if inputs.get(key) and not exists(inputs[key]):
                errors.append(f"{self.where('inputs.' + key)}: inputs.{key}: {inputs[key]} does not exist")
        for key in ("benchmarks", "lm_eval_tasks"):
            for loc in inputs.get(key) or []:
                if (key == "benchmarks" or _is_path(loc)) and not exists(loc):
                    errors.append(f"{self.where('inputs.' + key)}: inputs.{key}: {loc} does not exist")
        base = inputs.get("base_model", "scratch")
        if base not in ("scratch", "smollm2") and not exists(base):
            errors.append(f"{self.where('inputs.base_model')}: inputs.base_model: {base} does not exist "
                          "(scratch, smollm2, a GGUF file or a Hugging Face directory)")
        if errors:
            raise RecipeError(errors)

    # ---- what the code location takes
    @property
    def crawl(self) -> list[str]:
        return list(self.data.get("inputs", {}).get("crawl") or [])

    @property
    def teacher(self) -> dict:
        return dict(self.data.get("inputs", {}).get("teacher") or {})

    @property
    def ground_truth(self) -> str:
        """The demo world whose ground truth the demo checks score against (inputs.ground_truth), or ""."""
        return str(self.data.get("inputs", {}).get("ground_truth") or "")

    @property
    def demo_crawl(self) -> dict:
        return dict(self.data.get("demo_crawl") or {})

    @property
    def variants(self) -> dict:
        return dict(self.data.get("variants") or {})

    def variant_overrides(self, name: str) -> list[str]:
        """A variant's settings as `--set` overrides (dotted key=value, the value as JSON, which YAML reads)."""
        return [f"{k}={json.dumps(v, default=str)}" for k, v in _flatten(self.variants[name]).items()]

    def variant(self, name: str) -> "Recipe":
        """The recipe with one variant's settings on top (file <- extends, then --set, then the variant); named
        `<recipe>.<variant>`, without `variants:`."""
        if name not in self.variants:
            raise RecipeError([f"{self.files[0]}: no variant {name!r} (variants: {', '.join(self.variants)})"])
        r = load_recipe(self.path or self.files[0], [*self.overrides, *self.variant_overrides(name)],
                        schema=self.schema, text=self.text or None)
        r.data.pop("variants", None)
        r.name = f"{self.name}.{name}"
        return r

    def op_config(self) -> dict[str, dict]:
        """Op name -> config: every setting of its section(s), its inputs; the checks' settings under their names."""
        ops: dict[str, dict] = {}
        for section, ops_of in self.schema.stage_ops.items():
            for k, v in (self.data.get(section) or {}).items():
                for op in ops_of:
                    ops.setdefault(op, {})[k] = v
        for check, cfg in (self.data.get("checks") or {}).items():
            ops[self.schema.check_ops.get(check, check)] = dict(cfg)
        inputs = self.data.get("inputs", {})
        ops.setdefault("open_model", {})["source"] = inputs.get("base_model") or "scratch"
        if inputs.get("seed_docs"):
            ops.setdefault("seed_corpus", {})["source_dir"] = inputs["seed_docs"]
        if inputs.get("benchmarks"):
            ops.setdefault("benchmark_suite", {})["benchmark_sources"] = list(inputs["benchmarks"])
        tasks = inputs.get("lm_eval_tasks") or []
        dirs = [t for t in tasks if _is_path(t)]
        names = [t for t in tasks if not _is_path(t)]
        if names:
            ops.setdefault("benchmark_suite", {})["lm_eval_tasks"] = names
        if dirs:
            ops.setdefault("benchmark_suite", {})["lm_eval_task_dirs"] = dirs
        return ops

    def run_config(self, op_names: Iterable[str] | None = None) -> dict:
        """Run config (`{"ops": {op: {"config": ...}}}`) for the ops of one job (None: every op)."""
        wanted = None if op_names is None else set(op_names)
        ops = {op: {"config": cfg} for op, cfg in self.op_config().items() if wanted is None or op in wanted}
        return {"ops": ops} if ops else {}

    # ---- what every run records
    @property
    def digest(self) -> str:
        body = {k: v for k, v in self.data.items() if k != "name"}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def to_yaml(self) -> str:
        head = [f"# modelworks recipe {self.name!r} (hash {self.digest}), resolved from "
                + " <- ".join(self.files)]
        if self.overrides:
            head.append("# --set " + " --set ".join(self.overrides))
        body = yaml.safe_dump({"name": self.name, **{k: v for k, v in self.data.items() if k != "name"}},
                              sort_keys=False, default_flow_style=False, width=120)
        return "\n".join(head) + "\n" + body

    def tags(self, max_yaml_chars: int = 8000) -> dict[str, str]:
        tags = {"modelworks/recipe": self.name, "modelworks/recipe_hash": self.digest,
                "modelworks/recipe_file": self.files[0] if self.files else ""}
        text = self.to_yaml()
        if len(text) <= max_yaml_chars:
            tags["modelworks/recipe_yaml"] = text
        return tags


def _is_path(task: str) -> bool:
    return "/" in task or os.sep in task or "://" in task


def _get(data: dict, dotted: str):
    node: Any = data
    for part in dotted.split("."):
        node = node[part]
    return node


def find_recipe(name_or_path: str | os.PathLike) -> Path:
    """A recipe file: the path as given, or `recipes/<name>.yaml` of this checkout for a bare name (`tiny`)."""
    p = Path(name_or_path)
    if p.exists() or p.suffix in (".yaml", ".yml") or os.sep in str(name_or_path):
        return p
    shipped = RECIPES_DIR / f"{p.name}.yaml"
    return shipped if shipped.exists() else p


TEXT_LABEL = "the recipe YAML given in the Launchpad"


def is_recipe_text(arg: str) -> bool:
    """Whether `arg` is a recipe's YAML itself (it spans lines, or is a `{...}` mapping) rather than a file or name."""
    return "\n" in arg.strip() or arg.lstrip().startswith("{")


def load_recipe(path: str | os.PathLike, overrides: Iterable[str] = (), *, cwd: str | os.PathLike | None = None,
                schema: Schema | None = None, assets_defs=None, text: str | None = None) -> Recipe:
    """Load a recipe file, follow `extends`, apply `--set key=value` overrides, validate; raise RecipeError.
    `text`: the recipe's YAML itself (pasted into the Launchpad); `path` then only names it in messages, and
    `extends:` and relative input paths resolve against `cwd` (default: the shipped recipes/, so `extends: tiny.yaml`
    works)."""
    schema = schema or stage_schema(assets_defs)
    origins: dict = {}
    chain: list[Path] = []
    if text is not None:
        base = Path(cwd) if cwd else RECIPES_DIR
        path = base / Path(str(path) or "launchpad.yaml").name
        data = _load_chain(path, schema, origins, chain, display=TEXT_LABEL, text=text)
    else:
        path = find_recipe(path)
        data = _load_chain(path.resolve() if path.exists() else path, schema, origins, chain, display=str(path))
    overrides = tuple(overrides)
    errors = []
    base_dir = Path(cwd or os.getcwd())
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            errors.append(f"--set {item}: expected key=value (e.g. --set dapt.lr=1e-3)")
            continue
        over = _resolve_paths(_set({}, key, parse_value(value)), schema, base_dir)
        data = _merge(data, over, origins, f"--set {item}")
    if errors:
        raise RecipeError(errors)
    name = data.get("name") if isinstance(data.get("name"), str) else path.stem
    data.pop("extends", None)
    checked, errors = _validate(data, schema, origins)
    if errors:
        raise RecipeError(errors)
    # Every key of every section, set or defaulted, is part of the resolved recipe: what ran does not depend on
    # defaults that may change later, and the stored recipe shows every setting behind a result.
    checked = _with_defaults(checked, schema.sections)
    checked.pop("name", None)
    files = tuple(_display(p) for p in chain)
    if text is not None:
        files = (TEXT_LABEL, *files[1:])
    return Recipe(name=name, files=files, overrides=overrides, data=_ordered(checked), schema=schema,
                  origins=origins, path=str(chain[0]) if chain else str(path), text=text or "")


def _with_defaults(data: dict, sections: dict) -> dict:
    """`data` with every key of `sections` that it does not set, at its default (variants are left as given)."""
    out = dict(data)
    for name, node in sections.items():
        if isinstance(node, Key):
            if name not in out:
                out[name] = _copy_default(node.default)
            continue
        current = out.get(name)
        out[name] = _with_defaults(current if isinstance(current, dict) else {}, node)
    return out


def _copy_default(value):
    return json.loads(json.dumps(value)) if isinstance(value, (list, dict)) else value


def _ordered(data: dict) -> dict:
    return {k: data[k] for k in TOP_LEVEL if k in data}


def _display(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _load_chain(path: Path, schema: Schema, origins: dict, chain: list[Path], display: str,
                text: str | None = None) -> dict:
    if path in chain:
        raise RecipeError([f"{display}: 'extends' loops back to {_display(path)} "
                           f"({' -> '.join(_display(p) for p in [*chain, path])})"])
    chain.append(path)
    raw = _read_yaml(path, text)
    label = _display(path) if text is None else display
    base: dict = {}
    parent = raw.get("extends")
    if parent is not None:
        if not isinstance(parent, str) or not parent:
            raise RecipeError([f"{label}: 'extends' must be the path of another recipe file, got {parent!r}"])
        target = (path.parent / parent).resolve()
        if not target.exists():
            raise RecipeError([f"{label}: 'extends' names {parent!r}, which does not exist ({target})"])
        base = _load_chain(target, schema, origins, chain, display=label)
        base.pop("name", None)  # a name is its own file's, never inherited
    own = _resolve_paths({k: v for k, v in raw.items() if k != "extends"}, schema, path.parent)
    return _merge(base, own, origins, label)


def describe_keys(schema: Schema | None = None) -> str:
    """Every valid key with its type and default, one line each (for `modelworks keys`)."""
    schema = schema or stage_schema()
    lines = []

    def walk(node: dict, prefix: str):
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
                continue
            lines.append(f"{prefix}{k}: {_type_name(v.type)} = {v.default!r}")

    walk(schema.sections, "")
    return "\n".join(lines)
