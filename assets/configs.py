"""Dagster `Config` classes derived from the libraries' dataclasses: one home per setting.

A stage's settings and their defaults live in exactly one place, the library dataclass that uses them
(`training.pretrain.PretrainConfig`, `training.posttrain.SFTRunConfig`, `curation.synthetic.chain.ChainConfig`, ...).
`derived_config` builds the asset's `dg.Config` from it: the same field names, types and defaults (the comment
beside a field in the library becomes its Launchpad description), so the Launchpad shows and edits every field and
nothing can drift. `extra` adds what only orchestration knows (which split to score, a Ray address, torchrun's
process counts): a name no library field has (tests/test_recipes.py fails on a default defined twice, or on a
`dg.Config` in `assets/` written by hand). `to_library` turns a config back into the dataclass.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from typing import Any

import dagster as dg
from pydantic import Field, create_model

# Every derived class, by name: what the layering test reads to check that no setting has two homes.
DERIVED: dict[str, tuple[type, tuple[type, ...], tuple[str, ...]]] = {}  # name -> (class, library classes, extras)


def _field_comments(cls) -> dict[str, str]:
    """`name: type = default  # comment` lines of a dataclass (and its bases): the comment per field."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for m in re.finditer(r"^\s+(\w+)\s*:[^#\n]*#\s*(.+)$", source, re.M):
            out[m.group(1)] = m.group(2).strip()
    return out


def _config_type(tp):
    """A dataclass annotation as a Dagster config type: tuples become lists (YAML and the Launchpad have lists)."""
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return list[args[0]] if args else list[Any]
    if origin in (typing.Union, types.UnionType):
        args = tuple(_config_type(a) for a in typing.get_args(tp))
        return typing.Union[args]  # noqa: UP007
    if tp is tuple:
        return list[Any]
    return tp


def _default(f: dataclasses.Field):
    """A field's default as config holds it (tuples as lists)."""
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        raise TypeError(f"{f.name}: a setting needs a default in its library dataclass")
    value = _default_raw(f)
    return list(value) if isinstance(value, tuple) else value


def setting_fields(library_cls, exclude: tuple[str, ...] = ()) -> dict[str, dataclasses.Field]:
    """The dataclass fields that are settings (public, with a default), minus `exclude`."""
    return {f.name: f for f in dataclasses.fields(library_cls)
            if f.init and not f.name.startswith("_") and f.name not in exclude}


def derived_config(name: str, library_cls, *, exclude: tuple[str, ...] = (), extra: dict | None = None,
                   doc: str | None = None, base=dg.Config):
    """A `dg.Config` (or `base`, e.g. a ConfigurableResource) with the fields and defaults of `library_cls` (one
    dataclass, or a tuple of them whose field names do not overlap), plus `extra` ({name: (type, default or
    pydantic Field)}) for settings no library holds."""
    classes = library_cls if isinstance(library_cls, tuple) else (library_cls,)
    fields: dict[str, Any] = {}
    for cls in classes:
        overlap = sorted(set(setting_fields(cls, exclude)) & set(fields))
        if overlap:
            raise TypeError(f"{name}: {overlap} are fields of more than one of {[c.__name__ for c in classes]}")
        fields.update(_fields_of(cls, exclude))
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(fields))
    if clash:
        raise TypeError(f"{name}: {clash} are fields of {[c.__name__ for c in classes]}: their default lives there")
    fields.update(extra)
    cls = create_model(name, __base__=base, __module__=_caller_module(), **fields)
    cls.__doc__ = doc or (f"Settings of {', '.join(f'{c.__module__}.{c.__name__}' for c in classes)} (defaults "
                          "there)" + (f"; plus {', '.join(extra)}" if extra else "") + ".")
    DERIVED[name] = (cls, classes, tuple(extra))
    return cls


def _fields_of(library_cls, exclude: tuple[str, ...]) -> dict[str, Any]:
    hints = typing.get_type_hints(library_cls)
    comments = _field_comments(library_cls)
    fields: dict[str, Any] = {}
    for fname, f in setting_fields(library_cls, exclude).items():
        default = _default(f)
        fields[fname] = (_config_type(hints[fname]),
                         Field(default=default, description=comments.get(fname)) if not isinstance(default, list)
                         else Field(default_factory=lambda d=default: list(d), description=comments.get(fname)))
    return fields


def _caller_module() -> str:
    frame = inspect.currentframe()
    try:
        return frame.f_back.f_back.f_globals.get("__name__", __name__)
    finally:
        del frame


def to_library(library_cls, config, **override):
    """The library dataclass from a derived config (lists back to tuples where the library keeps tuples)."""
    values = config.model_dump() if hasattr(config, "model_dump") else dict(config)
    fields = setting_fields(library_cls)
    out = {}
    for k, v in values.items():
        if k not in fields or k in override:
            continue
        default = _default_raw(fields[k])
        out[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(default, tuple) and \
            isinstance(v, list) else v
    return library_cls(**out, **override)


def _default_raw(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def library_default(library_cls, name: str):
    """One library default, for an `extra` field that must agree with it (e.g. a tolerance a check enforces)."""
    return _default(setting_fields(library_cls)[name])
