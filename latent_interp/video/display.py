"""A decoded frame turned the way FFmpeg's player shows it: the stream's display matrix gives a rotation and flips.

The decision follows FFmpeg's own (fftools' autorotate): the angle, counter-clockwise, is read from the matrix
(``VideoFrame.rotation``) and rounded to quarter turns; at a quarter turn the sign of the matrix's second-row first
entry tells a plain turn from a transpose (a turn with a mirror), at a half turn the diagonal's signs say which
axes are mirrored, and at no turn a negative second diagonal entry is an upside-down picture.
"""

from __future__ import annotations

import numpy as np

# How each operation acts on an image [H, W, ...] as numpy indexes it (row 0 at the top).
OPERATIONS = {
    "rotate_ccw": lambda image: np.rot90(image, 1),
    "rotate_cw": lambda image: np.rot90(image, -1),
    "transpose": lambda image: np.swapaxes(image, 0, 1),  # about the main diagonal: a turn and a mirror
    "antitranspose": lambda image: np.rot90(np.swapaxes(image, 0, 1), 2),  # about the other diagonal
    "hflip": np.fliplr,
    "vflip": np.flipud,
}
SWAPS_SIDES = {"rotate_ccw", "rotate_cw", "transpose", "antitranspose"}
# a frame without a display matrix: the identity, in 16.16 fixed point (the last column in 2.30)
IDENTITY = np.array([1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30], dtype=np.int32)


def display_matrix(frame) -> np.ndarray:
    """The frame's display matrix (nine int32 entries, row by row), the identity where it has none."""
    from av.sidedata.sidedata import Type

    for item in frame.side_data:
        if item.type == Type.DISPLAYMATRIX:
            return np.frombuffer(bytes(item), dtype=np.int32)
    return IDENTITY


def display_operations(frame) -> tuple[str, ...]:
    """The ``OPERATIONS``, in order, that turn ``frame`` as decoded into the picture as displayed."""
    matrix = display_matrix(frame)
    quarter_turns = round(-float(frame.rotation) / 90) % 4  # clockwise, as fftools counts it
    if quarter_turns == 1:
        return ("transpose",) if matrix[3] > 0 else ("rotate_cw",)
    if quarter_turns == 2:
        return tuple(name for name, mirrored in (("hflip", matrix[0] < 0), ("vflip", matrix[4] < 0)) if mirrored)
    if quarter_turns == 3:
        return ("antitranspose",) if matrix[3] < 0 else ("rotate_ccw",)
    return ("vflip",) if matrix[4] < 0 else ()


def displayed(image: np.ndarray, operations: tuple[str, ...]) -> np.ndarray:
    """``image`` after ``operations`` (``display_operations``), contiguous for OpenCV."""
    for name in operations:
        image = OPERATIONS[name](image)
    return np.ascontiguousarray(image) if operations else image


def displayed_size(width: int, height: int, operations: tuple[str, ...]) -> tuple[int, int]:
    """(width, height) as displayed."""
    return (height, width) if sum(name in SWAPS_SIDES for name in operations) % 2 else (width, height)
