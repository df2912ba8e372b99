"""Rule inbetween: a video and its extraction + a model -> results/inbetween/{model}/{video}/."""
from latent_interp.rule import run_stage

run_stage(snakemake, "latent_interp.inbetween:retime_video")  # noqa: F821 (snakemake is injected)
