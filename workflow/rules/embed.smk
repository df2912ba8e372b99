# One embedding per latent space (LATENT_MODELS): a model that shares another's latents is not embedded twice.
rule embed:
    input:
        latents=lambda wildcards: expand("results/latents/{model}/{split}.zarr", model=wildcards.model, split=SPLITS),
        clusters="results/geometry/{model}/clusters.csv",
        trajectories="results/geometry/{model}/trajectories.csv",
        code=code("embed"),
    output:
        table="results/embeddings/{model}/{method}.csv",
        plot="results/embeddings/{model}/{method}.png",
        record="results/embeddings/{model}/{method}.json",
    log:
        "results/logs/embed/{model}/{method}.log",
    benchmark:
        "results/benchmarks/embed/{model}/{method}.tsv"
    conda:
        ENV
    threads: threads_for(2)
    params:
        settings=RUN.embed_settings,
    script:
        "../scripts/embed.py"
