rule faces:
    """Detect, crop and store faces of every analysed frame of one shard."""
    input:
        media=f"{OUT}/media/{{shard}}.h5",
        videos=shard_videos,
    output:
        f"{OUT}/faces/{{detector}}/{{shard}}.h5",
    params:
        units=shard_units,
        cfg=config["faces"],
        on_bad_video=config["on_bad_video"],
        models_dir=config["models_dir"],
        model_pins=detector_pins(),
    log:
        f"{OUT}/logs/faces/{{detector}}/{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/faces/{{detector}}/{{shard}}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/faces.py"


rule contact_sheets:
    """A small grid of crops per video, to look at what the detector kept."""
    input:
        f"{OUT}/faces/{{detector}}/{{shard}}.h5",
    output:
        directory(f"{OUT}/faces/{{detector}}/sheets/{{shard}}"),
    log:
        f"{OUT}/logs/faces/{{detector}}/sheets_{{shard}}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/affectflow.yaml"
    script:
        "../scripts/contact_sheets.py"
