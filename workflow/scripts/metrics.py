"""Rule metrics: frames store + recon store -> per-image metrics table and its spec."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.metrics import compute_split_metrics  # noqa: E402
from latent_interp.atomic import staged  # noqa: E402

sm = snakemake  # noqa: F821
with staged(sm.output) as out:  # written under temporary names, renamed when whole
    compute_split_metrics(sm.input.frames, sm.input.recon, out.table, out.spec, sm.wildcards.model,
                          sm.wildcards.split, sm.params.shard, workers=sm.threads, device=sm.params.device)
