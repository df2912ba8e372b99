rule metrics:
    input:
        frames="results/frames/{split}.zarr",
        recon="results/recon/{model}/{split}.zarr",
    output:
        table="results/metrics/{model}/{split}.csv",
        spec="results/metrics/{model}/{split}.spec.json",
    log:
        "results/logs/metrics/{model}/{split}.log",
    benchmark:
        "results/benchmarks/metrics/{model}/{split}.tsv"
    threads: 1
    conda:
        ENV
    script:
        "../scripts/metrics.py"


rule metrics_summary:
    input:
        all_of("results/metrics/{model}/{split}.csv"),
    output:
        summary="results/metrics/summary.csv",
        comparison="results/metrics/comparison.csv",
    params:
        resamples=config["metrics"].get("bootstrap_resamples", 1000),
        seed=config["metrics"].get("seed", 0),
    log:
        "results/logs/metrics_summary.log",
    benchmark:
        "results/benchmarks/metrics_summary.tsv"
    threads: 1
    conda:
        ENV
    script:
        "../scripts/metrics_summary.py"


rule collapse_check:
    input:
        frames=f"results/frames/{VAL_SPLIT}.zarr",
        recon=f"results/recon/{{model}}/{VAL_SPLIT}.zarr",
    output:
        "results/metrics/{model}/collapse.json",
    log:
        "results/logs/collapse_check/{model}.log",
    benchmark:
        "results/benchmarks/collapse_check/{model}.tsv"
    threads: 1
    conda:
        ENV
    script:
        "../scripts/collapse_check.py"
