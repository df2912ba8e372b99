"""The run's config resolved once (latent_interp.runconfig), and no reader of the config going around it."""

import re

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

from latent_interp import runconfig, weights
from conftest import REPO


def merged(*files: str) -> dict:
    """config.yaml with each file laid over it key by key, as Snakemake merges a --configfile."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name in files:
        update_config(config, yaml.safe_load((REPO / name).read_text()))
    return config


def test_the_real_study_leaves_the_demos_vaes_out():
    config = merged("config/atd12k.yaml")
    assert config["vaes"]["tiny-kl"] is None  # what Snakemake hands over
    run = runconfig.resolve(config)
    assert list(run.vaes) == ["kl-f8-anime2"] and list(run.config["vaes"]) == ["kl-f8-anime2"]
    finetunes = ["kl-f8-anime2-finetuned", "kl-f8-anime2-equivariant", "kl-f8-anime2-antialias"]
    assert list(run.models) == ["kl-f8-anime2", *finetunes]
    assert list(run.finetunes) == finetunes  # the demo's left out
    assert run.vae_sources == {"kl-f8-anime2": "/models/kl-f8-anime2"}
    assert run.baseline == run.finetune_base("kl-f8-anime2-equivariant") == "kl-f8-anime2"
    assert run.comparison_pairs == [[name, "kl-f8-anime2"] for name in finetunes]
    assert run.latent_models == ["kl-f8-anime2", *finetunes[1:]]  # they train the encoder
    assert run.twins == {"kl-f8-anime2-finetuned": "kl-f8-anime2"}
    assert config["vaes"]["tiny-kl"] is None  # the mapping it was given is left as it was


def test_the_demo_and_the_seed_recipe():
    demo = runconfig.resolve(merged())
    assert list(demo.models) == ["tiny-kl", "tiny-taesd", "tiny-kl-finetuned", "tiny-kl-equivariant",
                                 "tiny-kl-antialias"]
    assert demo.interp_splits == ["val", "test"] and demo.probe_test == "test"
    assert demo.vae_options("tiny-kl-finetuned") == {"dtype": "auto", "key": "finetunes.tiny-kl-finetuned"}
    assert demo.twins == {"tiny-kl-finetuned": "tiny-kl"}
    assert demo.comparison_pairs == [["tiny-taesd", "tiny-kl"], ["tiny-kl-finetuned", "tiny-kl"],
                                     ["tiny-kl-equivariant", "tiny-kl"], ["tiny-kl-antialias", "tiny-kl"]]
    assert demo.config["finetunes"]["tiny-kl-antialias"]["crop"] == 96  # an override of the recipe's settings
    seed = runconfig.resolve(merged("config/finetune-seed.yaml"))
    # the entry as written, with the schema's defaults of a run (seed, checkpoint_every) filled in
    assert seed.config["finetunes"] == {"tiny-kl-finetuned": {"vae": "tiny-kl", "recipe": "seed", "epochs": 20,
                                                              "seed": 0, "checkpoint_every": 50}}
    assert seed.latent_models == ["tiny-kl", "tiny-taesd", "tiny-kl-finetuned"]  # it trains the encoder too
    assert list(runconfig.resolve({**merged(), "finetunes": None}).models) == ["tiny-kl", "tiny-taesd"]


@pytest.mark.parametrize("edit, key", [
    (lambda c: c.update(vaes={"tiny-kl": None, "tiny-taesd": None}), "config key vaes: every entry is null"),
    (lambda c: c["vaes"].update({"tiny-kl": None}), "config key finetunes.tiny-kl-finetuned.vae: 'tiny-kl'"),
    (lambda c: c["finetunes"].update({"tiny-taesd": {"vae": "tiny-kl"}}), "config key finetunes.tiny-taesd: "),
    (lambda c: c["finetunes"]["tiny-kl-equivariant"].update(recipe="eq"), "finetunes.tiny-kl-equivariant.recipe"),
    (lambda c: c["compare"].update(baseline="tiny-taesd-finetuned"), "config key compare.baseline"),
    (lambda c: c["data"].update(splits=["train", "test"]), "config key data.splits"),
    (lambda c: c["data"].update(layout="atd12k"), "config key data.source"),
    (lambda c: c["preprocess"].update(size=[961, 540]), "config key preprocess.size: the width 961 is odd"),
    (lambda c: c["preprocess"].update(size=[64, 6]),
     "config key preprocess.size: the height 6 is smaller than VAE tiny-kl's downsampling (8)"),
    (lambda c: c["data"].update(layout="video"), "config key data.synthetic.videos has no count for split(s)"),
    (lambda c: c["data"].update(layout="video", synthetic={**c["data"]["synthetic"], "videos": {"train": 1}}),
     "config key data.synthetic.videos has no count for split(s) ['val', 'test']"),
    (lambda c: c["data"].update(layout="video", source="files", video={"assign": "hash"},
                                splits=["train", "val", "holdout"]), "config key data.video.assign: hash draws"),
    (lambda c: c["data"].update(layout="video", video={"assign": "hash"}),
     "config key data.video.assign: the demo videos are drawn one folder per split"),
    # re-timed clips (the video example): a predictor the run does not train, a split it does not have
    (lambda c: (update_config(c, yaml.safe_load((REPO / "config/video-example.yaml").read_text())),
                c["interp"].update(predictors=["linear"]), c.update(inbetween={"method": "unet"})),
     "config key inbetween.method: unet is a learned predictor, and interp.predictors (['linear']) does not train it"),
    (lambda c: (update_config(c, yaml.safe_load((REPO / "config/video-example.yaml").read_text())),
                c.update(inbetween={"splits": ["test", "holdout"]})),
     "config key inbetween.splits: ['holdout'] not in data.splits"),
])
def test_mistakes_name_the_key(edit, key):
    config = merged()
    edit(config)
    with pytest.raises(ValueError, match=re.escape(key)):
        runconfig.resolve(config)


def test_the_old_single_vae_key_says_what_to_write():
    with pytest.raises(ValueError, match="vaes:\n    pretrained: /models/x"):
        runconfig.reject_old_keys({"vae": {"pretrained": "/models/x"}})


def test_the_old_finetune_block_says_what_to_write():
    """The finetune: block of before finetunes: fails naming the key, with the entry that runs the same fine-tune
    under the same model name (so the old results/models folder is the new one's)."""
    old = {"enabled": True, "vae": "tiny-kl", "recipe": "seed", "epochs": 20}
    with pytest.raises(ValueError, match=re.escape(
            "config key finetune: fine-tunes are now listed by name under finetunes")) as raised:
        runconfig.reject_old_keys({"finetune": old})
    written = str(raised.value).split("Write instead\n")[1].split("\n(")[0]
    assert written == "  finetunes:\n    tiny-kl-finetuned: {vae: tiny-kl, recipe: seed, epochs: 20}"
    config = merged()
    update_config(config, yaml.safe_load(written))  # what it says to write is a config that runs
    assert runconfig.resolve(config).finetunes["tiny-kl-finetuned"]["recipe"] == "seed"
    with pytest.raises(ValueError, match="finetunes: null"):
        runconfig.reject_old_keys({"finetune": {"enabled": False}})


def test_no_reader_goes_around_the_resolved_view():
    """The Snakefile's rules read RUN (never Snakemake's raw config), and no module reads the raw vaes mapping, where
    a --configfile may have left nulls."""
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        assert not re.search(r"(?<![\w.])config(\[|\.get\()", path.read_text()), f"{path.name} reads the raw config"
    raw_vaes = re.compile(r"""\[\s*["']vaes["']\s*\](?!\s*=[^=])|\.get\(\s*["']vaes["']""")
    for folder in ("latent_interp", "workflow", "bench", "tools"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if path.name != "runconfig.py":
                assert not raw_vaes.search(path.read_text()), f"{path.relative_to(REPO)} reads the raw vaes mapping"


@pytest.mark.parametrize("edit, key", [
    (lambda c: c["metrics"].update(protocol=["standard", "animeinter"]), "protocol"),
    (lambda c: c["metrics"].update(protocol=["eisai"]), "protocol"),  # standard is always in
    (lambda c: c["preprocess"].update(fit="stretch"), "fit"),
    (lambda c: c["preprocess"].update(size=[960, 540, 3]), "size"),
    (lambda c: c["data"].update(layout="videos"), "layout"),
    (lambda c: c["data"].update(video={"held": {"treshold": 0.01}}), "treshold"),
    (lambda c: c["data"].update(video={"cuts": {"detector": "transnet"}}), "detector"),
    (lambda c: c["data"].update(video={"stride": 0}), "stride"),
    (lambda c: c["vae"].update(batch_size="max"), "batch_size"),
    (lambda c: c["vae"].update(compile="yes"), "compile"),
    (lambda c: c["vae"].update(complie=True), "complie"),
])
def test_the_schema_refuses_what_no_stage_knows_naming_the_key(edit, key):
    config = merged()
    edit(config)
    with pytest.raises(WorkflowError) as raised:
        validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    assert key in str(raised.value)


def test_the_schema_takes_the_gpu_settings():
    config = merged()
    config["vae"].update(batch_size="auto", compile=True)
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    assert config["vae"] == {"device": "auto", "batch_size": "auto", "compile": True}


def test_the_540p_config_is_the_fields_geometry():
    run = runconfig.resolve(merged("config/atd12k.yaml", "config/atd12k-540p.yaml"))
    assert run.config["preprocess"] == {"size": [960, 540], "fit": "crop", "resample": "bilinear"}
    assert run.config["metrics"]["protocol"] == ["standard", "animeinterp", "eisai"]
    assert run.models == runconfig.resolve(merged("config/atd12k.yaml")).models  # atd12k.yaml's study otherwise


def test_the_video_example_renders_its_videos():
    run = runconfig.resolve(merged("config/video-example.yaml"))
    data = run.config["data"]
    assert data["layout"] == "video" and run.synthetic["videos"] == {"train": 3, "val": 2, "test": 3}
    assert data["shard_size"] is None and data["video"]["assign"] == "folders"
    validate(merged("config/video-example.yaml"), str(REPO / "workflow" / "schemas" / "config.schema.yaml"))


def test_a_vaes_downsampling_is_read_from_its_config_without_torch(tmp_path):
    single = tmp_path / "ae.safetensors"
    single.write_bytes(b"")  # only its name and form matter here: the architecture comes from the entry's config
    assert weights.entry_downsampling({"source": str(REPO / "models" / "tiny-vae")}) == 8
    assert weights.entry_downsampling({"source": str(REPO / "models" / "tiny-taesd")}) == 8  # encoder_block_out_...
    assert weights.entry_downsampling({"source": str(single), "config": "flux"}) == 8
    assert weights.entry_downsampling({"source": str(single), "config": "no-such-architecture"}) is None
    assert weights.entry_downsampling({"source": "bullhug/kl-f8-anime2"}) is None  # a hub id: known once loaded


def test_a_job_holds_a_gpu_where_it_runs_on_one(monkeypatch):
    """vae.device cpu never; on a cluster every other setting asks for one; here auto only with a GPU in sight."""
    monkeypatch.setattr(runconfig, "gpu_visible", lambda: False)
    assert [runconfig.holds_gpu(device, local=True) for device in ("cpu", "auto", "cuda:1")] == [False, False, True]
    assert [runconfig.holds_gpu(device, local=False) for device in ("cpu", "auto", "cuda")] == [False, True, True]
    monkeypatch.setattr(runconfig, "gpu_visible", lambda: True)
    assert runconfig.holds_gpu("auto", local=True)


def test_cuda_visible_devices_hides_the_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not runconfig.gpu_visible()


def test_triplet_folders_make_no_clips_whatever_inbetween_says():
    """inbetween applies to videos: a folders config without a test split is not refused for the default
    inbetween.splits."""
    config = merged()
    config["data"]["splits"] = ["train", "val"]
    config["data"]["synthetic"]["triplets"].pop("test")
    assert runconfig.resolve(config).config["inbetween"]["splits"] == ["test"]
