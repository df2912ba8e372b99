# Many VAEs side by side (latent_interp/compare.py): reads each model's own tables and benchmark files, so adding a
# VAE reruns its jobs and this aggregate only.
rule compare_vaes:
    input:
        files=compare_files,
        code=code("compare_vaes"),
    output:
        table="results/compare/vaes.csv",
        summary="results/compare/vaes.json",
        finetunes_table="results/compare/finetunes.csv",
    log:
        "results/logs/compare_vaes.log",
    benchmark:
        "results/benchmarks/compare_vaes.tsv"
    conda:
        ENV
    params:
        models=COMPARE_INPUTS,
        baseline=BASELINE,
        val_split=VAL_SPLIT,
        resamples=RUN.config["compare"]["bootstrap_resamples"],
        seed=RUN.config["compare"]["seed"],
        learned=RUN.config["interp"]["predictors"],
        finetunes=FINETUNES,
    script:
        "../scripts/compare_vaes.py"
