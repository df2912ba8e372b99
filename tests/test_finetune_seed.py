"""The seed study's fine-tune reproduced and caught: `snakemake --cores 8 --configfile config/finetune-seed.yaml`,
docs/study.md's command with the repository's file as it is, on the tiny demo, to the report.

The tiny demo's train split is grown to the demo's 32 triplets, so that the seed recipe's epochs run as many steps
as on the demo (12 an epoch); its frames stay at 32 px, which keeps the run under a minute of training."""

import json

import pandas as pd
import pytest

from conftest import BASE, FINETUNED, REPO, new_workdir, snakemake, tiny_config

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    config = tiny_config()
    config["data"]["synthetic"]["triplets"]["train"] = 32
    del config["vaes"]["tiny-taesd"]  # one VAE is enough to watch its fine-tune collapse
    config["embed"]["methods"], config["interp"]["predictors"] = ["pca"], ["linear"]  # the fine-tune is the point
    workdir = new_workdir(tmp_path_factory, "seed-recipe", config)
    # The workdir's config.yaml is the run's base (the Snakefile's configfile); that page's file goes over it.
    snakemake(workdir, configfiles=[REPO / "config" / "finetune-seed.yaml"])
    return workdir


@pytest.mark.readme("snakemake --cores 8 --configfile config/finetune-seed.yaml")
def test_the_seed_recipe_collapses_and_is_flagged_in_the_json_and_the_report(seed_run):
    results = seed_run / "results"
    record = json.loads((results / "models" / FINETUNED / "finetune.json").read_text())
    assert record["recipe"] == "seed"
    check = json.loads((results / "metrics" / FINETUNED / "collapse.json").read_text())
    assert check["collapsed"] and (check["psnr_gain_db"] < 1.0 or check["variance_ratio"] < 0.1)
    pretrained = json.loads((results / "metrics" / BASE / "collapse.json").read_text())
    assert not pretrained["collapsed"]  # the check flags the collapse, not every model
    epochs = pd.read_csv(results / "models" / FINETUNED / "training_epochs.csv")
    assert not epochs["val_collapsed"].iloc[0] and epochs["val_collapsed"].iloc[-1]
    assert epochs["val_psnr"].iloc[-1] < epochs["val_psnr"].iloc[0] - 3  # it lost what it knew of the frames
    page = (results / "report.html").read_text()
    assert f"The {FINETUNED} model has collapsed" in page
    assert page.count("COLLAPSED") >= 2  # its card under "What was run" and the Model health table
