# The embedded demo draws its own ATD-12K-shaped frames (or, with data.layout video, videos of them): one rule per
# split, so a split's size change or a hand-edited frame touches that split alone. Their output files are known from
# the config before any job runs.
for _split in SPLITS if SYNTHETIC else []:

    rule:
        name:
            f"synthesize_{_split}"
        input:
            code=code("synthesize"),
        output:
            synthetic_frame_files(_split),
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
        script:
            "../scripts/synthesize.py"
