"""Guided synthetic data: teacher backends, versioned prompts, the topic -> question -> answer -> judge chain.

Modules: `base` (the teacher contract and response cache), `teacher` (openai / transformers /
rules backends and `make_teacher`), `rules` (the offline teacher), `prompts` (versioned
templates, packaged in prompts/*.toml), `parse` (lenient reply parsers), `chain` (SFT and
preference sets, benchmark items), `grounding` (the independent support test for asset checks).
"""

from curation.synthetic.base import Completion, ResponseCache, Sampling, Teacher, TeacherUnavailable
from curation.synthetic.chain import ChainConfig, ChainResult, generate_benchmark_items, run_chain
from curation.synthetic.grounding import answer_supported_by_chunk
from curation.synthetic.teacher import OpenAITeacher, RulesTeacher, TeacherConfig, TransformersTeacher, make_teacher

__all__ = ["ChainConfig", "ChainResult", "Completion", "OpenAITeacher", "ResponseCache", "RulesTeacher", "Sampling",
           "Teacher", "TeacherConfig", "TeacherUnavailable", "TransformersTeacher", "answer_supported_by_chunk",
           "generate_benchmark_items", "make_teacher", "run_chain"]
