"""Latent-space data (``data.latents``): encode once, cache, train, decode.

The real Stable Diffusion VAE cannot be downloaded here, so a small randomly initialised
autoencoder with the interface of diffusers' ``AutoencoderKL`` stands in for it.
"""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import shortcut_mini.data.latents as latents
from shortcut_mini import ConfigError, TrainConfig, load_run, sample, train
from shortcut_mini.data import ArrayDataset, DatasetUnavailableError
from shortcut_mini.data.latents import (
    LatentVAEError,
    decode_latents,
    decode_samples,
    encode_to_latents,
    load_vae,
)


class _Posterior:
    def __init__(self, mean, logvar):
        self.mean, self.std = mean, torch.exp(0.5 * logvar)

    def sample(self, generator=None):
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device)
        return self.mean + self.std * eps

    def mode(self):
        return self.mean


class TinyVAE(nn.Module):
    """AutoencoderKL's interface: 3xSxS images <-> 4x(S/8)x(S/8) latents, random weights."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.enc = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.SiLU(), nn.Conv2d(8, 8, 3, 2, 1), nn.SiLU(),
            nn.Conv2d(8, 8, 3, 2, 1),
        )  # fmt: skip
        self.dec = nn.Sequential(nn.Conv2d(4, 3 * 64, 3, 1, 1), nn.PixelShuffle(8), nn.Tanh())
        self.config = SimpleNamespace(scaling_factor=0.18215)
        self.encode_calls = 0

    def encode(self, x):
        self.encode_calls += 1
        mean, logvar = self.enc(x).chunk(2, dim=1)
        return SimpleNamespace(latent_dist=_Posterior(mean, logvar.clamp(-6, 0)))

    def decode(self, z):
        return SimpleNamespace(sample=self.dec(z))


def tiny_images(n=6, size=32, seed=0) -> ArrayDataset:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), generator=gen, dtype=torch.uint8)
    return ArrayDataset(x, torch.arange(n) % 2, num_classes=2, kind="image", name="tiny")


def write_folder(root, n_per_class=4, size=40):
    rng = np.random.default_rng(0)
    for c in ("cats", "dogs"):
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):
            arr = rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.png")
    return root


def latent_setup(tmp_path, monkeypatch, tiny_config, **overrides):
    """An image folder, a TinyVAE standing in for the SD VAE, and a latent-space config."""
    folder = write_folder(tmp_path / "imgs")
    vae = TinyVAE()
    monkeypatch.setattr(latents, "load_vae", lambda vae_id, device="cpu": vae)
    base = dict(
        data=f"image_folder:{folder}",
        latent_vae="test/tiny-vae",
        image_size=32,
        model="dit-tiny",
        steps=3,
        batch_size=4,
        n_data=None,  # all 8 images
        data_root=str(tmp_path / "data"),
    )
    return vae, tiny_config(**{**base, **overrides})


def test_encode_scales_caches_and_batches_floats(tmp_path):
    vae, images = TinyVAE(), tiny_images()
    cache = tmp_path / "cache" / "z.pt"
    data = encode_to_latents(images, vae, batch_size=4, cache_path=cache, posterior="mode")
    assert data.kind == "latent" and data.shape == (4, 4, 4) and data.x.dtype == torch.float16
    assert vae.encode_calls == 2 and torch.equal(data.y, images.y) and data.num_classes == 2
    with torch.no_grad():
        expected = vae.encode(images.x.float() / 127.5 - 1).latent_dist.mode() * 0.18215
    assert torch.allclose(data.x.float(), expected, atol=1e-3, rtol=1e-2)
    x, y = data.batch([0, 5])
    assert x.dtype == torch.float32 and torch.equal(x, data.x[[0, 5]].float())

    # A second call loads the cache: no encoder call; only the cache file was written.
    vae.encode_calls = 0
    again = encode_to_latents(images, vae, batch_size=4, cache_path=cache, posterior="mode")
    assert vae.encode_calls == 0 and torch.equal(again.x, data.x)
    assert [p.name for p in cache.parent.iterdir()] == ["z.pt"]

    # Decoding returns images of the original shape in [-1, 1].
    img = decode_latents(vae, data.x[:3].float())
    assert img.shape == (3, 3, 32, 32) and img.abs().max() <= 1


def test_latent_kind_is_validated():
    with pytest.raises(ValueError, match="latent data must be float"):
        ArrayDataset(torch.zeros(2, 4, 4, 4, dtype=torch.uint8), torch.zeros(2), 0, "latent", "z")
    with pytest.raises(ConfigError, match="latent_vae"):
        TrainConfig(data="checkerboard", latent_vae="x")


def test_train_on_cached_latents_of_an_image_folder_and_decode(tmp_path, monkeypatch, tiny_config):
    vae, cfg = latent_setup(
        tmp_path,
        monkeypatch,
        tiny_config,
        class_conditional=True,
        log_every=1,
        out_dir=str(tmp_path / "run"),
    )
    run = train(cfg)
    assert run.data_info == {
        "name": cfg.data,
        "kind": "latent",
        "shape": [4, 4, 4],
        "num_classes": 2,
    }
    assert vae.encode_calls == 1  # 8 images, one batch
    assert len(list((tmp_path / "data" / "latents").glob("*.pt"))) == 1
    assert np.isfinite([h["loss"] for h in run.history]).all()

    # Another run of the same data, size and VAE reads the cache.
    train(cfg.replace(out_dir=str(tmp_path / "run2"), seed=1))
    assert vae.encode_calls == 1

    loaded = load_run(tmp_path / "run")
    z = sample(loaded, 4, 2, seed=0, y=1)
    assert z.shape == (4, 4, 4, 4)
    images = decode_samples(loaded, z)
    assert images.shape == (4, 3, 32, 32) and images.abs().max() <= 1

    from shortcut_mini.cli import main

    png = tmp_path / "grid.png"
    assert (
        main(["sample", str(tmp_path / "run"), "--n", "4", "--steps", "2", "--out", str(png)]) == 0
    )
    assert png.stat().st_size > 0


def _write_bad_images(folder):
    """A truncated PNG and a text file named .jpg in ``folder``; returns their paths."""
    good = next(p for p in sorted(folder.rglob("*.png")))
    truncated = folder / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    fake = folder / "notes.jpg"
    fake.write_text("not an image")
    return truncated, fake


def test_latents_of_an_image_folder_skip_unreadable_files(tmp_path):
    folder = write_folder(tmp_path / "imgs")
    bad = _write_bad_images(folder / "cats") + _write_bad_images(folder / "dogs")
    with pytest.warns(UserWarning, match="skipped 4 of 12 image files") as rec:
        data = latents.load_latent_dataset(
            f"image_folder:{folder}", "test/tiny-vae", root=tmp_path, image_size=32, vae=TinyVAE()
        )
    msgs = [str(w.message) for w in rec if "could not be read" in str(w.message)]
    assert len(msgs) == 1 and all(str(p) in msgs[0] for p in bad)  # one warning names them all
    assert len(data) == 8 and data.num_classes == 2
    assert data.y.tolist() == [0] * 4 + [1] * 4


def test_latents_of_an_image_folder_with_no_readable_file(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # a PNG header and nothing else
    (folder / "b.jpg").write_text("not an image")
    with pytest.raises(DatasetUnavailableError, match="none of its 2 image files") as info:
        latents.load_latent_dataset(
            f"image_folder:{folder}", "test/tiny-vae", root=tmp_path, image_size=32, vae=TinyVAE()
        )
    assert str(folder / "a.png") in str(info.value) and str(folder / "b.jpg") in str(info.value)


def test_missing_diffusers_or_weights_say_how_to_get_them(monkeypatch):
    monkeypatch.setattr(latents, "_VAES", {})
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import fails as if not installed
    with pytest.raises(LatentVAEError, match=r"pip install 'shortcut-mini\[latent\]'"):
        load_vae("stabilityai/sd-vae-ft-ema")

    class AutoencoderKL:
        @staticmethod
        def from_pretrained(vae_id):
            raise OSError("We couldn't connect to 'https://huggingface.co'")

    fake = types.ModuleType("diffusers")
    fake.AutoencoderKL = AutoencoderKL
    monkeypatch.setitem(sys.modules, "diffusers", fake)
    with pytest.raises(LatentVAEError, match="huggingface-cli download stabilityai/sd-vae-ft-ema"):
        load_vae("stabilityai/sd-vae-ft-ema")


def test_evaluate_decodes_latent_samples_before_features(tmp_path, monkeypatch, tiny_config):
    _, cfg = latent_setup(tmp_path, monkeypatch, tiny_config, steps=2)
    run = train(cfg)
    seen = []

    def features(x):
        seen.append(tuple(x.shape[1:]))
        return x.flatten(1)[:, :8]

    from shortcut_mini.evaluate import evaluate

    table = evaluate(run, steps=(1,), n=8, features=features, progress=False)
    assert (3, 32, 32) in seen and (4, 4, 4) not in seen  # images, not latents
    assert np.isfinite(table[1]["distance"])
