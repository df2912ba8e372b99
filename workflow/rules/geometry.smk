# The geometry of each latent space over every split (latent_interp/geometry.py).
rule geometry:
    input:
        latents=lambda wildcards: expand("results/latents/{model}/{split}.zarr", model=wildcards.model, split=SPLITS),
        frames=expand("results/frames/{split}.zarr", split=SPLITS),
        code=code("geometry"),
    output:
        # the names and files of GEOMETRY_OUTPUTS (common.smk), which the report reads
        trajectories="results/geometry/{model}/trajectories.csv",
        channels="results/geometry/{model}/channels.csv",
        histograms="results/geometry/{model}/histograms.csv",
        correlation="results/geometry/{model}/correlation.csv",
        clusters="results/geometry/{model}/clusters.csv",
        summary="results/geometry/{model}/geometry.json",
    log:
        "results/logs/geometry/{model}.log",
    benchmark:
        "results/benchmarks/geometry/{model}.tsv"
    conda:
        ENV
    params:
        settings=RUN.config["geometry"],
        probe_test=PROBE_TEST,
    script:
        "../scripts/geometry.py"
