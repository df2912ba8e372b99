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
    threads: threads_for(2)
    params:
        settings={k: v for k, v in RUN.config["geometry"].items() if k != "equivariance_frames"},
        probe_test=PROBE_TEST,
    script:
        "../scripts/geometry.py"


# Equivariance of each latent space to shifts, and latent warping along the oracle flow (latent_interp/equivariance.py),
# on the split the probes are scored on (test).
rule equivariance:
    input:
        frames=f"results/frames/{PROBE_TEST}.zarr",
        latents=f"results/latents/{{model}}/{PROBE_TEST}.zarr",
        flow=f"results/flow/{PROBE_TEST}.zarr",
        weights=vae_files,
        code=code("equivariance"),
    output:
        # the names and files of EQUIVARIANCE_OUTPUTS (common.smk), which the report reads
        curve="results/geometry/{model}/equivariance.csv",
        per_frame="results/geometry/{model}/equivariance_frames.csv",
        triplets="results/geometry/{model}/equivariance_triplets.csv",
        summary="results/geometry/{model}/equivariance.json",
        layers="results/geometry/{model}/equivariance_layers.csv",
    log:
        "results/logs/equivariance/{model}.log",
    benchmark:
        "results/benchmarks/equivariance/{model}.tsv"
    conda:
        ENV
    threads: threads_for(4)
    resources:
        gpu=vae_gpu,
    params:
        **VAE_PARAMS,
        shifted_frames=RUN.config["geometry"]["equivariance_frames"],
    script:
        "../scripts/equivariance.py"
