from affectflow import joblog
from affectflow.audio_features import extract_audio_features
from affectflow.model_manifest import PreparedModel

joblog.setup(snakemake.log[0])
model = PreparedModel.load(snakemake.input.model)
features = snakemake.config["features"]
extract_audio_features(
    snakemake.input.media,
    snakemake.output[0],
    model.root,
    {**snakemake.params.cfg, "model": model.name, "standin": model.standin, "device": features["device"]},
    pins=model.pins,
)
