from affectflow.core import joblog
from affectflow.stages.fetch_model import PreparedModel
from affectflow.stages.text_features import TextFeatureConfig, embed_shard

joblog.setup(snakemake.log[0])
model = PreparedModel.load(snakemake.input.model).at(snakemake.config["models_dir"])
embed_shard(
    snakemake.input.transcripts,
    snakemake.output[0],
    TextFeatureConfig.from_config(snakemake.config, model=model.name),
    models_dir=model.root,
    pins=model.pins,
    key=snakemake.params.key,
)
