# data.layout video: one job per video turns it into triplets (latent_interp.video), so a new or changed video is
# extracted alone and reruns only its split's jobs.
rule extract_video:
    input:
        video=video_file,
        code=code("extract_video"),
    output:
        directory("results/videos/{split}/{video}"),
    log:
        "results/logs/extract_video/{split}/{video}.log",
    benchmark:
        "results/benchmarks/extract_video/{split}/{video}.tsv"
    conda:
        ENV
    params:
        settings=RUN.config["data"].get("video", {}),
        on_error=RUN.config["data"].get("on_error", "skip"),
    script:
        "../scripts/extract_video.py"


rule ingest:
    input:
        frames=split_frame_files,
        code=code("ingest"),
    output:
        store=directory("results/frames/{split}.zarr"),
        skipped="results/frames/{split}.skipped.csv",
    log:
        "results/logs/ingest/{split}.log",
    benchmark:
        "results/benchmarks/ingest/{split}.tsv"
    conda:
        ENV
    threads: threads_for(4)
    params:
        source=split_source,
        size=RUN.config["preprocess"]["size"],
        resample=RUN.config["preprocess"]["resample"],
        fit=RUN.config["preprocess"].get("fit", "squash"),
        on_error=RUN.config["data"].get("on_error", "skip"),
    script:
        "../scripts/ingest.py"
