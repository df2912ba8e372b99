"""Rule extract_video: one video file -> results/videos/{split}/{video}/ (triplets, manifest.csv, video.json)."""
import sys

sys.stderr = sys.stdout = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
from latent_interp.atomic import staged  # noqa: E402
from latent_interp.video import extract_video  # noqa: E402

sm = snakemake  # noqa: F821
with staged(sm.output) as out:  # written under a temporary name, renamed when whole
    record = extract_video(sm.input.video, out[0], sm.params.settings, sm.params.on_error)
print(f"extract {sm.input.video}: {record['counts']}, skipped: {record['skipped'] or 'no'}")
