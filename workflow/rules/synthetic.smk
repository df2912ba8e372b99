# The embedded demo draws its own ATD-12K-shaped frames (or, with data.layout video, videos of them): one rule per
# split, so a split's size change touches that split alone. A drawn split's output is its manifest (every frame, its
# size and sha256), the one file ingest reads it by; the frames are drawn anew, whole, when the split's config
# changes. To study frames edited by hand, read them as data (data.source: files), where each frame is an input.
for _split in SPLITS if SYNTHETIC else []:

    rule:
        name:
            f"synthesize_{_split}"
        input:
            code=code("synthesize"),
        output:
            drawn=synthetic_outputs(_split),
        log:
            f"results/logs/synthesize/{_split}.log",
        benchmark:
            f"results/benchmarks/synthesize/{_split}.tsv"
        conda:
            ENV
        params:
            split=_split,
            seed=SYNTHETIC["seed"],
            layout="video" if VIDEO_LAYOUT else "folders",
            how_many=SYNTHETIC["videos" if VIDEO_LAYOUT else "triplets"][_split],
            raw_size=SYNTHETIC["raw_size"],
            split_dir=f"{RUN.config['data']['root']}/{_split}",
        script:
            "../scripts/synthesize.py"
