"""Move latents between a latents store and the seed study's layout (<split>/<triplet>/latent{1,2,3}.npy).

    python tools/seed_latents.py export results/latents/tiny-kl/val.zarr seed_latents/
    python tools/seed_latents.py import seed_latents/val results/imported/val.zarr --split val \
        --vae "bullhug/kl-f8-anime2"
"""

import argparse

from latent_interp.seed_layout import export_latents, import_latents

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
commands = parser.add_subparsers(dest="command", required=True)
export = commands.add_parser("export", help="latents store -> <out_root>/<split>/<triplet>/latent{1,2,3}.npy")
export.add_argument("store")
export.add_argument("out_root")
imported = commands.add_parser("import", help="<split folder> of latent files -> latents store")
imported.add_argument("split_dir")
imported.add_argument("store")
imported.add_argument("--split", required=True)
imported.add_argument("--vae", required=True, help="which VAE made the files (recorded in the store)")
args = parser.parse_args()
if args.command == "export":
    print(f"exported {export_latents(args.store, args.out_root)} triplets")
else:
    print(f"imported {import_latents(args.split_dir, args.store, args.split, args.vae)} triplets")
