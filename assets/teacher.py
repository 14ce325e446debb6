"""The teacher LLM behind synthetic data and generated benchmarks, as a resource configured once for the location."""

import dagster as dg
from pydantic import Field

from assets.configs import derived_config
from assets.storage import ModelworksStorage
from curation.synthetic.teacher import TeacherConfig


class _TeacherMethods(dg.ConfigurableResource):
    """Which model writes, answers and judges synthetic items.

    backend: `rules` (deterministic offline writer: fast tests and the demo), `transformers` (a local HF directory
    or GGUF file, batched in process; `smollm2` is the embedded SmolLM2-135M-Instruct), or `openai` (any
    OpenAI-compatible server: vLLM, Ollama, NIM, llama.cpp, `transformers serve`). The API key is read from the
    environment variable *named* by `api_key_env`; its value never reaches logs, metadata or files.
    judge_backend: the judge's backend when it differs from the teacher's (a 135M model cannot follow a rubric:
    pair it with the `rules` judge, or point the judge at a stronger server).
    Every other field and its default: curation.synthetic.teacher.TeacherConfig (the recipe's `inputs.teacher`).
    """

    def _config(self, storage: ModelworksStorage, **override):
        fields = {k: v for k, v in self.model_dump().items() if k != "judge_backend"}
        return TeacherConfig(**{**fields, **override, "cache_dir": str(storage.local_path(storage.teacher_cache())),
                                "models_dir": str(storage.local_path(storage.model("teachers")))})

    def build(self, storage: ModelworksStorage):
        """The library teacher, with its on-disk response cache under the storage root."""
        from curation.synthetic.teacher import make_teacher

        return make_teacher(self._config(storage))

    def build_judge(self, storage: ModelworksStorage):
        """The judge, or None when the teacher judges its own items."""
        from curation.synthetic.teacher import make_teacher

        if not self.judge_backend or self.judge_backend == self.backend:
            return None
        return make_teacher(self._config(storage, backend=self.judge_backend))

    def on_policy(self, storage: ModelworksStorage, model_dir: str):
        """A local model (e.g. the SFT stage) that samples the answers of preference pairs."""
        from curation.synthetic.teacher import make_teacher

        return make_teacher(self._config(storage, backend="transformers", model_path=model_dir))


# The resource's fields are TeacherConfig's (defaults there), less the two folders the storage root decides.
TeacherResource = derived_config(
    "TeacherResource", TeacherConfig, exclude=("cache_dir", "models_dir"), base=_TeacherMethods,
    extra={"judge_backend": (str, Field(default="", description="Empty: the teacher judges; rules: the lexical "
                                                                 "judge; or another backend for the judge."))},
    doc=_TeacherMethods.__doc__)
