from affectflow import joblog
from affectflow.asr import transcribe_shard
from affectflow.model_manifest import PreparedModel

joblog.setup(snakemake.log[0])
model = PreparedModel.load(snakemake.input.model)
transcribe_shard(
    snakemake.input.media,
    snakemake.output[0],
    {**snakemake.params.cfg, "model": model.name, "device": snakemake.config["features"]["device"]},
    models_dir=model.root,
    pins=model.pins,
)
