# Frame 2 from frames 1 and 3 (latent_interp/interp.py). Leak-free by construction: interp_train's only inputs are
# the train and val latents (their frames stores for each triplet's t, and, for flow_unet, their flow), so no test
# triplet can reach the predictors (tests/test_workflow.py checks the DAG).
TRAINING_KEYS = ("predictors", "seed", "augment_time_reversal", "time", "linear", "mlp", "unet", "flow_unet")
FLOW_PREDICTED = "flow_unet" in RUN.config["interp"]["predictors"]


rule interp_train:
    input:
        train="results/latents/{model}/train.zarr",
        val=f"results/latents/{{model}}/{VAL_SPLIT}.zarr",
        frames=expand("results/frames/{split}.zarr", split=["train", VAL_SPLIT]),
        flow=expand("results/flow/{split}.zarr", split=["train", VAL_SPLIT]) if FLOW_PREDICTED else [],
        code=code("interp_train"),
    output:
        predictors=directory("results/predictors/{model}"),
    log:
        "results/logs/interp_train/{model}.log",
    benchmark:
        "results/benchmarks/interp_train/{model}.tsv"
    conda:
        ENV
    threads: threads_for(4)
    resources:
        gpu=vae_gpu,
    params:
        # only the keys that shape the predictors: a new gallery or LPIPS setting must not retrain them
        settings={key: RUN.config["interp"][key] for key in TRAINING_KEYS if key in RUN.config["interp"]},
        device=RUN.config["vae"]["device"],
    script:
        "../scripts/interp_train.py"


rule interp:
    input:
        frames="results/frames/{split}.zarr",
        latents=latents_of_space,
        recon="results/recon/{model}/{split}.zarr",
        flow="results/flow/{split}.zarr",
        predictors=predictors_of_space,
        weights=vae_files,
        lpips_weights=lpips_files,
        code=code("interp"),
    output:
        table="results/interp/{model}/{split}.csv",
        spec="results/interp/{model}/{split}.spec.json",
        predicted=directory("results/interp/{model}/{split}.zarr"),
    log:
        "results/logs/interp/{model}/{split}.log",
    benchmark:
        "results/benchmarks/interp/{model}/{split}.tsv"
    conda:
        ENV
    threads: threads_for(4)
    resources:
        gpu=vae_gpu,
    params:
        **VAE_PARAMS,
        settings=RUN.interp_settings,
    script:
        "../scripts/interp.py"


rule interp_summary:
    input:
        tables=expand("results/interp/{model}/{split}.csv", model=list(MODELS), split=INTERP_SPLITS),
        code=code("interp_summary"),
    output:
        summary="results/interp/summary.csv",
    log:
        "results/logs/interp_summary.log",
    benchmark:
        "results/benchmarks/interp_summary.tsv"
    conda:
        ENV
    params:
        resamples=RUN.config["metrics"]["bootstrap_resamples"],
        seed=RUN.config["metrics"]["seed"],
        bins=RUN.config["interp"]["motion_bins"],
    script:
        "../scripts/interp_summary.py"
