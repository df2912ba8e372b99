# Fine-tune vae.pretrained on train (validated on val) into a diffusers folder; the encode rule loads it as model
# "finetuned". The checkpoint lives outside the output folder, which Snakemake deletes when a job fails or is killed,
# so a rerun resumes from it (latent_interp/finetune.py).
rule finetune:
    input:
        train="results/frames/train.zarr",
        val=f"results/frames/{VAL_SPLIT}.zarr",
        vae=lambda wildcards: model_files("pretrained"),
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
        pretrained=config["vae"]["pretrained"],
        settings=config["finetune"],
        checkpoint="results/checkpoints/finetuned.pt",
        batch_size=config["vae"].get("batch_size", 16),
        device=config["vae"].get("device", "auto"),
        single_file_config=config["vae"].get("single_file_config"),
    script:
        "../scripts/finetune.py"
