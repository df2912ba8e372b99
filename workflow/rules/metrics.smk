rule metrics:
    input:
        frames="results/frames/{split}.zarr",
        recon="results/recon/{model}/{split}.zarr",
        code=code("metrics"),
    output:
        table="results/metrics/{model}/{split}.csv",
        spec="results/metrics/{model}/{split}.spec.json",
    log:
        "results/logs/metrics/{model}/{split}.log",
    benchmark:
        "results/benchmarks/metrics/{model}/{split}.tsv"
    wildcard_constraints:
        split=WHOLE_SPLIT,
    conda:
        ENV
    threads: threads_for(4)
    resources:
        gpu=metrics_gpu,
    params:
        shard=None,
        device=RUN.config["metrics"]["device"],
    script:
        "../scripts/metrics.py"


use rule metrics as metrics_shard with:
    output:
        table=temp("results/shards/metrics/{model}/{split}/{shard}.csv"),
        spec=temp("results/shards/metrics/{model}/{split}/{shard}.spec.json"),
    log:
        "results/logs/metrics/{model}/{split}/shard{shard}.log",
    benchmark:
        "results/benchmarks/metrics/{model}/{split}/shard{shard}.tsv"
    wildcard_constraints:
        split=SHARDED_SPLIT,
    params:
        shard=shard_of,
        device=RUN.config["metrics"]["device"],


rule gather_metrics:
    input:
        tables=shard_files("results/shards/metrics/{model}/{split}/{shard}.csv"),
        specs=shard_files("results/shards/metrics/{model}/{split}/{shard}.spec.json"),
        code=code("gather_metrics"),
    output:
        table="results/metrics/{model}/{split}.csv",
        spec="results/metrics/{model}/{split}.spec.json",
    log:
        "results/logs/gather_metrics/{model}/{split}.log",
    benchmark:
        "results/benchmarks/gather_metrics/{model}/{split}.tsv"
    wildcard_constraints:
        split=SHARDED_SPLIT,
    conda:
        ENV
    script:
        "../scripts/gather_metrics.py"


rule metrics_summary:
    input:
        tables=all_of("results/metrics/{model}/{split}.csv"),
        code=code("metrics_summary"),
    output:
        summary="results/metrics/summary.csv",
        comparison="results/metrics/comparison.csv",
    log:
        "results/logs/metrics_summary.log",
    benchmark:
        "results/benchmarks/metrics_summary.tsv"
    conda:
        ENV
    params:
        resamples=RUN.config["metrics"]["bootstrap_resamples"],
        seed=RUN.config["metrics"]["seed"],
        pairs=COMPARISON_PAIRS,
    script:
        "../scripts/metrics_summary.py"


rule collapse_check:
    input:
        frames=f"results/frames/{VAL_SPLIT}.zarr",
        recon=f"results/recon/{{model}}/{VAL_SPLIT}.zarr",
        code=code("collapse_check"),
    output:
        figures="results/metrics/{model}/collapse.json",
    log:
        "results/logs/collapse_check/{model}.log",
    benchmark:
        "results/benchmarks/collapse_check/{model}.tsv"
    conda:
        ENV
    script:
        "../scripts/collapse_check.py"
