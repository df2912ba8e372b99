rule ingest:
    input:
        frames=split_frame_files,
        code=code("ingest"),
    output:
        store=directory("results/frames/{split}.zarr"),
        skipped="results/frames/{split}.skipped.csv",
    log:
        "results/logs/ingest/{split}.log",
    benchmark:
        "results/benchmarks/ingest/{split}.tsv"
    conda:
        ENV
    params:
        source=split_source,
        size=RUN.config["preprocess"]["size"],
        resample=RUN.config["preprocess"]["resample"],
        fit=RUN.config["preprocess"].get("fit", "squash"),
        on_error=RUN.config["data"].get("on_error", "skip"),
    script:
        "../scripts/ingest.py"
