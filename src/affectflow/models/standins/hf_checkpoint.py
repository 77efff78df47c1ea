"""A ``transformers`` model written as the released Hub checkpoints store it: ``config.json`` plus the weights.

Shared by the speech and text stand-ins, so both write the same on-disk format the real loading
code (``from_pretrained``) reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented, key-sorted JSON (stable bytes for the same content)."""
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def save_hf_checkpoint(model: Any, out_dir: Path, weights_format: str) -> None:
    """``config.json`` plus the weights, as the released checkpoint stores them.

    ``weights_format="bin"``: ``pytorch_model.bin``, a ``torch.save``d state
    dict (the format of the older Hub checkpoints, a pickle, loaded by
    ``transformers`` with ``weights_only=True``); ``"safetensors"``:
    ``model.safetensors``. Weight-normalised convolutions are stored under the
    names the released files use (``weight_g`` / ``weight_v``), which
    ``from_pretrained`` renames on load; recent torch would write
    ``parametrizations.weight.original0/1``.
    """
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(str(out_dir))
    state = {
        k.replace(".parametrizations.weight.original0", ".weight_g")
        .replace(".parametrizations.weight.original1", ".weight_v"): v.detach().contiguous()
        for k, v in model.state_dict().items()
    }
    if weights_format == "bin":
        torch.save(state, out_dir / "pytorch_model.bin")
    elif weights_format == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    else:
        raise ValueError(f"weights_format must be 'bin' or 'safetensors', got {weights_format!r}")
