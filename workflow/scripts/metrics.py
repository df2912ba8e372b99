"""Rule metrics: frames store + recon store -> per-image metrics table and its spec."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.metrics import compute_split_metrics  # noqa: E402

sm = snakemake  # noqa: F821
compute_split_metrics(sm.input.frames, sm.input.recon, sm.output.table, sm.output.spec, sm.wildcards.model,
                      sm.wildcards.split)
