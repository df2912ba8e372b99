rule report:
    input:
        summary="results/metrics/summary.csv",
        comparison="results/metrics/comparison.csv",
        finetuned=expand("results/models/{finetune}", finetune=list(FINETUNES)),
        compare_table="results/compare/vaes.csv",
        compare_summary="results/compare/vaes.json",
        finetune_effects="results/compare/finetunes.csv",
        tables=all_of("results/metrics/{model}/{split}.csv"),
        spec=all_of("results/metrics/{model}/{split}.spec.json")[0],
        frames=expand("results/frames/{split}.zarr", split=SPLITS),
        skipped=expand("results/frames/{split}.skipped.csv", split=SPLITS),
        recon=all_of("results/recon/{model}/{split}.zarr"),
        latents=all_of("results/latents/{model}/{split}.zarr", model=LATENT_MODELS),
        collapse=expand("results/metrics/{model}/collapse.json", model=list(MODELS)),
        embeddings=all_of("results/embeddings/{model}/{method}.csv", model=LATENT_MODELS, method=EMBED_METHODS),
        settings=all_of("results/embeddings/{model}/{method}.json", model=LATENT_MODELS, method=EMBED_METHODS),
        interp_summary="results/interp/summary.csv",
        interp_tables=all_of("results/interp/{model}/{split}.csv", split=INTERP_SPLITS),
        interp_stores=all_of("results/interp/{model}/{split}.zarr", split=INTERP_SPLITS),
        predictors=expand("results/predictors/{model}", model=LATENT_MODELS),
        geometry=expand("results/geometry/{model}/{file}", model=LATENT_MODELS, file=GEOMETRY_OUTPUTS.values()),
        flow=expand("results/flow/{split}.zarr", split=SPLITS),
        flow_tables=expand("results/flow/{split}.csv", split=SPLITS),
        equivariance=expand("results/geometry/{model}/{file}", model=LATENT_MODELS, file=EQUIVARIANCE_OUTPUTS.values()),
        clips=CLIPS,
        code=code("report"),
    output:
        report="results/report.html",
        figures=directory("results/figures"),
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    conda:
        ENV
    threads: threads_for(2, whole_machine=True)  # processes drawing the figures; the last job, so alone
    params:
        # how the inputs above are laid out (latent_interp.report.job), and what the page states about the run
        layout=dict(
            config=RUN.config,
            vae_sources=RUN.vae_sources,
            models=list(MODELS),
            latent_models=LATENT_MODELS,
            splits=SPLITS,
            interp_splits=INTERP_SPLITS,
            methods=EMBED_METHODS,
            twins=TWINS,
            finetunes=FINETUNES,
            geometry_names=list(GEOMETRY_OUTPUTS),
            equivariance_names=list(EQUIVARIANCE_OUTPUTS),
            clip_videos=list(CLIP_VIDEOS),
            lpips_skipped=not lpips_files(None),
            settings=RUN.config["report"],
        ),
        # the page links the figures' final folder, not the temporary one they are written to
        linked_figures=lambda wildcards, output: output.figures,
    script:
        "../scripts/report.py"
