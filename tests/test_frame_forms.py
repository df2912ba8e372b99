"""Frames as real folders hold them: a tree with one triplet per image form, each ingested to the pixels a viewer
shows (against a reference decoding written here, not the package's) or listed with its reason, under skip; under
fail the first bad file stops the ingest, named."""

import io

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageCms

from latent_interp import images, schema, store
from conftest import ingest_folder

SIZE = 32  # every readable frame is drawn at the ingest size, so no resize stands between it and its reference


def _rgb(seed: int) -> np.ndarray:
    """A frame with an asymmetric corner, so a rotation or flip shows."""
    frame = np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    frame[:6, :6] = (255, 0, 0)
    return frame


def _grey16(path, seed):
    ramp = np.linspace(0, 65535, SIZE * SIZE).reshape(SIZE, SIZE).astype(np.uint16)
    ramp = np.roll(ramp, seed * 7, axis=1)
    Image.fromarray(ramp).save(path.with_suffix(".png"))  # Pillow writes mode I;16 as a 16-bit grey PNG
    return np.repeat((ramp // 256).astype(np.uint8)[..., None], 3, axis=-1)


def _rgb16(path, seed):
    samples = np.random.default_rng(seed).integers(0, 65536, (SIZE, SIZE, 3)).astype(np.uint16)
    assert cv2.imwrite(str(path.with_suffix(".png")), samples[..., ::-1])  # OpenCV writes 16-bit colour PNGs; BGR
    return (samples // 256).astype(np.uint8)


def _palette(path, seed, transparent=False):
    indices = np.random.default_rng(seed).integers(0, 4, (SIZE, SIZE)).astype(np.uint8)
    colours = np.array([[250, 10, 10], [10, 250, 10], [10, 10, 250], [200, 200, 40]], np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette(colours.ravel().tolist())
    if transparent:
        image.save(path.with_suffix(".png"), transparency=2)  # palette entry 2 is transparent
        colours = colours.copy()
        colours[2] = 0  # composited on black
    else:
        image.save(path.with_suffix(".png"))
    return colours[indices]


def _grey_alpha(path, seed):
    rng = np.random.default_rng(seed)
    grey, alpha = rng.integers(0, 256, (2, SIZE, SIZE), dtype=np.uint8)
    Image.fromarray(np.stack([grey, alpha], -1), "LA").save(path.with_suffix(".png"))
    shown = np.rint(grey.astype(np.float64) * alpha / 255).astype(np.uint8)
    return np.repeat(shown[..., None], 3, axis=-1)


def _rgba(path, seed):
    rgba = np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(path.with_suffix(".png"))
    return np.rint(rgba[..., :3].astype(np.float64) * rgba[..., 3:] / 255).astype(np.uint8)


def _grey_jpeg(path, seed):
    Image.fromarray(_rgb(seed)).convert("L").save(path.with_suffix(".jpg"), quality=95)
    decoded = cv2.imread(str(path.with_suffix(".jpg")), cv2.IMREAD_GRAYSCALE)  # another decoder's reading
    return np.repeat(decoded[..., None], 3, axis=-1)


def _exif_rotated_jpeg(path, seed):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    Image.fromarray(_rgb(seed)).save(path.with_suffix(".jpg"), quality=95, exif=exif)
    # OpenCV's imread honours the orientation too; IMREAD_IGNORE_ORIENTATION would give the stored pixels
    return cv2.imread(str(path.with_suffix(".jpg")), cv2.IMREAD_COLOR)[..., ::-1]


def _jpeg_named_png(path, seed):
    Image.fromarray(_rgb(seed)).save(path.with_suffix(".png"), format="JPEG", quality=95)
    return cv2.imread(str(path.with_suffix(".png")), cv2.IMREAD_COLOR)[..., ::-1]


def _oversized(path, seed):
    # 1-bit, so 182 million pixels are 23 MB in memory and a small file: above twice Pillow's own limit, where Pillow
    # would raise DecompressionBombError itself
    Image.new("1", (14_000, 13_000)).save(path.with_suffix(".png"))
    return "14000 x 13000 = 182,000,000 pixels, above the limit of 89,478,485 (config key data.max_pixels)"


def _zero_bytes(path, seed):
    path.with_suffix(".png").write_bytes(b"")
    return "cannot identify image file"


def _text_named_png(path, seed):
    path.with_suffix(".png").write_text("frame one, in words\n")
    return "cannot identify image file"


def _truncated_png(path, seed):
    buffer = io.BytesIO()
    Image.fromarray(_rgb(seed)).save(buffer, format="PNG")
    path.with_suffix(".png").write_bytes(buffer.getvalue()[:200])
    return "unreadable image"


def _float_tiff(path, seed):
    Image.fromarray(np.random.default_rng(seed).random((SIZE, SIZE)).astype(np.float32)).save(
        path.with_suffix(".png"), format="TIFF")
    return "mode F (32-bit float samples)"


# form -> (writer, the conversions its frames record); a writer returns the pixels shown, or the reason refused
FORMS = {
    "grey16": (_grey16, {"16-bit", "grey"}),
    "rgb16": (_rgb16, {"16-bit"}),
    "palette": (lambda p, s: _palette(p, s), {"palette"}),
    "palette_transparent": (lambda p, s: _palette(p, s, transparent=True), {"palette", "alpha"}),
    "grey_alpha": (_grey_alpha, {"alpha"}),
    "rgba": (_rgba, {"alpha"}),
    "grey_jpeg": (_grey_jpeg, {"grey"}),
    "exif_rotated": (_exif_rotated_jpeg, {"orientation"}),
    "jpeg_named_png": (_jpeg_named_png, {"content"}),
    "oversized": (_oversized, None),
    "zero_bytes": (_zero_bytes, None),
    "text_named_png": (_text_named_png, None),
    "truncated": (_truncated_png, None),
    "float_tiff": (_float_tiff, None),
}


@pytest.fixture(scope="module")
def form_tree(tmp_path_factory):
    """<root>/val/<form>/frame{1,2,3}: the form's three frames (the oversized one: frame 2 only, beside two
    good ones, as a real triplet would hold it); and what each should become."""
    root = tmp_path_factory.mktemp("forms")
    expected = {}
    for index, (form, (writer, _)) in enumerate(FORMS.items()):
        folder = root / "val" / f"Disney_{form}"
        folder.mkdir(parents=True)
        shown = []
        for k in (1, 2, 3):
            if form == "oversized" and k != 2:
                Image.fromarray(_rgb(k)).save(folder / f"frame{k}.png")
                continue
            shown.append(writer(folder / f"frame{k}", 10 * index + k))
        expected[f"Disney_{form}"] = shown
    return root, expected


def test_every_form_ingests_to_what_a_viewer_shows_or_is_listed_with_its_reason(form_tree, tmp_path):
    root, expected = form_tree
    counts = ingest_folder(root / "val", tmp_path / "val.zarr", "val", size=SIZE, threads=2)
    readable = [name for name, (_, kinds) in zip(expected, FORMS.values()) if kinds is not None]
    assert counts == {"found": len(FORMS), "ingested": len(readable), "skipped": len(FORMS) - len(readable),
                      "stray_files": 0}
    group = store.open_store(tmp_path / "val.zarr", "frames")
    names = store.names(group)
    assert names == sorted(readable)
    for row, name in enumerate(names):
        shown = np.stack(expected[name])
        tolerance = 1 if "jpeg" in name or "exif" in name else 0  # two JPEG decoders may round an IDCT apart
        difference = np.abs(group[store.FRAMES][row].astype(int) - shown).max()
        assert difference <= tolerance, f"{name}: off by {difference}"
    skipped = pd.read_csv(tmp_path / "val.skipped.csv")
    assert len(skipped) == counts["skipped"] and (skipped["what"] == "triplet").all()
    for _, row in skipped.iterrows():
        reason = expected[row["triplet"]][0]
        assert reason in row["reason"], (row["triplet"], row["reason"])
        assert row["path"].endswith("frame1.png") or row["triplet"] == "Disney_oversized"
    # the store says how many frames needed a conversion, of which kind, and which frames
    conversions = group.attrs["conversions"]
    wanted: dict[str, int] = {}
    for name, (_, kinds) in zip(expected, FORMS.values()):
        for kind in kinds or ():
            wanted[kind] = wanted.get(kind, 0) + 3
    assert {kind: entry["frames"] for kind, entry in conversions["by_kind"].items()} == wanted
    assert conversions["frames"] == 3 * len(readable)
    assert conversions["by_kind"]["orientation"]["first"] == [f"Disney_exif_rotated/frame{k}" for k in (1, 2, 3)]
    assert conversions["by_kind"]["alpha"]["what"] == images.CONVERSIONS["alpha"]
    assert group.attrs["preprocess"]["max_pixels"] == images.DEFAULT_MAX_PIXELS


def test_under_fail_the_first_bad_file_stops_the_ingest_named(form_tree, tmp_path):
    root, _ = form_tree
    first_bad = root / "val" / "Disney_float_tiff" / "frame1.png"  # the first faulty triplet by name
    with pytest.raises(ValueError, match=f"ingest val: {first_bad}: mode F .*config key data.on_error is 'fail'"):
        ingest_folder(root / "val", tmp_path / "val.zarr", "val", size=SIZE, on_error="fail")


def test_the_pixel_limit_is_a_config_key_whose_default_is_pillows(tmp_path):
    assert schema.section("data.max_pixels")["default"] == images.DEFAULT_MAX_PIXELS == 89_478_485
    path = tmp_path / "frame1.png"
    Image.fromarray(_rgb(0)).save(path)
    with pytest.raises(images.UnreadableFrame, match=r"32 x 32 = 1,024 pixels, above the limit of 1,000 \(config "
                                                     r"key data.max_pixels\)"):
        images.read_frame(path, max_pixels=1000)
    assert images.read_frame(path, max_pixels=None)[1] == []


def test_an_icc_profile_other_than_srgb_is_converted_and_srgb_is_left_alone(tmp_path):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    # the same colours under another name: converted (to within rounding), and the conversion recorded
    renamed = srgb.replace("sRGB".encode("utf-16-be"), "xRGB".encode("utf-16-be"))
    frame = _rgb(1)
    for profile, kinds in ((srgb, []), (renamed, ["icc"])):
        Image.fromarray(frame).save(tmp_path / "frame1.png", icc_profile=profile)
        image, conversions = images.read_frame(tmp_path / "frame1.png")
        assert conversions == kinds
        assert np.abs(np.asarray(image).astype(int) - frame).max() <= 1


@pytest.mark.parametrize("mode", ["CMYK", "YCbCr", "1", "LAB"])
def test_other_colour_modes_come_out_rgb_by_their_own_path(mode, tmp_path):
    image = Image.fromarray(_rgb(2)).convert(mode) if mode != "LAB" else Image.new("LAB", (SIZE, SIZE), (128,) * 3)
    conversions = []
    pixels = images.to_rgb(image, conversions)
    assert pixels.shape == (SIZE, SIZE, 3) and pixels.dtype == np.uint8 and conversions
    if mode == "LAB":  # 8-bit Lab's 128s: L* 50, a* = b* = 0, sRGB's mid grey (about 119)
        assert np.abs(pixels.astype(int) - 119).max() <= 2
    if mode == "YCbCr":
        assert np.abs(pixels.astype(int) - _rgb(2)).max() <= 3

