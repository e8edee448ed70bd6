"""LLM backends behind one contract: `get_backend(model_string, **settings).complete(messages)`, sampled as
`GenerationSettings` say (keyword options such as `temperature=` or `settings=GenerationSettings(...)`).

Model strings: `local[:<name>]` (packaged GGUF weights via llama.cpp), `llamacpp:<path.gguf>`,
`openai:<model>` (any OpenAI-compatible server), `hf:<path>[,adapter=<path>]` (transformers, for
fine-tuned models), `replay:<file.jsonl>`. `ScriptedBackend` is the
in-memory fake for tests. Importing this package imports no heavy library.
"""

from tabcoder.backends import llamacpp as _llamacpp  # noqa: F401  (registers local, llamacpp)
from tabcoder.backends import openai_backend as _openai_backend  # noqa: F401  (registers openai)
from tabcoder.backends import hf as _hf  # noqa: F401  (registers hf)
from tabcoder.backends import replay as _replay  # noqa: F401  (registers replay)
from tabcoder.backends.base import (Backend, Completion, GenerationSettings, ModelStatus, get_backend, list_models,
                                    register, valid_forms)
from tabcoder.backends.replay import ReplayBackend, ScriptedBackend
from tabcoder.backends.weights import DEFAULT_LOCAL_MODEL, ensure_model, model_path

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "Backend",
    "Completion",
    "GenerationSettings",
    "ModelStatus",
    "ReplayBackend",
    "ScriptedBackend",
    "ensure_model",
    "get_backend",
    "list_models",
    "model_path",
    "register",
    "valid_forms",
]
