"""One frame file read as an image viewer displays it, as 8-bit RGB, or refused with the reason.

Every form Pillow opens goes through a path of its own (docs/data.md lists them):
    RGB                     as it is
    L, 1                    grey (bilevel: black and white) repeated in the three channels
    P                       the palette's colours; a palette with a transparent entry is composited on black
    RGBA, LA, PA            composited on black: colour x alpha / 255, as on the black of preprocess.fit pad's bars
    I;16 (16-bit grey)      the high byte of each sample (value // 256), as Pillow itself reads 16-bit colour PNGs
    16-bit RGB, RGBA        Pillow keeps the high byte; then as RGB, RGBA
    CMYK, YCbCr, HSV, RGBX  Pillow's conversion to RGB
    LAB                     through littleCMS from CIE Lab to sRGB
    I, F (32-bit)           refused: 32-bit integer or float samples have no range a viewer agrees on
Metadata a viewer honours: the EXIF orientation is applied (ImageOps.exif_transpose), an embedded ICC profile other
than sRGB is converted to sRGB (littleCMS, perceptual intent); an animated file gives its first frame. A file larger
than the pixel limit (config key data.max_pixels) is refused from its header, before it is decoded. Each frame's
conversions are named (``CONVERSIONS`` gives the names), so the frames store can say how many needed which.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps

# What a frame needed to become 8-bit RGB, by the names the frames store's conversions attribute counts.
CONVERSIONS = {
    "grey": "grey repeated in three channels",
    "bilevel": "bilevel (1-bit) to black and white",
    "palette": "palette colours",
    "alpha": "alpha composited on black",
    "16-bit": "16-bit samples to 8 bits (high byte)",
    "colour space": "converted to RGB by Pillow (CMYK, YCbCr, HSV or RGBX)",
    "lab": "CIE Lab to sRGB",
    "orientation": "EXIF orientation applied",
    "icc": "ICC profile converted to sRGB",
    "animated": "first frame of an animated file",
    "content": "read by its content, whose format its extension does not name",
}
ALPHA_MODES = ("RGBA", "LA", "PA")
SIXTEEN_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N")
BY_PILLOW = ("CMYK", "YCbCr", "HSV", "RGBX")
REFUSED_MODES = {"I": "32-bit integer samples", "F": "32-bit float samples"}
# The format each frame extension names; MPO is the JPEG of cameras that store a second picture after the first.
EXTENSION_FORMATS = {".jpg": ("JPEG", "MPO"), ".jpeg": ("JPEG", "MPO"), ".png": ("PNG",)}
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS  # Pillow's own limit, the default of data.max_pixels


class UnreadableFrame(Exception):
    """A frame file that cannot be read as a viewer shows it; the message is the reason."""


def _png_bit_depth(path: Path) -> int:
    """The bit depth a PNG's header gives (its IHDR chunk opens every PNG, the depth at byte 24): Pillow reads 16-bit
    colour as 8 bits without saying so."""
    with open(path, "rb") as file:
        header = file.read(25)
    return header[24] if len(header) == 25 and header[12:16] == b"IHDR" else 8


def _composited_on_black(image: Image.Image) -> np.ndarray:
    rgba = np.asarray(image.convert("RGBA"), dtype=np.uint16)
    # rounded, not truncated: an alpha of 255 keeps every colour as it is
    return ((rgba[..., :3] * rgba[..., 3:] + 127) // 255).astype(np.uint8)


def _icc_description(profile_bytes: bytes) -> str:
    return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile_bytes))).strip()


def _to_srgb(image: Image.Image, conversions: list[str]) -> Image.Image:
    """``image`` converted from its embedded ICC profile to sRGB, unless the profile is sRGB itself."""
    profile = image.info.get("icc_profile")
    if not profile:
        return image
    description = _icc_description(profile)
    if "srgb" in description.lower():
        return image
    if image.mode not in ("RGB", "RGBA", "L", "CMYK", "LAB"):
        image = image.convert("RGBA" if image.mode in ALPHA_MODES else "RGB")
    output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
    try:
        converted = ImageCms.profileToProfile(image, ImageCms.ImageCmsProfile(io.BytesIO(profile)),
                                              ImageCms.createProfile("sRGB"), outputMode=output_mode)
    except (ImageCms.PyCMSError, ValueError, OSError) as error:
        raise UnreadableFrame(f"its ICC profile ({description}) cannot be applied ({error})") from error
    conversions.append("icc")
    return converted


def to_rgb(image: Image.Image, conversions: list[str]) -> np.ndarray:
    """uint8 [H, W, 3] of an opened image, by its mode's path (module docstring); appends what it did to
    ``conversions``; UnreadableFrame for a mode with no such path."""
    mode = image.mode
    if mode in REFUSED_MODES:
        raise UnreadableFrame(f"mode {mode} ({REFUSED_MODES[mode]}): no range to scale to 8 bits from")
    if mode in SIXTEEN_BIT_GREY:
        conversions += ["16-bit", "grey"]
        samples = np.asarray(image).astype(np.uint16)
        return np.repeat((samples >> 8).astype(np.uint8)[..., None], 3, axis=-1)
    image = _to_srgb(image, conversions)
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8)
    if mode == "P":
        conversions.append("palette")
        if "transparency" not in image.info:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
        conversions.append("alpha")
        return _composited_on_black(image)
    if mode in ALPHA_MODES:
        conversions.append("alpha")
        return _composited_on_black(image)
    if mode in ("L", "1"):
        conversions.append("grey" if mode == "L" else "bilevel")
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    if mode == "LAB":
        conversions.append("lab")
        transform = ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"),
                                            "LAB", "RGB")
        return np.asarray(ImageCms.applyTransform(image, transform), dtype=np.uint8)
    if mode in BY_PILLOW:
        conversions.append("colour space")
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    raise UnreadableFrame(f"mode {mode}: no conversion to RGB")


def read_frame(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[Image.Image, list[str]]:
    """(the frame at ``path`` as an 8-bit RGB image, displayed as a viewer shows it, the names of the conversions it
    needed); UnreadableFrame for anything that stops that, the file's own fault: a file Pillow cannot identify or
    decode, a size above ``max_pixels`` (None: no limit), a mode with no path to RGB."""
    path = Path(path)
    # The limit is data.max_pixels, applied below from the header: Pillow's own check would raise at twice its
    # default whatever the key allows, and at its default only warn.
    Image.MAX_IMAGE_PIXELS = None
    conversions: list[str] = []
    try:
        with Image.open(path) as image:
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise UnreadableFrame(f"{width} x {height} = {width * height:,} pixels, above the limit of "
                                      f"{max_pixels:,} (config key data.max_pixels)")
            if image.format not in EXTENSION_FORMATS.get(path.suffix.lower(), (image.format,)):
                conversions.append("content")
            if getattr(image, "n_frames", 1) > 1:
                conversions.append("animated")  # Image.open is at the first frame
            if image.format == "PNG" and image.mode in ("RGB", "RGBA", "LA") and _png_bit_depth(path) == 16:
                conversions.append("16-bit")  # Pillow has kept each sample's high byte
            orientation = image.getexif().get(0x0112, 1)
            if orientation not in (None, 1):
                image = ImageOps.exif_transpose(image)
                conversions.append("orientation")
            pixels = to_rgb(image, conversions)
    except UnreadableFrame:
        raise
    except Exception as error:  # noqa: BLE001 (whatever a decoder raises on a bad file is that file's fault)
        raise UnreadableFrame(f"unreadable image ({type(error).__name__}: {error})") from error
    return Image.fromarray(pixels, "RGB"), conversions
