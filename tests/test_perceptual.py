import sys

import numpy as np
import pytest
import torch

from latent_interp import perceptual


def _line_image(height: int, width: int, column: int, thickness: int = 2) -> np.ndarray:
    """White with a dark vertical stroke over the whole height: a cartoon line."""
    image = np.full((height, width, 3), 255, np.uint8)
    image[:, column:column + thickness] = 20
    return image


def test_chamfer_of_an_image_with_itself_is_zero():
    image = _line_image(48, 64, 20)
    image[10:30, 5:50] = np.array([200, 40, 40], np.uint8)  # a filled shape with its own edges
    assert perceptual.chamfer_distance(image, image) == 0.0


def test_chamfer_of_a_line_shifted_by_one_pixel():
    height, width = 48, 64
    truth, shifted = _line_image(height, width, 20), _line_image(height, width, 21)
    truth_lines, shifted_lines = perceptual.line_map(truth), perceptual.line_map(shifted)
    # The DoG marks a band of whole columns around the stroke, and the shifted band is the same one pixel over:
    columns = np.flatnonzero(truth_lines.all(axis=0))
    assert len(columns) >= 2 and (truth_lines.any(axis=0) == truth_lines.all(axis=0)).all()
    np.testing.assert_array_equal(np.roll(truth_lines, 1, axis=1), shifted_lines)
    # so one column of each band is one pixel from the other band: (H / (H W) + H / (H W)) / 2 / diagonal.
    expected = 1 / (width * np.hypot(height, width))
    assert perceptual.chamfer_distance(truth, shifted) == pytest.approx(expected, rel=1e-12)


def test_chamfer_against_an_image_without_lines_uses_the_diagonal():
    blank, lined = np.full((40, 40, 3), 128, np.uint8), _line_image(40, 40, 10)
    share = perceptual.line_map(lined).mean()
    # Every predicted line pixel is a diagonal away from the (absent) true lines: mean(pred_lines) * diag / 2 / diag.
    assert perceptual.chamfer_distance(blank, lined) == pytest.approx(share / 2)
    assert perceptual.chamfer_distance(blank, blank) == 0.0


def write_lpips_weights(folder, seed: int = 0):
    """Random weights in the real files' key layouts: torchvision's AlexNet (with its classifier) and lpips'
    alex.pth."""
    torch.manual_seed(seed)
    model = perceptual.LPIPS()
    backbone = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}
    backbone["classifier.1.weight"] = torch.zeros(4096, 9216)[:2, :2]  # ignored, as in the real file
    linear = {k: v.abs() for k, v in model.state_dict().items() if k.startswith("lin")}
    torch.save(backbone, folder / "alexnet-owt-7be5be79.pth")
    torch.save(linear, folder / "alex.pth")
    return folder / "alexnet-owt-7be5be79.pth", folder / "alex.pth"


def test_lpips_loads_the_real_layouts_and_measures_a_distance(tmp_path):
    backbone, linear = write_lpips_weights(tmp_path)
    model = perceptual.load_lpips(backbone, linear)
    assert "lin0.model.1.weight" in model.state_dict() and "features.10.weight" in model.state_dict()
    generator = torch.Generator().manual_seed(1)
    first = torch.rand(2, 3, 64, 64, generator=generator) * 2 - 1
    second = torch.rand(2, 3, 64, 64, generator=generator) * 2 - 1
    with torch.no_grad():
        same, different = model(first, first), model(first, second)
    assert same.shape == (2,) and torch.allclose(same, torch.zeros(2))
    assert (different > 0).all() and torch.allclose(different, model(second, first), rtol=1e-5)


def test_lpips_names_a_file_of_the_wrong_layout(tmp_path):
    backbone, linear = write_lpips_weights(tmp_path)
    torch.save({"lin0.weight": torch.zeros(1)}, linear)
    with pytest.raises(ValueError, match="alex.pth"):
        perceptual.load_lpips(backbone, linear)
    with pytest.raises(FileNotFoundError, match="interp.lpips"):
        perceptual.load_lpips(tmp_path / "missing.pth", linear)


def _lpips_package(monkeypatch, features: torch.nn.Sequential):
    """The ``lpips`` package, whose LPIPS builds its trunk from ``torchvision.models.alexnet``. torchvision's PyPI build
    does not import beside the CPU torch (perceptual's docstring), so where it does not, a stand-in module gives the
    package a copy of ``features`` (torchvision's AlexNet layout) as that trunk; with torchvision, the real class with
    ``features``' weights loaded."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # not installed, or installed and not importable (RuntimeError: torchvision::nms)
        import copy
        import types

        class _AlexNet(torch.nn.Module):
            def __init__(self, *args, **kwargs):
                super().__init__()
                self.features = copy.deepcopy(features)

        models = types.SimpleNamespace(alexnet=_AlexNet)
        monkeypatch.setitem(sys.modules, "torchvision", types.SimpleNamespace(models=models))
        monkeypatch.setitem(sys.modules, "torchvision.models", models)
    for name in [m for m in sys.modules if m == "lpips" or m.startswith("lpips.")]:
        monkeypatch.delitem(sys.modules, name)
    import lpips

    reference = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
    trunk = [layer for block in (reference.net.slice1, reference.net.slice2, reference.net.slice3,
                                 reference.net.slice4, reference.net.slice5) for layer in block]
    for ours, theirs in zip(features, trunk):  # the same trunk weights in both
        if isinstance(ours, torch.nn.Conv2d):
            theirs.load_state_dict(ours.state_dict())
    return reference


def test_lpips_equals_the_lpips_package_given_the_same_trunk(tmp_path, monkeypatch):
    backbone, _ = write_lpips_weights(tmp_path)  # a random trunk
    linear = perceptual.packaged_linear_weights()
    assert linear is not None and linear.parts[-3:] == ("weights", "v0.1", "alex.pth")
    ours = perceptual.load_lpips(backbone)  # linear null: the package's shipped v0.1 weights
    reference = _lpips_package(monkeypatch, ours.features)
    generator = torch.Generator().manual_seed(2)
    first, second = (torch.rand(3, 3, 64, 80, generator=generator) for _ in range(2))
    with torch.no_grad():
        for a, b in ((first * 2 - 1, second * 2 - 1), (first, second)):  # standard's [-1, 1], EISAI's [0, 1]
            expected = reference(a, b).flatten()
            assert expected.abs().min() > 1e-4
            torch.testing.assert_close(ours(a, b), expected, rtol=0, atol=1e-5)
