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
