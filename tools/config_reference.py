"""Write docs/configuration.md from the config schema (workflow/schemas/config.schema.yaml).

    python tools/config_reference.py            # write the page
    python tools/config_reference.py --check    # exit 1 if the page is stale
"""

import argparse
import sys
from pathlib import Path

from latent_interp import schema

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--check", action="store_true", help="compare with the page instead of writing it")
arguments = parser.parse_args()
text = schema.reference()
if arguments.check:
    if not PAGE.exists() or PAGE.read_text() != text:
        sys.exit(f"{PAGE} is stale: run python tools/config_reference.py")
    print(f"{PAGE} is up to date")
else:
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
