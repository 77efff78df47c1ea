from affectflow.core import joblog
from affectflow.stages.face_features import FaceFeatureOptions, run_face_features
from affectflow.stages.fetch_model import PreparedModel

joblog.setup(snakemake.log[0])
model = PreparedModel.load(snakemake.input.model).at(snakemake.config["models_dir"])
run_face_features(
    snakemake.input.faces,
    snakemake.output[0],
    model,
    FaceFeatureOptions.from_config(snakemake.config, model=model.name),
    threads=snakemake.threads,
    key=snakemake.params.key,
)
