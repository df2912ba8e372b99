rule ingest:
    input:
        split_frame_files,
    output:
        directory("results/frames/{split}.zarr"),
    params:
        size=config["preprocess"]["size"],
        resample=config["preprocess"]["resample"],
    log:
        "results/logs/ingest/{split}.log",
    benchmark:
        "results/benchmarks/ingest/{split}.tsv"
    threads: 4
    conda:
        ENV
    script:
        "../scripts/ingest.py"
