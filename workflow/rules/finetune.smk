# Fine-tune finetune.vae on train (validated on val) into a diffusers folder, model "<that name>-finetuned" of every
# later rule. The checkpoint lives outside the output folder, which Snakemake deletes when a job fails or is killed,
# so a rerun resumes from it (latent_interp/finetune.py).
rule finetune:
    input:
        train="results/frames/train.zarr",
        val=f"results/frames/{VAL_SPLIT}.zarr",
        vae=lambda wildcards: model_files(FINETUNE_BASE),
        code=code("finetune"),
    output:
        directory(FINETUNED),
    log:
        "results/logs/finetune.log",
    benchmark:
        "results/benchmarks/finetune.tsv"
    conda:
        ENV
    resources:
        gpu=1,
    params:
        # lazily: without finetune.enabled, finetune.vae need not name an entry of vaes
        pretrained=lambda wildcards: MODELS[FINETUNE_BASE],
        vae_options=lambda wildcards: RUN.vae_options(FINETUNE_BASE),
        settings=RUN.config["finetune"],
        checkpoint=f"results/checkpoints/{FINETUNED_NAME}.pt",
        batch_size=RUN.config["vae"].get("batch_size", 16),
        device=RUN.config["vae"].get("device", "auto"),
    script:
        "../scripts/finetune.py"
