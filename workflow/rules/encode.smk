# The two GPU stages. resources: gpu=1 lets profiles/default run one at a time and the slurm executor ask for a GPU.
rule encode:
    input:
        frames="results/frames/{split}.zarr",
        vae=vae_files,
    output:
        directory("results/latents/{model}/{split}.zarr"),
    params:
        vae=lambda wildcards: MODELS[wildcards.model],
        batch_size=config["vae"].get("batch_size", 16),
        device=config["vae"].get("device", "auto"),
        single_file_config=config["vae"].get("single_file_config"),
    log:
        "results/logs/encode/{model}/{split}.log",
    benchmark:
        "results/benchmarks/encode/{model}/{split}.tsv"
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/encode.py"


rule reconstruct:
    input:
        latents="results/latents/{model}/{split}.zarr",
        vae=vae_files,
    output:
        directory("results/recon/{model}/{split}.zarr"),
    params:
        vae=lambda wildcards: MODELS[wildcards.model],
        batch_size=config["vae"].get("batch_size", 16),
        device=config["vae"].get("device", "auto"),
        single_file_config=config["vae"].get("single_file_config"),
    log:
        "results/logs/reconstruct/{model}/{split}.log",
    benchmark:
        "results/benchmarks/reconstruct/{model}/{split}.tsv"
    threads: 4
    resources:
        gpu=1,
    conda:
        ENV
    script:
        "../scripts/reconstruct.py"
