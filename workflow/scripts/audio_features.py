from affectflow.core import joblog
from affectflow.stages.audio_features import AudioFeatureConfig, extract_audio_features
from affectflow.stages.fetch_model import PreparedModel

joblog.setup(snakemake.log[0])
model = PreparedModel.load(snakemake.input.model).at(snakemake.config["models_dir"])
extract_audio_features(
    snakemake.input.media,
    snakemake.output[0],
    model.root,
    AudioFeatureConfig.from_config(snakemake.config, model=model.name, standin=model.standin),
    pins=model.pins,
    key=snakemake.params.key,
)
