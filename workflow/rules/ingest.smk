rule ingest:
    input:
        split_frame_files,
    output:
        store=directory("results/frames/{split}.zarr"),
        skipped="results/frames/{split}.skipped.csv",
    params:
        source=split_source,
        size=config["preprocess"]["size"],
        resample=config["preprocess"]["resample"],
        on_error=config["data"].get("on_error", "skip"),
    log:
        "results/logs/ingest/{split}.log",
    benchmark:
        "results/benchmarks/ingest/{split}.tsv"
    threads: 4
    conda:
        ENV
    script:
        "../scripts/ingest.py"
