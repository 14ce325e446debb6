"""The teacher LLM behind synthetic data and generated benchmarks, as a resource configured once for the location."""

import dagster as dg
from pydantic import Field

from assets.storage import ModelworksStorage


class TeacherResource(dg.ConfigurableResource):
    """Which model writes, answers and judges synthetic items.

    backend: `rules` (deterministic offline writer: fast tests and the demo), `transformers` (a local HF directory
    or GGUF file, batched in process; `smollm2` is the embedded SmolLM2-135M-Instruct), or `openai` (any
    OpenAI-compatible server: vLLM, Ollama, NIM, llama.cpp, `transformers serve`). The API key is read from the
    environment variable *named* by `api_key_env`; its value never reaches logs, metadata or files.
    """

    backend: str = "rules"
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = ""
    api_key_env: str = Field(default="", description="Name of the environment variable holding the API key.")
    model_path: str = Field(default="smollm2", description="transformers backend: HF dir, GGUF file or 'smollm2'.")
    max_concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 4
    batch_size: int = 8

    def build(self, storage: ModelworksStorage):
        """The library teacher, with its on-disk response cache under the storage root."""
        from curation.synthetic.teacher import TeacherConfig, make_teacher

        model_path = self.model_path
        if self.backend == "transformers" and model_path in ("smollm2", "embedded"):
            from training.open_model import ensure_hf_model

            model_path = str(ensure_hf_model("smollm2", storage.local_path(storage.model("smollm2_teacher"))))
        return make_teacher(TeacherConfig(**{**self.model_dump(), "model_path": model_path,
                                             "cache_dir": str(storage.local_path(storage.teacher_cache()))}))
