"""Merge a LoRA adapter into its base model and write the result as GGUF for the llama.cpp backends.

Scope: `export` loads the base in float32, applies the adapter and merges it (`merge_and_unload`); it can
save the merged Hugging Face folder (`hf_out`), and writes a GGUF file with the `gguf` package. The GGUF
takes everything that is not a weight (architecture settings, tokenizer, chat template) from the GGUF the
base model came from, so llama.cpp tokenizes and formats chats exactly as it did for the base; weights are
mapped from Hugging Face names to GGUF names with `gguf`'s tensor name map, re-applying the rotary
permutation of the query and key weights that llama-architecture GGUF files use. Matrices are written as
F16 (or F32), one-dimensional tensors (norms, biases) as F32; a tensor the model does not have (such as
`rope_freqs`) is copied from the base file unchanged. With `quantize`, llama.cpp's own quantizer (through
llama-cpp-python) then writes a quantised copy.

A base that did not come from a GGUF file has no such template: export then writes the merged folder and
says how to convert it with llama.cpp's `convert_hf_to_gguf.py`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from tabcoder.errors import ConfigError
from tabcoder.sft.model import BaseModel, cpu_threads, import_torch, load_tokenizer, resolve_base

log = logging.getLogger(__name__)

OUTTYPES = ("f16", "f32")
# llama.cpp quantisation types offered by --quantize (llama_ftype constant names in llama-cpp-python)
QUANT_TYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
               "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
               "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}
PERMUTED_ARCHS = {"llama"}  # GGUF stores q/k of these permuted for llama.cpp's rotary embedding


@dataclass
class ExportResult:
    gguf: Path | None
    quantized: Path | None = None
    hf_dir: Path | None = None
    seconds: float = 0.0
    tensors: int = 0
    copied: list[str] = field(default_factory=list)  # tensors taken unchanged from the base GGUF


def merged_model(base: BaseModel) -> tuple[Any, Any]:
    """(merged model, tokenizer) of a base with its adapter (`resolve_base` of a fine-tuning output)."""
    import_torch()
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if base.adapter_dir is None:
        raise ConfigError(f"{base.hf_dir} holds no LoRA adapter; give the output folder of `tabcoder sft train` "
                          "(or its adapter/ folder)")
    model = AutoModelForCausalLM.from_pretrained(base.hf_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, base.adapter_dir).merge_and_unload()
    return model, load_tokenizer(base)


def _permute(weights: Any, n_head: int) -> Any:
    """Hugging Face q/k rows -> llama.cpp's interleaved rotary layout."""
    rows = weights.shape[0]
    return (weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_gguf(state: dict[str, Any], config: Any, template: Path, out: Path, outtype: str = "f16") -> tuple[int, list[str]]:
    """Write `state` (Hugging Face names -> tensors) as GGUF, with `template`'s metadata and tensor list."""
    import gguf

    if outtype not in OUTTYPES:
        raise ConfigError(f"--outtype {outtype!r} is not one of {', '.join(OUTTYPES)}")
    reader = gguf.GGUFReader(template)
    arch = reader.fields["general.architecture"].contents()
    model_arch = next((k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch), None)
    if model_arch is None:
        raise ConfigError(f"the gguf package does not know architecture {arch!r} of {template}")
    names = gguf.get_tensor_name_map(model_arch, config.num_hidden_layers)
    by_gguf: dict[str, Any] = {}
    for hf_name, tensor in state.items():
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is not None:
            by_gguf[name] = tensor
    n_head = config.num_attention_heads
    n_kv = getattr(config, "num_key_value_heads", None) or n_head

    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    try:
        copied = _write(reader, by_gguf, arch, n_head, n_kv, tmp, outtype)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    return len(reader.tensors), copied


def _write(reader: Any, by_gguf: dict[str, Any], arch: str, n_head: int, n_kv: int, tmp: Path,
           outtype: str) -> list[str]:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(tmp, arch)
    for key, fld in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if key == "general.file_type":
            continue
        vtype = fld.types[0]
        sub = fld.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, fld.contents(), vtype, sub)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if outtype == "f16" else gguf.LlamaFileType.ALL_F32)
    copied = []
    for tensor in reader.tensors:
        name = tensor.name
        value = by_gguf.get(name)
        if value is None and name == "output.weight":
            value = by_gguf.get("token_embd.weight")  # tied embeddings
        if value is None:
            writer.add_tensor(name, tensor.data, raw_dtype=tensor.tensor_type)
            copied.append(name)
            continue
        array = value.detach().to("cpu").float().numpy()
        if arch in PERMUTED_ARCHS and name.endswith("attn_q.weight"):
            array = _permute(array, n_head)
        elif arch in PERMUTED_ARCHS and name.endswith("attn_k.weight"):
            array = _permute(array, n_kv)
        expected = tuple(int(d) for d in reversed(tensor.shape.tolist()))
        if array.shape != expected and not (array.ndim == 1 and (array.shape[0],) == expected[-1:]):
            raise ConfigError(f"tensor {name}: the model has shape {array.shape}, the base GGUF {expected}; "
                              "the adapter does not belong to this base model")
        keep_f32 = outtype == "f32" or array.ndim == 1
        writer.add_tensor(name, np.ascontiguousarray(array.astype(np.float32 if keep_f32 else np.float16)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return copied


def quantize_gguf(source: Path, out: Path, kind: str, threads: int = 1) -> Path:
    """Quantise a GGUF file with llama.cpp's quantizer (through llama-cpp-python)."""
    if kind not in QUANT_TYPES:
        raise ConfigError(f"--quantize {kind!r} is not one of {', '.join(QUANT_TYPES)}")
    try:
        import llama_cpp
    except ImportError as exc:
        raise ConfigError(f"--quantize needs llama-cpp-python ({exc}); fix: pip install 'tabcoder[local]'") from exc
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[kind])
    params.nthread = threads
    with tempfile.TemporaryFile() as captured:  # llama.cpp prints a line per tensor on fd 2: keep it for errors
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            status = llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        lines = captured.read().decode(errors="replace").strip().splitlines()
    if status != 0 or not out.is_file():
        out.unlink(missing_ok=True)
        raise ConfigError(f"llama.cpp could not quantise {source} to {kind} (status {status}): "
                          + " | ".join(lines[-3:]))
    return out


def export(source: str, out: Path | None, *, outtype: str = "f16", quantize: str | None = None,
           hf_out: Path | None = None, threads: int = 0,
           progress: Callable[[str], None] | None = None) -> ExportResult:
    """Merge the adapter of `source` and write `out` (GGUF), `hf_out` (merged folder) or both."""
    say = progress or (lambda text: None)
    if out is None and hf_out is None:
        raise ConfigError("nothing to write: give an output .gguf file, --hf-out DIR, or both")
    for target in (out, hf_out):
        if target is not None and target.exists():
            raise ConfigError(f"{target} exists; choose a new name (nothing is overwritten)")
    if out is not None and out.suffix.lower() != ".gguf":
        raise ConfigError(f"output {out} should end in .gguf")
    if quantize is not None and quantize not in QUANT_TYPES:
        raise ConfigError(f"--quantize {quantize!r} is not one of {', '.join(QUANT_TYPES)}")
    quantized = out.with_name(f"{out.stem}.{quantize}.gguf") if quantize and out is not None else None
    if quantized is not None and quantized.exists():
        raise ConfigError(f"{quantized} exists; choose a new output name (nothing is overwritten)")
    torch = import_torch()
    threads = cpu_threads(threads)
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    base = resolve_base(source)
    if out is not None and (base.source_gguf is None or not base.source_gguf.is_file()):
        raise ConfigError(
            f"the base model {base.hf_dir} did not come from a GGUF file here, so there is no tokenizer and "
            "metadata to write the GGUF with; write the merged folder with --hf-out DIR and convert it with "
            "llama.cpp's convert_hf_to_gguf.py DIR, or train from a .gguf base")
    say(f"merging the adapter of {source} into its base model ...")
    model, tokenizer = merged_model(base)
    result = ExportResult(gguf=None)
    if hf_out is not None:
        model.save_pretrained(hf_out)
        tokenizer.save_pretrained(hf_out)
        (hf_out / "tabcoder_merged.json").write_text(json.dumps(
            {"adapter": str(base.adapter_dir), "base": str(base.hf_dir)}, indent=1))
        result.hf_dir = hf_out
        say(f"merged model folder: {hf_out}")
    if out is not None:
        say(f"writing {out} ({outtype}) with the metadata and tokenizer of {base.source_gguf} ...")
        out.parent.mkdir(parents=True, exist_ok=True)
        source_gguf = cast(Path, base.source_gguf)  # checked above
        result.tensors, result.copied = write_gguf(model.state_dict(), model.config, source_gguf, out, outtype)
        result.gguf = out
        if quantized is not None and quantize:  # one is set exactly when the other is
            say(f"quantising to {quantize}: {quantized} ...")
            result.quantized = quantize_gguf(out, quantized, quantize, threads)
    result.seconds = time.perf_counter() - t0
    return result

