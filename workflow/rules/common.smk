# Config validation, the names the rules share, and every input function.
import re
from pathlib import Path

from snakemake.utils import validate

# Only torch-free modules: every Snakemake process (each dry run, each cluster job) builds the DAG from these.
from latent_interp import data, runconfig, sources, synthetic, video, weights

runconfig.reject_old_keys(config)  # before the schema, which would reject the old keys without saying what to write
validate(config, "../schemas/config.schema.yaml")
# Everything below reads the config through RUN (latent_interp.runconfig), never the raw mapping: a --configfile
# can leave entries of config.yaml out with null, and RUN is the run as it is, those entries gone.
RUN = runconfig.resolve(config)

# The rules' names for what RUN resolves. {model} is an entry of vaes or of finetunes (the diffusers folder rule
# finetune writes, results/models/<name>). Every per-model job reads only its own entry, so adding a VAE or a
# fine-tune adds its jobs and reruns only the aggregates that list every model.
SPLITS = RUN.splits
SYNTHETIC = RUN.synthetic  # data.source synthetic: the workflow draws the demo data itself (rule synthesize_<split>)
# data.layout video: each video is extracted into triplets by a job of its own (rule extract_video), which ingest reads
VIDEO_LAYOUT = RUN.config["data"]["layout"] == "video"
MODELS = RUN.models
FINETUNES = RUN.finetunes  # name -> its entry (vae, recipe, overrides)
BASELINE = RUN.baseline
COMPARISON_PAIRS = RUN.comparison_pairs
EMBED_METHODS = RUN.config["embed"]["methods"]


# A job that runs a VAE or trains a model holds the run's one GPU token (profiles/default) and, on a cluster, asks for
# a GPU. Where it runs on this machine's CPU (vae.device cpu, or auto on a machine without a GPU) it holds none.
# These are functions of the job: Snakemake calls them once it knows the executor (a cluster's, or this machine).
def vae_gpu(wildcards=None):
    return int(runconfig.holds_gpu(RUN.config["vae"]["device"], workflow.local_exec))


def metrics_gpu(wildcards=None):
    """metrics.device cpu scores in a process per thread of the rule; anything else with torch on the GPU."""
    return int(runconfig.holds_gpu(RUN.config["metrics"]["device"], workflow.local_exec))


