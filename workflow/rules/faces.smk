# Faces of the configured detector (config faces.detector): the detector is part
# of the output path and of the rerun key, never a wildcard a target could vary.


rule faces:
    """Detect, crop and store faces of every analysed frame of one shard."""
    input:
        media=f"{OUT}/media/{{shard}}.h5",
        videos=shard_videos,
        detector=DETECTOR_MANIFEST,
    output:
        f"{OUT}/faces/{DETECTOR}/{{shard}}.h5",
    params:
        key=lambda wc: KEYS.faces(wc.shard),
        units=shard_units,
    log:
        f"{OUT}/logs/faces/{DETECTOR}/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/faces/{DETECTOR}/{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=per_attempt(4000),
        runtime=per_attempt(RUNTIME_MIN["faces"]),
        gpu=GPU if DETECTOR == "retinaface_mnet025" else 0,
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/faces.py"


rule contact_sheets:
    """A small grid of crops per video, to look at what the detector kept."""
    input:
        f"{OUT}/faces/{DETECTOR}/{{shard}}.h5",
    output:
        directory(f"{OUT}/faces/{DETECTOR}/sheets/{{shard}}"),
    params:
        key=KEYS.contact_sheets(),
    log:
        f"{OUT}/logs/faces/{DETECTOR}/sheets_{{shard}}.log",
    threads: 1
    resources:
        mem_mb=per_attempt(1000),
        runtime=per_attempt(RUNTIME_MIN["contact_sheets"]),
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/contact_sheets.py"
