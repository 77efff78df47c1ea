from affectflow import joblog
from affectflow.model_manifest import PreparedModel
from affectflow.text_features import embed_shard

joblog.setup(snakemake.log[0])
model = PreparedModel.load(snakemake.input.model)
embed_shard(
    snakemake.input.transcripts,
    snakemake.output[0],
    {**snakemake.params.cfg, "model": model.name, "device": snakemake.config["features"]["device"]},
    models_dir=model.root,
    pins=model.pins,
)
