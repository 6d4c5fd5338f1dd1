"""Tests for shortcut_mini.data (CPU only, never touches the network)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from shortcut_mini.data import (
    DATASETS,
    TOY2D,
    ArrayDataset,
    DatasetError,
    DatasetUnavailableError,
    default_data_root,
    load_dataset,
    torchvision_sets,
    toy2d,
)

TOYS = ["checkerboard", "moons", "8gaussians", "spirals"]


@pytest.mark.parametrize("name", TOYS)
def test_toy2d_shape_scale(name):
    x = toy2d(name, 5000, seed=0)
    assert x.shape == (5000, 2) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    assert x.mean(0).abs().max() < 0.2
    assert ((x.std(0) > 0.7) & (x.std(0) < 1.4)).all()


@pytest.mark.parametrize("name", TOYS)
def test_toy2d_deterministic(name):
    torch.manual_seed(123)
    a = toy2d(name, 256, seed=7)
    torch.manual_seed(456)  # the global RNG must not matter
    b = toy2d(name, 256, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, toy2d(name, 256, seed=8))


def test_toy2d_unknown_name():
    with pytest.raises(ValueError, match="name") as info:
        toy2d("donut", 10, 0)
    for valid in TOYS:
        assert valid in str(info.value)


def test_load_toy_dataset():
    ds = load_dataset("moons", n=300, seed=1)
    assert ds.kind == "points" and len(ds) == 300 and ds.shape == (2,) and ds.num_classes == 0
    x, y = ds.batch(torch.arange(10), "cpu")
    assert torch.equal(x, ds.x[:10]) and y.dtype == torch.long and (y == 0).all()
    test = load_dataset("moons", n=300, seed=1, train=False)
    assert not torch.equal(ds.x, test.x)
    with pytest.raises(ValueError):
        load_dataset("moons", image_size=8)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="name") as info:
        load_dataset("imagenet")
    assert "fashion_mnist" in str(info.value) and "digits" in str(info.value)


def test_datasets_table_lists_every_name():
    for name in [*TOYS, "digits", "mnist", "fashion_mnist", "cifar10", "celeba64"]:
        assert DATASETS.get(name)
    assert any(k.startswith("image_folder:") for k in DATASETS)
    assert set(TOY2D) <= set(DATASETS)


def test_digits_split_and_range():
    train = load_dataset("digits")
    test = load_dataset("digits", train=False)
    assert len(train) == 1437 and len(test) == 360
    assert train.x.dtype == torch.uint8 and train.shape == (1, 8, 8)
    assert train.num_classes == 10 and train.kind == "image"
    assert set(train.y.unique().tolist()) == set(range(10))
    assert int(train.x.max()) == 255 and int(train.x.min()) == 0
    x, y = train.batch(torch.arange(64), "cpu")
    assert x.dtype == torch.float32 and x.shape == (64, 1, 8, 8)
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1
    assert y.dtype == torch.long
    # The split is fixed (independent of seed) and disjoint: no test image is in train.
    assert torch.equal(load_dataset("digits", seed=5).x, train.x)
    train_rows = {bytes(r) for r in train.x.flatten(1).numpy()}
    overlap = sum(bytes(r) in train_rows for r in test.x.flatten(1).numpy())
    assert overlap < 5  # a few duplicated digit images exist in the raw data


def test_digits_resize_and_subset():
    ds = load_dataset("digits", image_size=16, n=100, seed=3)
    assert ds.shape == (1, 16, 16) and len(ds) == 100 and ds.x.dtype == torch.uint8
    again = load_dataset("digits", image_size=16, n=100, seed=3)
    other = load_dataset("digits", image_size=16, n=100, seed=4)
    assert torch.equal(ds.x, again.x) and torch.equal(ds.y, again.y)
    assert not torch.equal(ds.x, other.x)
    with pytest.raises(ValueError):
        load_dataset("digits", n=10_000)


def test_array_dataset_validation():
    with pytest.raises(ValueError):
        ArrayDataset(torch.zeros(3, 1, 4, 4), torch.zeros(3), 0, "image", "bad")
    with pytest.raises(ValueError):
        ArrayDataset(torch.zeros(3, 2), torch.zeros(3), 0, "video", "bad")


def test_default_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SHORTCUT_MINI_DATA", str(tmp_path))
    assert default_data_root() == tmp_path
    monkeypatch.delenv("SHORTCUT_MINI_DATA")
    assert default_data_root() == Path.home() / ".cache" / "shortcut_mini" / "data"


def test_toys_and_digits_without_torchvision():
    code = (
        "import sys; sys.modules['torchvision'] = None\n"
        "import shortcut_mini.data as d\n"
        "assert len(d.load_dataset('digits')) == 1437\n"
        "assert d.toy2d('spirals', 4, 0).shape == (4, 2)\n"
        "try:\n    d.load_dataset('mnist', root='/nonexistent')\n"
        "except d.DatasetUnavailableError as e:\n    assert 'torchvision' in str(e)\n"
        "else:\n    raise SystemExit('expected DatasetUnavailableError')\n"
    )
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-c", code]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def no_network(monkeypatch):
    """Make every torchvision download fail as it would on a machine without network."""
    tvd = pytest.importorskip("torchvision.datasets")

    def fail(*args, **kwargs):
        raise OSError("network is unreachable (simulated)")

    for cls in (tvd.MNIST, tvd.FashionMNIST, tvd.CIFAR10, tvd.CelebA):
        monkeypatch.setattr(cls, "download", fail)


def test_missing_mnist_error(tmp_path, no_network):
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("mnist", root=tmp_path)
    msg = str(info.value)
    assert "'mnist'" in msg
    assert str(tmp_path / "MNIST" / "raw") in msg
    assert "network" in msg and "train-images-idx3-ubyte" in msg
    assert isinstance(info.value, RuntimeError)


def test_missing_fashion_mnist_error(tmp_path, monkeypatch, no_network):
    monkeypatch.setattr(torchvision_sets, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian")
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("fashion_mnist", root=tmp_path / "root")
    msg = str(info.value)
    assert "'fashion_mnist'" in msg and "apt-get install dataset-fashion-mnist" in msg
    assert str(tmp_path / "root" / "FashionMNIST" / "raw") in msg


@pytest.mark.parametrize("name", ["cifar10", "celeba64"])
def test_missing_cifar_celeba_error(tmp_path, no_network, name):
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset(name, root=tmp_path)
    msg = str(info.value)
    assert repr(name) in msg and str(tmp_path) in msg and "network" in msg


def test_missing_dataset_without_download(tmp_path):
    pytest.importorskip("torchvision")
    with pytest.raises(DatasetUnavailableError, match="download=False"):
        load_dataset("mnist", root=tmp_path, download=False)


@pytest.mark.skipif(
    not torchvision_sets.DEBIAN_FASHION_MNIST_DIR.is_dir(),
    reason="Debian package dataset-fashion-mnist is not installed",
)
def test_fashion_mnist_from_debian_files(tmp_path):
    pytest.importorskip("torchvision")
    train = load_dataset("fashion_mnist", root=tmp_path, download=False)
    test = load_dataset("fashion_mnist", root=tmp_path, train=False, download=False)
    assert len(train) == 60000 and len(test) == 10000
    assert train.shape == (1, 28, 28) and train.x.dtype == torch.uint8
    assert train.num_classes == 10 and set(test.y.unique().tolist()) == set(range(10))
    raw = sorted(p.name for p in (tmp_path / "FashionMNIST" / "raw").iterdir())
    assert raw == sorted(torchvision_sets.IDX_FILES)  # no temporary files left behind
    x, _ = train.batch([0, 1, 2], "cpu")
    assert x.min() >= -1 and x.max() <= 1
    small = load_dataset("fashion_mnist", root=tmp_path, n=50, image_size=16, download=False)
    assert len(small) == 50 and small.shape == (1, 16, 16)


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_with_classes(tmp_path):
    rng = np.random.RandomState(0)
    for cls in ("cats", "dogs"):
        for i in range(3):
            _write_png(tmp_path / cls / f"{i}.png", rng.randint(0, 256, (20, 30, 3), np.uint8))
    _write_png(tmp_path / "dogs" / "deeper" / "x.png", rng.randint(0, 256, (12, 12, 3), np.uint8))
    ds = load_dataset(f"image_folder:{tmp_path}", image_size=8)
    assert len(ds) == 7 and ds.shape == (3, 8, 8) and ds.x.dtype == torch.uint8
    assert ds.num_classes == 2 and sorted(ds.y.tolist()) == [0, 0, 0, 1, 1, 1, 1]
    x, _ = ds.batch(torch.arange(7), "cpu")
    assert x.min() >= -1 and x.max() <= 1


def test_image_folder_flat_grayscale(tmp_path):
    for i in range(4):
        _write_png(tmp_path / f"{i}.png", np.full((10, 16), 40 * i, np.uint8))
    ds = load_dataset(f"image_folder:{tmp_path}", image_size=10)
    assert ds.shape == (1, 10, 10) and ds.num_classes == 0 and (ds.y == 0).all()
    assert ds.x[3].unique().tolist() == [120]  # center crop + resize of a flat image
    with pytest.raises(ValueError, match="image_size"):
        load_dataset(f"image_folder:{tmp_path}")


def test_image_folder_missing(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="no image files"):
        load_dataset(f"image_folder:{tmp_path}", image_size=8)
    with pytest.raises(DatasetUnavailableError, match="not a directory"):
        load_dataset(f"image_folder:{tmp_path / 'nope'}", image_size=8)


def test_celeba64_from_local_folder(tmp_path, monkeypatch):
    """A tiny fake CelebA folder: crop 178, resize, split, and the processed-array cache."""
    tvd = pytest.importorskip("torchvision.datasets")
    monkeypatch.setattr(tvd.CelebA, "_check_integrity", lambda self: True)
    folder = tmp_path / "celeba"
    names = [f"{i:06d}.jpg" for i in range(1, 7)]
    splits = [0, 0, 0, 1, 2, 2]  # 3 train, 1 valid, 2 test
    for i, name in enumerate(names):
        img = np.zeros((218, 178, 3), np.uint8)
        # the 178x178 center holds a flat colour; the border is black
        img[20:198] = 50 * i
        _write_png(folder / "img_align_celeba" / name, img)
    (folder / "list_eval_partition.txt").write_text(
        "".join(f"{n} {s}\n" for n, s in zip(names, splits))
    )
    (folder / "identity_CelebA.txt").write_text("".join(f"{n} 1\n" for n in names))
    for fname, cols in [
        ("list_bbox_celeba.txt", "x_1 y_1 width height"),
        ("list_landmarks_align_celeba.txt", "lefteye_x lefteye_y"),
        ("list_attr_celeba.txt", "Smiling Young"),
    ]:
        k = len(cols.split())
        rows = "".join(f"{n} " + " ".join(["1"] * k) + "\n" for n in names)
        (folder / fname).write_text(f"{len(names)}\n{cols}\n{rows}")
    train = load_dataset("celeba64", root=tmp_path, download=False)
    assert train.shape == (3, 64, 64) and len(train) == 3 and train.num_classes == 0
    # the border was cut away (JPEG: allow small ringing at the crop edge)
    corners = train.x[:, :, 0, 0].float().mean(1)
    assert torch.allclose(corners, torch.tensor([0.0, 50.0, 100.0]), atol=4)
    assert (folder / "shortcut_mini_train_64.pt").is_file()
    test = load_dataset("celeba64", root=tmp_path, train=False, image_size=16, download=False)
    assert test.shape == (3, 16, 16) and len(test) == 2
    assert int(test.x.min()) >= 190  # test images are 200 and 250
    # the cache no longer needs the JPEGs
    (folder / "img_align_celeba" / names[0]).unlink()
    assert torch.equal(load_dataset("celeba64", root=tmp_path, download=False).x, train.x)


def _truncated_png(path: Path) -> Path:
    rng = np.random.RandomState(1)
    _write_png(path, rng.randint(0, 256, (24, 24, 3), np.uint8))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _fake_jpg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a text file with an image extension")
    return path


def _skip_warnings(rec) -> list[str]:
    return [str(w.message) for w in rec if "could not be read" in str(w.message)]


def test_image_folder_skips_unreadable_files_with_one_warning(tmp_path):
    rng = np.random.RandomState(0)
    clean, dirty = tmp_path / "clean", tmp_path / "dirty"
    for name in ("cats/0.png", "cats/1.png", "dogs/0.png"):
        pixels = rng.randint(0, 256, (20, 30, 3), np.uint8)
        _write_png(clean / name, pixels)
        _write_png(dirty / name, pixels)
    bad = [_truncated_png(dirty / "cats" / "1b.png"), _fake_jpg(dirty / "dogs" / "0b.jpg")]
    with pytest.warns(UserWarning) as rec:
        ds = load_dataset(f"image_folder:{dirty}", image_size=8)
    (msg,) = _skip_warnings(rec)
    assert "skipped 2 of 5 image files" in msg and all(str(p) in msg for p in bad)
    assert "truncated" in msg and "not an image file" in msg
    assert len(ds) == 3 and ds.num_classes == 2 and ds.y.tolist() == [0, 0, 1]
    # the good images are loaded exactly as from a folder without the bad ones
    assert torch.equal(ds.x, load_dataset(f"image_folder:{clean}", image_size=8).x)


def test_image_folder_warning_names_a_class_left_empty_and_counts_the_rest(tmp_path):
    _write_png(tmp_path / "a" / "0.png", np.full((8, 8), 7, np.uint8))
    bad = [_fake_jpg(tmp_path / "b" / f"{i}.jpg") for i in range(7)]
    with pytest.warns(UserWarning) as rec:
        ds = load_dataset(f"image_folder:{tmp_path}", image_size=8)
    (msg,) = _skip_warnings(rec)
    assert "skipped 7 of 8" in msg and "and 2 more" in msg
    assert str(bad[0]) in msg and str(bad[-1]) not in msg  # the first few, not all
    assert "classes with no readable image left: ['b']" in msg
    assert ds.num_classes == 2 and ds.y.tolist() == [0]  # labels do not shift


def test_image_folder_with_no_readable_image(tmp_path):
    bad = [_truncated_png(tmp_path / "x.png"), _fake_jpg(tmp_path / "y.jpg")]
    with pytest.raises(DatasetUnavailableError, match="none of its 2 image files") as info:
        load_dataset(f"image_folder:{tmp_path}", image_size=8)
    msg = str(info.value)
    assert all(str(p) in msg for p in bad) and "replace them with valid images" in msg
    assert isinstance(info.value, DatasetError)


def _fail_after_creating(make: list[str], error: Exception):
    """A torchvision ``download`` that creates ``make`` (folders, or files ending in ``.gz``)
    below ``self.root`` as the real one does before it fails, then raises ``error``."""

    def download(self, *args, **kwargs):
        base = Path(self.root)
        for rel in make:
            target = base / rel
            if rel.endswith(".gz"):
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(b"partial")
            else:
                target.mkdir(parents=True, exist_ok=True)
        raise error

    return download


def test_failed_mnist_download_removes_the_folders_it_created(tmp_path, monkeypatch):
    tvd = pytest.importorskip("torchvision.datasets")
    fail = _fail_after_creating(
        ["MNIST/raw/train-images-idx3-ubyte.gz"], RuntimeError("Error downloading (simulated)")
    )
    monkeypatch.setattr(tvd.MNIST, "download", fail)
    root = tmp_path / "cache" / "shortcut_mini" / "data"
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("mnist", root=root)
    msg = str(info.value)  # still says which files are missing and where they go
    assert str(root / "MNIST" / "raw") in msg and "train-images-idx3-ubyte" in msg
    assert list(tmp_path.iterdir()) == []  # cache/, shortcut_mini/, data/, MNIST/, raw/ all gone


def test_failed_download_keeps_what_existed_before(tmp_path, monkeypatch):
    tvd = pytest.importorskip("torchvision.datasets")
    root = tmp_path / "data"
    mine = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"  # placed by hand, incomplete set
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"labels")
    (root / "notes.txt").write_text("mine")
    fail = _fail_after_creating(["MNIST/raw"], OSError("network is unreachable (simulated)"))
    monkeypatch.setattr(tvd.MNIST, "download", fail)
    with pytest.raises(DatasetUnavailableError, match="train-images-idx3-ubyte"):
        load_dataset("mnist", root=root)
    assert mine.read_bytes() == b"labels" and (root / "notes.txt").read_text() == "mine"

    # CIFAR-10 into the same root: its partial archive and folder go, the rest stays
    make = ["cifar-10-python.tar.gz", "cifar-10-batches-py"]
    monkeypatch.setattr(tvd.CIFAR10, "download", _fail_after_creating(make, OSError("offline")))
    with pytest.raises(DatasetUnavailableError, match="cifar-10-batches-py"):
        load_dataset("cifar10", root=root)
    assert sorted(p.name for p in root.iterdir()) == ["MNIST", "notes.txt"]


def test_failed_celeba_download_removes_its_folder(tmp_path, monkeypatch):
    tvd = pytest.importorskip("torchvision.datasets")
    make = ["celeba/img_align_celeba.zip.gz"]
    monkeypatch.setattr(tvd.CelebA, "download", _fail_after_creating(make, RuntimeError("quota")))
    (tmp_path / "keep").mkdir()
    with pytest.raises(DatasetUnavailableError, match="img_align_celeba"):
        load_dataset("celeba64", root=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]


def test_each_image_dataset_is_one_registry_entry():
    """One entry per image dataset: its description (the ``DATASETS`` table), its loader and
    the features of its Frechet distance (``CLASSIFIER_DATASETS`` is derived from them)."""
    from shortcut_mini.data import IMAGE_DATASETS
    from shortcut_mini.reference import CLASSIFIER_DATASETS

    assert set(IMAGE_DATASETS) == {"digits", "mnist", "fashion_mnist", "cifar10", "celeba64"}
    for name, entry in IMAGE_DATASETS.items():
        assert DATASETS[name] == entry.description
        assert entry.features in ("classifier", "inception")
    assert set(CLASSIFIER_DATASETS) == {"digits", "mnist", "fashion_mnist"}
    x, y, classes = IMAGE_DATASETS["digits"].load(None, False, False, None)
    assert x.shape == (360, 1, 8, 8) and x.dtype == torch.uint8 and classes == 10
    assert len(y) == 360
