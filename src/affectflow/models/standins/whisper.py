"""A random-weight openai-whisper checkpoint, as ``whisper.load_model`` reads it.

Tests and the offline demo cannot download openai-whisper's ``tiny.en`` / ``base.en`` /
``small.en``. :func:`build_whisper_checkpoint` builds ``whisper.model.Whisper`` with the released
checkpoints' dimensions and seeded random weights and saves it as they are saved
(``{"dims": ..., "model_state_dict": ...}`` in float16), so the real loading code runs on it.

Details: docs/models.md, section "Speech and text stand-ins".
"""

from __future__ import annotations

import os
from pathlib import Path

from affectflow.models.standins.seeding import seeded

DEFAULT_SEED = 0

# openai-whisper checkpoint "dims" (key order as in the released .pt files).
WHISPER_DIMS: dict[str, dict[str, int]] = {
    "tiny.en": dict(n_mels=80, n_vocab=51864, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6,
                    n_audio_layer=4, n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=4),
    "base.en": dict(n_mels=80, n_vocab=51864, n_audio_ctx=1500, n_audio_state=512, n_audio_head=8,
                    n_audio_layer=6, n_text_ctx=448, n_text_state=512, n_text_head=8, n_text_layer=6),
    "small.en": dict(n_mels=80, n_vocab=51864, n_audio_ctx=1500, n_audio_state=768, n_audio_head=12,
                     n_audio_layer=12, n_text_ctx=448, n_text_state=768, n_text_head=12, n_text_layer=12),
}


def build_whisper_checkpoint(path: str | os.PathLike[str], name: str = "tiny.en", seed: int = DEFAULT_SEED) -> Path:
    """Write a random-weight openai-whisper checkpoint ``name`` (e.g. ``tiny.en``) to ``path``.

    The file is what ``whisper.load_model`` reads: ``torch.save`` of
    ``{"dims": {...}, "model_state_dict": {...}}`` with float16 tensors. Note
    that ``torch.save`` names the archive's inner folder after the file's stem,
    so the sha256 depends on the file name too.
    """
    import torch
    from whisper.model import ModelDimensions, Whisper

    if name not in WHISPER_DIMS:
        raise ValueError(f"no stand-in dims for whisper model {name!r}; known: {sorted(WHISPER_DIMS)}")
    dims = dict(WHISPER_DIMS[name])
    with seeded(seed):
        model = Whisper(ModelDimensions(**dims))
        # The decoder's positional embedding is created with torch.empty (it is always
        # loaded from the checkpoint upstream): give it seeded values, never garbage memory.
        with torch.no_grad():
            model.decoder.positional_embedding.normal_(0.0, 0.01)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": dims, "model_state_dict": state}, out)
    return out
