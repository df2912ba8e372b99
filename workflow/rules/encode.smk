# The two GPU stages. vae_gpu and threads_for (common.smk): one GPU job at a time where they run on a GPU (profiles/
# default), a GPU each on a cluster, and jobs side by side on a machine without one.
# A split of more than data.shard_size triplets runs as shard jobs (encode_shard, reconstruct_shard) that
# gather_store concatenates into the same store; the others as one job (encode, reconstruct).
rule encode:
    input:
        frames="results/frames/{split}.zarr",
        weights=vae_files,
        code=code("encode"),
    output:
        latents=directory("results/latents/{model}/{split}.zarr"),
    log:
        "results/logs/encode/{model}/{split}.log",
    benchmark:
        "results/benchmarks/encode/{model}/{split}.tsv"
    wildcard_constraints:
        split=WHOLE_SPLIT,
    conda:
        ENV
    threads: threads_for(4)
    resources:
        gpu=vae_gpu,
    params:
        **VAE_PARAMS,
        shard=None,
    script:
        "../scripts/encode.py"


rule reconstruct:
    input:
        latents=latents_of_space,
        weights=vae_files,
        code=code("reconstruct"),
    output:
        recon=directory("results/recon/{model}/{split}.zarr"),
    log:
        "results/logs/reconstruct/{model}/{split}.log",
    benchmark:
        "results/benchmarks/reconstruct/{model}/{split}.tsv"
    wildcard_constraints:
        split=WHOLE_SPLIT,
    conda:
        ENV
    threads: threads_for(4)
    resources:
        gpu=vae_gpu,
    params:
        **VAE_PARAMS,
        shard=None,
    script:
        "../scripts/reconstruct.py"


use rule encode as encode_shard with:
    output:
        latents=temp(directory("results/shards/latents/{model}/{split}/{shard}.zarr")),
    log:
        "results/logs/encode/{model}/{split}/shard{shard}.log",
    benchmark:
        "results/benchmarks/encode/{model}/{split}/shard{shard}.tsv"
    wildcard_constraints:
        split=SHARDED_SPLIT,
    params:
        **VAE_PARAMS,
        shard=shard_of,


use rule reconstruct as reconstruct_shard with:
    output:
        recon=temp(directory("results/shards/recon/{model}/{split}/{shard}.zarr")),
    log:
        "results/logs/reconstruct/{model}/{split}/shard{shard}.log",
    benchmark:
        "results/benchmarks/reconstruct/{model}/{split}/shard{shard}.tsv"
    wildcard_constraints:
        split=SHARDED_SPLIT,
    params:
        **VAE_PARAMS,
        shard=shard_of,


# Cheap: a copy, chunk by chunk. The gathered store is byte-identical to an unsharded run's (latent_interp.store).
rule gather_store:
    input:
        shards=shard_files("results/shards/{stage}/{model}/{split}/{shard}.zarr"),
        code=code("gather_store"),
    output:
        store=directory("results/{stage}/{model}/{split}.zarr"),
    log:
        "results/logs/gather_store/{stage}/{model}/{split}.log",
    benchmark:
        "results/benchmarks/gather_store/{stage}/{model}/{split}.tsv"
    wildcard_constraints:
        stage="latents|recon",
        split=SHARDED_SPLIT,
    conda:
        ENV
    script:
        "../scripts/gather_store.py"
