from affectflow.core import joblog
from affectflow.stages.fetch_model import PreparedModel
from affectflow.stages.transcripts import ASRConfig, transcribe_shard

joblog.setup(snakemake.log[0])
model = PreparedModel.load(snakemake.input.model).at(snakemake.config["models_dir"])
transcribe_shard(
    snakemake.input.media,
    snakemake.output[0],
    ASRConfig.from_config(snakemake.config, model=model.name),
    models_dir=model.root,
    pins=model.pins,
    key=snakemake.params.key,
)
