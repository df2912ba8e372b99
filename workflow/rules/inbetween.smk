# Re-timed clips (latent_interp/inbetween.py): each video of the splits in inbetween.splits, per model, with
# inbetween.factor - 1 in-betweens between every two of its drawings, made by inbetween.method.
rule inbetween:
    input:
        unpack(clip_inputs),
        weights=vae_files,
        code=code("inbetween"),
    output:
        clip=directory("results/inbetween/{model}/{video}"),
    log:
        "results/logs/inbetween/{model}/{video}.log",
    benchmark:
        "results/benchmarks/inbetween/{model}/{video}.tsv"
    conda:
        ENV
    threads: threads_for(4)
    resources:
        gpu=vae_gpu,
    params:
        **VAE_PARAMS,
        preprocess=RUN.preprocess,
        settings={key: RUN.config["inbetween"][key] for key in ("method", "factor", "codec")},
        flow_settings=RUN.config["flow"],
    script:
        "../scripts/inbetween.py"
