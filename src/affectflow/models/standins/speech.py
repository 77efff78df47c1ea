"""Random-weight stand-ins for the speech encoders (wav2vec 2.0, HuBERT), as Hub checkpoint folders.

Tests and the offline demo cannot download wav2vec 2.0 or HuBERT. :func:`build_speech_encoder`
builds the same architecture from hand-copied upstream configuration values with seeded random
weights and writes it as the released checkpoint is laid out (``config.json``,
``pytorch_model.bin``, ``preprocessor_config.json``), so ``transformers``' ``from_pretrained`` runs
unchanged on it. The outputs are whatever random weights produce. The same seed and library
versions give byte-identical files. The registry's ``wav2vec2_base_960h`` and
``hubert_large_ls960_ft`` are registered for :func:`affectflow.models.standins.build.build_standin`.

Details: docs/models.md, section "Speech and text stand-ins".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from affectflow.models.standins.hf_checkpoint import save_hf_checkpoint, write_json
from affectflow.models.standins.registry import FOLDER, register_standin
from affectflow.models.standins.seeding import seeded

DEFAULT_SEED = 0

# ----------------------------------------------------------------------------- configs
# Values copied from the upstream config.json files.
_CONV = {
    "conv_dim": [512, 512, 512, 512, 512, 512, 512],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "conv_bias": False,
    "num_feat_extract_layers": 7,
    "feat_extract_norm": "group",
    "feat_extract_activation": "gelu",
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
}

WAV2VEC2_BASE_CONFIG: dict[str, Any] = {
    # facebook/wav2vec2-base (self-supervised, LibriSpeech 960 h, no fine-tuning)
    "architectures": ["Wav2Vec2ForPreTraining"],
    "model_type": "wav2vec2",
    **_CONV,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "feat_proj_dropout": 0.1,
    "feat_quantizer_dropout": 0.0,
    "final_dropout": 0.0,
    "layerdrop": 0.05,
    "layer_norm_eps": 1e-05,
    "initializer_range": 0.02,
    "do_stable_layer_norm": False,
    "apply_spec_augment": True,
    "mask_time_prob": 0.05,
    "mask_time_length": 10,
    "mask_feature_prob": 0.0,
    "mask_feature_length": 10,
    "num_codevector_groups": 2,
    "num_codevectors_per_group": 320,
    "codevector_dim": 256,
    "proj_codevector_dim": 256,
    "contrastive_logits_temperature": 0.1,
    "num_negatives": 100,
    "diversity_loss_weight": 0.1,
    "ctc_loss_reduction": "sum",
    "ctc_zero_infinity": False,
    "vocab_size": 32,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}

WAV2VEC2_BASE_960H_CONFIG: dict[str, Any] = {
    # facebook/wav2vec2-base-960h (wav2vec2-base fine-tuned for CTC on LibriSpeech 960 h)
    "architectures": ["Wav2Vec2ForCTC"],
    "model_type": "wav2vec2",
    **_CONV,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout": 0.1,
    "hidden_dropout_prob": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.1,
    "feat_proj_dropout": 0.1,
    "feat_extract_dropout": 0.0,
    "final_dropout": 0.1,
    "layerdrop": 0.1,
    "layer_norm_eps": 1e-05,
    "initializer_range": 0.02,
    "do_stable_layer_norm": False,
    "apply_spec_augment": True,
    "mask_time_prob": 0.05,
    "mask_time_length": 10,
    "mask_feature_prob": 0.0,
    "mask_feature_length": 10,
    "vocab_size": 32,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}

_HUBERT_COMMON: dict[str, Any] = {
    "model_type": "hubert",
    "hidden_act": "gelu",
    "hidden_dropout": 0.1,
    "hidden_dropout_prob": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.1,
    "feat_proj_dropout": 0.1,
    "feat_extract_dropout": 0.0,
    "final_dropout": 0.1,
    "layerdrop": 0.1,
    "layer_norm_eps": 1e-05,
    "initializer_range": 0.02,
    "apply_spec_augment": True,
    "mask_time_prob": 0.05,
    "mask_time_length": 10,
    "mask_feature_prob": 0.0,
    "mask_feature_length": 10,
    "ctc_loss_reduction": "sum",
    "ctc_zero_infinity": False,
    "vocab_size": 32,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}

HUBERT_BASE_CONFIG: dict[str, Any] = {
    # facebook/hubert-base-ls960 (self-supervised, no fine-tuning)
    "architectures": ["HubertModel"],
    **_HUBERT_COMMON,
    **_CONV,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "do_stable_layer_norm": False,
}

HUBERT_LARGE_LS960_FT_CONFIG: dict[str, Any] = {
    # facebook/hubert-large-ls960-ft (HuBERT large fine-tuned for CTC on LibriSpeech 960 h)
    "architectures": ["HubertForCTC"],
    **_HUBERT_COMMON,
    **_CONV,
    "conv_bias": True,
    "feat_extract_norm": "layer",
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "do_stable_layer_norm": True,
}

# preprocessor_config.json (Wav2Vec2FeatureExtractor) of the checkpoints above.
SPEECH_PREPROCESSOR_CONFIG: dict[str, Any] = {
    "do_normalize": True,
    "feature_extractor_type": "Wav2Vec2FeatureExtractor",
    "feature_size": 1,
    "padding_side": "right",
    "padding_value": 0.0,
    "return_attention_mask": False,
    "sampling_rate": 16000,
}
# the large, layer-normalised models take an attention mask
SPEECH_PREPROCESSOR_CONFIG_LARGE: dict[str, Any] = {**SPEECH_PREPROCESSOR_CONFIG, "return_attention_mask": True}


# ----------------------------------------------------------------------------- speech encoders
# name -> (config, transformers class, preprocessor config, upstream weights format)
SPEECH_STANDINS: dict[str, tuple[dict[str, Any], str, dict[str, Any], str]] = {
    "wav2vec2-base": (WAV2VEC2_BASE_CONFIG, "Wav2Vec2ForPreTraining", SPEECH_PREPROCESSOR_CONFIG, "bin"),
    "wav2vec2-base-960h": (WAV2VEC2_BASE_960H_CONFIG, "Wav2Vec2ForCTC", SPEECH_PREPROCESSOR_CONFIG, "bin"),
    "hubert-base-ls960": (HUBERT_BASE_CONFIG, "HubertModel", SPEECH_PREPROCESSOR_CONFIG, "bin"),
    "hubert-large-ls960-ft": (HUBERT_LARGE_LS960_FT_CONFIG, "HubertForCTC", SPEECH_PREPROCESSOR_CONFIG_LARGE, "bin"),
}


def build_speech_encoder(
    name: str, out_dir: str | os.PathLike[str], seed: int = DEFAULT_SEED, weights_format: str | None = None
) -> Path:
    """Write a random-weight stand-in of the speech checkpoint ``name`` (see ``SPEECH_STANDINS``) to ``out_dir``.

    Files: ``config.json``, ``pytorch_model.bin`` (or ``model.safetensors``
    with ``weights_format="safetensors"``) and ``preprocessor_config.json``.
    Sizes: base models ~95 M parameters (~380 MB in float32), HuBERT large ~316 M (~1.3 GB).
    """
    import transformers

    if name not in SPEECH_STANDINS:
        raise ValueError(f"no speech stand-in {name!r}; known: {sorted(SPEECH_STANDINS)}")
    cfg, cls_name, pre, fmt = SPEECH_STANDINS[name]
    cls = getattr(transformers, cls_name)
    config = cls.config_class(**{k: v for k, v in cfg.items() if k != "model_type"})
    out = Path(out_dir)
    with seeded(seed):
        model = cls(config).eval()
    save_hf_checkpoint(model, out, weights_format or fmt)
    write_json(out / "preprocessor_config.json", pre)
    return out


def build_wav2vec2_base_960h(out_dir: str | os.PathLike[str], seed: int = DEFAULT_SEED) -> Path:
    """facebook/wav2vec2-base-960h stand-in (Wav2Vec2ForCTC), the registry's ``wav2vec2_base_960h``."""
    return build_speech_encoder("wav2vec2-base-960h", out_dir, seed)


#: registry model -> the checkpoint (a key of :data:`SPEECH_STANDINS`) its stand-in is
REGISTRY_CHECKPOINTS: dict[str, str] = {
    "wav2vec2_base_960h": "wav2vec2-base-960h",
    "hubert_large_ls960_ft": "hubert-large-ls960-ft",
}


@register_standin(*REGISTRY_CHECKPOINTS, layout=FOLDER)
def build_registry_standin(name: str, out_dir: str | os.PathLike[str]) -> Path:
    """The stand-in of registry model ``name`` (seed 0): its checkpoint folder at ``out_dir``."""
    return build_speech_encoder(REGISTRY_CHECKPOINTS[name], out_dir)
