# The embedded demo draws its own ATD-12K-shaped frames: one rule per split, so a split's size change touches that
# split alone. Each writes one folder, not its thousands of frame files as outputs: Snakemake matches every input
# against every declared output, which made a no-op dry run of 10,000 triplets take a minute (bench P4). To edit
# frames by hand, use them as data (data.source: files), whose frames are inputs one by one.
for _split in SPLITS if SYNTHETIC else []:

    rule:
        name:
            f"synthesize_{_split}"
        input:
            code=code("synthesize"),
        output:
            directory(f"{config['data']['root']}/{_split}"),
        log:
            f"results/logs/synthesize/{_split}.log",
        benchmark:
            f"results/benchmarks/synthesize/{_split}.tsv"
        conda:
            ENV
        params:
            split=_split,
            seed=SYNTHETIC["seed"],
            triplets=SYNTHETIC["triplets"][_split],
            raw_size=SYNTHETIC["raw_size"],
        script:
            "../scripts/synthesize.py"
