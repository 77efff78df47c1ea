from affectflow import joblog
from affectflow.face_features import run_face_features

joblog.setup(snakemake.log[0])
features = snakemake.config["features"]
run_face_features(
    snakemake.input.faces,
    snakemake.output[0],
    snakemake.input.model,
    {**snakemake.params.cfg, "batch_size": features["batch_size"], "device": features["device"]},
    threads=snakemake.threads,
)
