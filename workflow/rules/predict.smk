# Per-frame predictions of every video, with or without training: the face models' own classes, plus
# the task columns of the run's own bundle or of an applied one (config `bundle`).


rule bundle:
    """What the run learned (heads and fusion choices of submit_fusion), applicable to other videos."""
    input:
        heads=[
            f"{OUT}/models/{t}/{fs}/head.pt"
            for t in OWN.tasks
            for fs in fusion_sets(OWN.fusion)
        ] if OWN.own else [],
        fusions=[f"{OUT}/fusion/{t}/{OWN.fusion}" for t in OWN.tasks],
        # the detector's too: applying the bundle checks the run's detector weights against it
        manifests=[f"{OUT}/models/{m}.json" for m in OWN.own_models()] + DETECTOR_MANIFEST,
    output:
        directory(f"{OUT}/bundle"),
    params:
        key=KEYS.bundle(OWN),
    log:
        f"{OUT}/logs/bundle.log",
    localrule: True
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/bundle.py"


rule frame_predictions:
    """One shard's videos as per-frame rows: face presence, model class probabilities, task outputs."""
    input:
        media=f"{OUT}/media/{{shard}}.h5",
        faces=f"{OUT}/faces/{DETECTOR}/{{shard}}.h5",
        face_features=expand(f"{OUT}/features/face/{{model}}/{{{{shard}}}}.h5", model=config["features"]["face"]),
        features=lambda wc: [label_shard(lb, wc.shard) for lb in SCOPE.labels],
        pretrained=lambda wc: [label_shard(f"face/{SCOPE.pretrained}", wc.shard)] if SCOPE.pretrained else [],
        manifests=[f"{OUT}/models/{m}.json" for m in SCOPE.models],
        bundle=SCOPE.bundle or [],
    output:
        f"{OUT}/frame_predictions/{{shard}}.parquet",
    params:
        key=lambda wc: KEYS.frame_predictions(wc.shard, SCOPE),
        units=shard_units,
    log:
        f"{OUT}/logs/frame_predictions/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/frame_predictions/{{shard}}.tsv"
    threads: 1
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(RUNTIME_MIN["frame_predictions"]),
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/frame_predictions.py"


rule predictions:
    """All shards' rows: one CSV per video and one Parquet file for the run."""
    input:
        expand(f"{OUT}/frame_predictions/{{shard}}.parquet", shard=SHARDS),
    output:
        folder=directory(f"{OUT}/predictions"),
        parquet=f"{OUT}/predictions.parquet",
    params:
        key=KEYS.predictions(),
    log:
        f"{OUT}/logs/predictions.log",
    localrule: True
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/predictions.py"
