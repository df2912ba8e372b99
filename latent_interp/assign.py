"""Splits carved by a hash of a name: the val triplets of ATD-12K's train_10k (data.val_fraction), and the split of
each video under data.video.assign: hash. A name's place depends on the name alone, so adding triplets or videos
never moves an existing one to another split. Used by data and video alike, so it sits below both."""

import hashlib


def hash_fraction(name: str) -> float:
    """A name's fixed place in [0, 1)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / 2**64
