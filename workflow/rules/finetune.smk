# Each entry of finetunes trains a copy of its VAE on train (validated on val) into a diffusers folder, model
# "<the entry's name>" of every later rule. The checkpoint lives outside the output folder, which Snakemake deletes
# when a job fails or is killed, so a rerun resumes from it (latent_interp/finetune.py).
rule finetune:
    input:
        train="results/frames/train.zarr",
        val=f"results/frames/{VAL_SPLIT}.zarr",
        weights=lambda wildcards: model_files(FINETUNES[wildcards.finetune]["vae"]),
        code=code("finetune"),
    output:
        model_dir=directory("results/models/{finetune}"),
    log:
        "results/logs/finetune/{finetune}.log",
    benchmark:
        "results/benchmarks/finetune/{finetune}.tsv"
    wildcard_constraints:
        finetune=one_of(FINETUNES),
    # the longest jobs, and each heads a chain of its own model's jobs: started first, those chains run beside the
    # other models' jobs instead of after them
    priority: 1
    conda:
        ENV
    threads: threads_for(4, whole_machine=True)
    resources:
        gpu=vae_gpu,
    params:
        base=lambda wildcards: RUN.finetune_base_run(wildcards.finetune),
        settings=lambda wildcards: FINETUNES[wildcards.finetune],
        checkpoint="results/checkpoints/{finetune}.pt",
    script:
        "../scripts/finetune.py"
