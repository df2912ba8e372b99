rule embed:
    input:
        lambda wildcards: expand("results/latents/{model}/{split}.zarr", model=wildcards.model, split=SPLITS),
    output:
        table="results/embeddings/{model}/{method}.csv",
        plot="results/embeddings/{model}/{method}.png",
        settings="results/embeddings/{model}/{method}.json",
    params:
        seed=config["embed"].get("seed", 0),
        max_points=config["embed"].get("max_points", 5000),
    log:
        "results/logs/embed/{model}/{method}.log",
    benchmark:
        "results/benchmarks/embed/{model}/{method}.tsv"
    threads: 2
    conda:
        ENV
    script:
        "../scripts/embed.py"
