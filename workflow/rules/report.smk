rule report:
    input:
        summary="results/metrics/summary.csv",
        comparison="results/metrics/comparison.csv",
        finetuned=[FINETUNED] if "finetuned" in MODELS else [],
        tables=all_of("results/metrics/{model}/{split}.csv"),
        spec=all_of("results/metrics/{model}/{split}.spec.json")[0],
        frames=expand("results/frames/{split}.zarr", split=SPLITS),
        skipped=expand("results/frames/{split}.skipped.csv", split=SPLITS),
        recon=all_of("results/recon/{model}/{split}.zarr"),
        latents=all_of("results/latents/{model}/{split}.zarr"),
        collapse=expand("results/metrics/{model}/collapse.json", model=list(MODELS)),
        plots=all_of("results/embeddings/{model}/{method}.png", method=EMBED_METHODS),
        settings=all_of("results/embeddings/{model}/{method}.json", method=EMBED_METHODS),
    output:
        "results/report.html",
    params:
        config=config,
        models=list(MODELS),
        splits=SPLITS,
        methods=EMBED_METHODS,
        per_origin=config["report"].get("grid_triplets_per_origin", 2),
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    threads: 1
    conda:
        ENV
    script:
        "../scripts/report.py"