def threads_for(most, whole_machine=False):
    """A rule's threads (local cores; --cpus-per-task on a cluster), as a function of the job: ``most`` on a
    cluster, or where the VAE jobs run on a GPU. On a machine without one, half the cores (at most ``most``), so that
    two jobs overlap: on 2 cores two one-thread jobs hide each other's start-up (Python, torch, diffusers: about 5 s
    a job), which took the demo from 8.0 to 6.0 min (docs/performance.md, P9). ``whole_machine``: one long job (the
    fine-tune) takes them all."""

    def threads(wildcards):
        if vae_gpu() or not workflow.local_exec:
            return most
        cores = workflow.cores or 1
        return max(1, min(most, cores if whole_machine else cores // 2))

    return threads


VAL_SPLIT = RUN.val_split  # the fine-tunes validate on it, the collapse check runs there
ENV = "../../envs/latent-interp.yaml"
SCRIPTS = Path(workflow.main_snakefile).parent / "workflow" / "scripts"

# What the rules that run a VAE on a split pass on: how the job runs its model (latent_interp.settings.VaeRun: the
# weights, the entry's options and the vae.* settings).
VAE_PARAMS = dict(vae_run=lambda wildcards: RUN.vae_run(wildcards.model))

# Latents and the latent study (rules encode, interp_train, geometry, embed) exist once per latent space. A
# decoder-only fine-tune keeps the encoder, so it has its base's latents: it is never
# encoded, its predictors, geometry and embeddings are its base's, and only its decoder is run and scored again
# (reconstruct, metrics, interp). Rule reconstruct refuses latents of another latent space (vae.latent_space).
LATENT_SPACE = RUN.latent_space
LATENT_MODELS = RUN.latent_models
TWINS = RUN.twins
# What rule geometry writes for each latent space, by the name latent_interp.geometry.analyse_geometry uses.
GEOMETRY_OUTPUTS = {
    "trajectories": "trajectories.csv",
    "channels": "channels.csv",
    "histograms": "histograms.csv",
    "correlation": "correlation.csv",
    "clusters": "clusters.csv",
    "summary": "geometry.json",
}
# What rule equivariance writes for each latent space, by the name latent_interp.equivariance uses.
EQUIVARIANCE_OUTPUTS = {
    "curve": "equivariance.csv",
    "per_frame": "equivariance_frames.csv",
    "triplets": "equivariance_triplets.csv",
    "summary": "equivariance.json",
    "layers": "equivariance_layers.csv",
}
INTERP_SPLITS = RUN.interp_splits  # the predictors fit on train, choose on val, and are scored on the others
PROBE_TEST = RUN.probe_test  # the geometry's linear probes fit on train and are scored here


def split_video_files(split):
    """The split's video files: those the demo draws (known from the config), or those on disk."""
    if SYNTHETIC:
        specs = synthetic.video_specs(SYNTHETIC["seed"], split, SYNTHETIC["videos"][split])
        return [Path(RUN.config["data"]["root"]) / split / spec.name for spec in specs]
    return video.split_videos(RUN.config["data"], split)


# split -> {video file name: its path}; empty unless data.layout is video
VIDEOS = {split: {path.name: str(path) for path in split_video_files(split)} for split in SPLITS if VIDEO_LAYOUT}


def clip_videos():
    """Video name -> its split, for the videos of inbetween.splits (rule inbetween); a name in two of those splits
    would be one clip folder for two videos, so it is refused."""
    named = {}
    for split in RUN.config["inbetween"]["splits"] if VIDEO_LAYOUT else []:
        for name in VIDEOS[split]:
            if name in named:
                raise ValueError(
                    f"config key inbetween.splits: a video named {name} is in both {named[name]} and "
                    f"{split}; its clip (results/inbetween/<model>/{name}/) would be both's"
                )
            named[name] = split
    return named


CLIP_VIDEOS = clip_videos()
CLIPS = expand("results/inbetween/{model}/{video}", model=list(MODELS), video=list(CLIP_VIDEOS))


def triplets_listed(split):
    """How many triplets the split's source holds, known before ingest (which may skip some)."""
    if SYNTHETIC:
        return SYNTHETIC["triplets"][split]
    return len(data.split_source(RUN.config["data"], split).triplet_dirs())


# A split above data.shard_size triplets is encoded, reconstructed and scored as SHARDS[split] parallel jobs whose
# stores and tables the gather rules concatenate (docs/cluster.md "Sharded splits"); the others run as one job each.
# A split of videos is one job: its triplet count is known only once its videos are extracted.
SHARD_SIZE = RUN.config["data"]["shard_size"] if not VIDEO_LAYOUT else None
SHARDS = {split: -(-triplets_listed(split) // SHARD_SIZE) for split in SPLITS} if SHARD_SIZE else {}
SHARDS = {split: count for split, count in SHARDS.items() if count > 1}


def one_of(names):
    """A wildcard pattern that matches exactly these names (and nothing when there are none)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


WHOLE_SPLIT = one_of([split for split in SPLITS if split not in SHARDS])
SHARDED_SPLIT = one_of(list(SHARDS))


def shard_files(pattern):
    """Input function: ``pattern`` expanded over the shards of the job's split (and its other wildcards)."""
    return lambda wildcards: expand(pattern, shard=range(SHARDS[wildcards.split]), **wildcards)


def shard_of(wildcards):
    """The job's shard as the package functions take it: (index, count)."""
    return int(wildcards.shard), SHARDS[wildcards.split]


def synthetic_outputs(split):
    """What synthesize_<split> declares, known from the config alone before any job runs: the videos it renders
    (data.layout video), or the manifest of the frames it draws (one file, not 30,000: bench P4)."""
    if VIDEO_LAYOUT:
        return list(VIDEOS[split].values())
    return f"results/manifests/synthetic/{split}.csv"


def code(script):
    """The package files that workflow/scripts/<script>.py runs (latent_interp.sources), as the rule's ``code``
    input: editing them reruns the rule, editing any other module does not."""
    return list(sources.script_sources(SCRIPTS / f"{script}.py"))


def split_source(wildcards):
    """Where the split's triplets are (data.layout, data.split_dirs, data.val_fraction; for videos, their
    extractions)."""
    videos = list(VIDEOS[wildcards.split]) if VIDEO_LAYOUT else None
    return data.split_source(RUN.config["data"], wildcards.split, videos)


def split_frame_files(wildcards):
    """Every frame (and annotation) file of a split, not its folder: editing one frame makes only that split stale.
    For videos: the extraction of each (so a new or changed video reruns its own extraction and its split)."""
    if VIDEO_LAYOUT:
        return [video.extraction_dir(wildcards.split, name) for name in VIDEOS[wildcards.split]]
    if SYNTHETIC:
        return synthetic_outputs(wildcards.split)
    return data.split_input_files(split_source(wildcards))


def video_file(wildcards):
    """The video file of the split that rule extract_video reads, by its name."""
    return VIDEOS[wildcards.split][wildcards.video]


def vae_files(wildcards):
    """The model's weight files (a diffusers folder's config and weights, or the single file), so new weights make
    its stores stale. A hub id has no local files; a fine-tune is rule finetune's output folder."""
    return model_files(wildcards.model)


def model_files(model):
    if model in FINETUNES:  # runconfig.resolve keeps the names of vaes and finetunes apart
        return [f"results/models/{model}"]
    return weights.weight_files(MODELS[model], f"vaes.{model}")  # raises, naming the entry, before any job runs


def all_of(pattern, **wildcards):
    """``pattern`` expanded over every model and split (or the given subset)."""
    return expand(pattern, **{"model": list(MODELS), "split": SPLITS, **wildcards})


def lpips_files(wildcards):
    """The LPIPS weight files when configured (a null linear: the lpips package's), so new weights make the
    interpolation scores stale."""
    weights = RUN.config["interp"]["lpips"]
    if not weights["backbone"]:
        return []
    return [weights["backbone"], *([weights["linear"]] if weights["linear"] else [])]


def latents_of_space(wildcards):
    """The latents a model decodes and interpolates: those of its latent space (LATENT_SPACE)."""
    return f"results/latents/{LATENT_SPACE[wildcards.model]}/{wildcards.split}.zarr"


def predictors_of_space(wildcards):
    return f"results/predictors/{LATENT_SPACE[wildcards.model]}"


def clip_inputs(wildcards):
    """Rule inbetween's video file and extraction, and the model's predictors where inbetween.method is one."""
    split = CLIP_VIDEOS[wildcards.video]
    learned = RUN.config["inbetween"]["method"] in RUN.config["interp"]["predictors"]
    return {
        "video_file": VIDEOS[split][wildcards.video],
        "extraction": video.extraction_dir(split, wildcards.video),
        **({"predictors": predictors_of_space(wildcards)} if learned else {}),
    }


def stage_benchmarks(stage, model):
    """The benchmark files of a model's encode or reconstruct jobs over every split (one per shard where sharded)."""
    return [
        path
        for split in SPLITS
        for path in (
            expand(f"results/benchmarks/{stage}/{model}/{split}/shard{{shard}}.tsv", shard=range(SHARDS[split]))
            if split in SHARDS
            else [f"results/benchmarks/{stage}/{model}/{split}.tsv"]
        )
    ]


# What the compare_vaes job reads for each model (latent_interp.compare.compare_vaes).
COMPARE_INPUTS = {
    model: {
        "metrics": expand("results/metrics/{model}/{split}.csv", model=model, split=SPLITS),
        "interp": expand("results/interp/{model}/{split}.csv", model=model, split=INTERP_SPLITS),
        "latent_space": LATENT_SPACE[model],
        "geometry": f"results/geometry/{LATENT_SPACE[model]}/geometry.json",
        "channels": f"results/geometry/{LATENT_SPACE[model]}/channels.csv",
        "trajectories": f"results/geometry/{LATENT_SPACE[model]}/trajectories.csv",
        "equivariance": f"results/geometry/{LATENT_SPACE[model]}/equivariance.json",
        "equivariance_frames": f"results/geometry/{LATENT_SPACE[model]}/equivariance_frames.csv",
        "encode_benchmarks": stage_benchmarks("encode", model) if LATENT_SPACE[model] == model else [],
        "decode_benchmarks": stage_benchmarks("reconstruct", model),
    }
    for model in MODELS
}


def compare_files(wildcards):
    """Every file the compare_vaes job reads (COMPARE_INPUTS, flattened)."""
    return [
        path
        for inputs in COMPARE_INPUTS.values()
        for key, paths in inputs.items()
        if key != "latent_space"
        for path in ([paths] if isinstance(paths, str) else paths)
    ]
