# data.layout video: one job per video turns it into triplets (latent_interp.video), so a new or changed video is
# extracted alone and reruns only its split's jobs.
rule extract_video:
    input:
        video=video_file,
        code=code("extract_video"),
    output:
        extraction=directory("results/videos/{split}/{video}"),
    log:
        "results/logs/extract_video/{split}/{video}.log",
    benchmark:
        "results/benchmarks/extract_video/{split}/{video}.tsv"
    conda:
        ENV
    params:
        settings=RUN.config["data"].get("video", {}),  # layout video only: no section, no defaults
        on_error=RUN.config["data"]["on_error"],
    script:
        "../scripts/extract_video.py"


rule ingest:
    input:
        frame_files=split_frame_files,
        code=code("ingest"),
    output:
        frames=directory("results/frames/{split}.zarr"),
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
        preprocess=RUN.preprocess,
        on_error=RUN.config["data"]["on_error"],
        max_pixels=RUN.config["data"]["max_pixels"],
    script:
        "../scripts/ingest.py"
