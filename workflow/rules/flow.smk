# Optical flow of every triplet (latent_interp/flow.py), on the CPU. It reads the frames store only, so it runs once
# per split whatever the number of VAEs: adding a VAE plans no flow job.
rule flow:
    input:
        frames="results/frames/{split}.zarr",
        code=code("flow"),
    output:
        flow=directory("results/flow/{split}.zarr"),
        table="results/flow/{split}.csv",
    log:
        "results/logs/flow/{split}.log",
    benchmark:
        "results/benchmarks/flow/{split}.tsv"
    conda:
        ENV
    threads: threads_for(4)
    params:
        settings=RUN.config["flow"],
        on_error=RUN.config["data"]["on_error"],
    script:
        "../scripts/flow.py"
