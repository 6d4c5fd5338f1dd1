"""Tests of shortcut_mini.metrics: Frechet distance, sliced Wasserstein, classifier, Inception."""

from __future__ import annotations

import itertools
import math
import sys
import urllib.error

import numpy as np
import pytest
import torch

from shortcut_mini.metrics import (
    FeatureStats,
    FeatureWeightsUnavailableError,
    IdentityFeatures,
    InceptionFeatures,
    feature_stats,
    frechet_distance,
    frechet_distance_from_features,
    get_feature_extractor,
    precision_recall,
    random_directions,
    sliced_wasserstein,
)
from shortcut_mini.metrics import classifier as clf_mod


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny CPU workloads: one intra-op thread is faster, and 10x faster on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- Frechet distance


def _diag_fd(m1, s1, m2, s2):
    """Closed form for diagonal covariances: |m1-m2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2))."""
    m1, s1, m2, s2 = map(np.asarray, (m1, s1, m2, s2))
    return float(((m1 - m2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum())


def test_frechet_diagonal_closed_form():
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    got = frechet_distance(m1, np.diag(s1), m2, np.diag(s2))
    assert got == pytest.approx(_diag_fd(m1, s1, m2, s2), rel=1e-10)


@pytest.mark.parametrize("tiny", [1e-12, 0.0])
def test_frechet_near_singular_covariance(tiny):
    m1, m2 = np.zeros(3), np.array([1.0, 0.0, -2.0])
    s1, s2 = np.array([1.0, tiny, 2.0]), np.array([0.5, 1.0, tiny])
    got = frechet_distance(m1, np.diag(s1), m2, np.diag(s2))
    assert got == pytest.approx(_diag_fd(m1, s1, m2, s2), abs=1e-5)


def test_frechet_full_covariance_matches_symmetric_formula():
    # tr((S1 S2)^1/2) = sum sqrt(eig(S1^1/2 S2 S1^1/2)), an independent way to compute it
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    w, v = np.linalg.eigh(s1)
    root1 = v @ np.diag(np.sqrt(w)) @ v.T
    tr = np.sqrt(np.linalg.eigvalsh(root1 @ s2 @ root1)).sum()
    expected = ((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(frechet_distance(m2, s2, m1, s1))


def test_frechet_identical_is_zero_and_symmetric():
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    y = torch.randn(400, 8, generator=torch.Generator().manual_seed(1)) * 1.5 + 0.3
    assert frechet_distance_from_features(x, x) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance_from_features(x, y) == pytest.approx(
        frechet_distance_from_features(y, x), rel=1e-10
    )
    assert frechet_distance_from_features(x, y) > 0.5


def test_frechet_rejects_bad_shapes_and_non_psd():
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="mismatch"):
        frechet_distance_from_features(torch.randn(10, 3), torch.randn(10, 4))


def test_streaming_stats_equal_one_shot():
    x = torch.randn(1000, 16, generator=torch.Generator().manual_seed(0)) * 3 + 5
    one = FeatureStats.from_features(x)
    stream = FeatureStats()
    for chunk in torch.split(x, 137):
        stream.update(chunk)
    assert stream.count == one.count == 1000
    np.testing.assert_allclose(stream.mean, one.mean, rtol=1e-12)
    np.testing.assert_allclose(stream.cov, one.cov, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(one.cov, np.cov(x.double().numpy(), rowvar=False), atol=1e-9)
    with pytest.raises(ValueError, match="mismatch"):
        stream.update(torch.randn(4, 15))


def test_stats_save_load(tmp_path):
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(0))
    FeatureStats.from_features(x[:200]).save(tmp_path / "ref.npz")
    loaded = FeatureStats.load(tmp_path / "ref.npz").update(x[200:])
    one = FeatureStats.from_features(x)
    assert loaded.count == 300
    np.testing.assert_allclose(loaded.cov, one.cov, rtol=1e-12)
    assert loaded.frechet_distance(one) == pytest.approx(0.0, abs=1e-8)
    assert [p.name for p in tmp_path.iterdir()] == ["ref.npz"]


def test_stats_need_two_points():
    with pytest.raises(ValueError, match="at least 2"):
        _ = FeatureStats().update(torch.randn(1, 3)).cov


# ---------------------------------------------------------------- sliced Wasserstein


def test_swd_identical_is_zero_and_sizes_must_match():
    x = torch.randn(256, 2)
    assert sliced_wasserstein(x, x[torch.randperm(256)]) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="equal-sized"):
        sliced_wasserstein(x, x[:100])


def test_swd_shift_known_value():
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    c = torch.tensor([3.0, -4.0], dtype=torch.float64)  # |c| = 5
    dirs = random_directions(512, 2, seed=0)
    exact = math.sqrt(float(((dirs @ c) ** 2).mean()))
    assert sliced_wasserstein(x, x + c, n_directions=512, seed=0) == pytest.approx(exact, rel=1e-9)
    many = sliced_wasserstein(x, x + c, n_directions=20000, seed=1)
    assert many == pytest.approx(5 / math.sqrt(2), rel=0.02)


def test_swd_decreases_as_distributions_approach():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 2, generator=gen)
    values = [
        sliced_wasserstein(x, torch.randn(4096, 2, generator=gen) + s * torch.tensor([1.0, 1.0]))
        for s in (2.0, 1.0, 0.5, 0.0)
    ]
    assert all(a > b for a, b in itertools.pairwise(values)), values
    assert values[-1] < 0.05


# ---------------------------------------------------------------- classifier


class _Digits:
    """ArrayDataset-like shim around sklearn's 8x8 digits (uint8 [N, 1, 8, 8])."""

    def __init__(self, x, y):
        self.x, self.y, self.num_classes = x, y, 10

    def __len__(self):
        return len(self.x)

    def batch(self, indices, device=None):
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self.x[idx].to(device).float() / 127.5 - 1, self.y[idx].to(device)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(np.round(d.images * 255 / 16), dtype=torch.uint8)[:, None]
    y = torch.tensor(d.target, dtype=torch.long)
    return _Digits(x[:1400], y[:1400]), _Digits(x[1400:], y[1400:])


def _train(digits, cache_dir, **kw):
    train, test = digits
    kw = {"seed": 0, "epochs": 5, "device": "cpu", **kw}
    return clf_mod.get_classifier(
        "digits", cache_dir=cache_dir, train_set=train, test_set=test, **kw
    )


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    cache = tmp_path_factory.mktemp("classifiers")
    return _train(digits, cache), cache


def test_classifier_accuracy(digits, trained):
    clf, _ = trained
    assert not clf.from_cache
    assert clf.accuracy >= 0.90, clf.accuracy  # held-out 397 digits, 5 epochs
    test = digits[1]
    x, y = test.batch(torch.arange(len(test)))
    assert (clf.predict(x) == y).float().mean().item() == pytest.approx(clf.accuracy)
    feats = clf.features(x)
    assert feats.shape == (len(test), 128) and feats.dtype == torch.float32
    with pytest.raises(ValueError, match="expects images"):
        clf.features(torch.zeros(2, 1, 28, 28))


def test_classifier_cache_loads_without_training(digits, trained, monkeypatch):
    clf, cache = trained
    x, _ = digits[1].batch(torch.arange(50))
    monkeypatch.setattr(clf_mod, "train_classifier", lambda *a, **k: pytest.fail("retrained"))
    again = _train(digits, cache)
    assert again.from_cache and again.accuracy == clf.accuracy
    assert torch.equal(again.features(x), clf.features(x))
    state = torch.load(again.cache_path, weights_only=True)
    assert set(state) == set(clf.net.state_dict())
    assert not list(cache.glob("*.tmp"))
    with pytest.raises(ValueError, match="image_size"):
        _train(digits, cache, image_size=28)


def test_classifier_training_is_deterministic(digits, tmp_path):
    a = _train(digits, tmp_path / "a", epochs=1)
    b = _train(digits, tmp_path / "b", epochs=1)  # same seed, fresh cache
    sa, sb = a.net.state_dict(), b.net.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = _train(digits, tmp_path / "a", epochs=1, seed=1)
    assert not torch.equal(a.net.fc.weight, c.net.fc.weight)


def test_classifier_fd_is_sensible(digits, trained):
    clf, _ = trained
    train, test = digits
    xr, _ = train.batch(torch.arange(400))
    xt, _ = test.batch(torch.arange(len(test)))
    noise = torch.rand(len(test), 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fd_real = frechet_distance_from_features(clf(xr), clf(xt))
    fd_noise = frechet_distance_from_features(clf(xr), clf(noise))
    assert fd_real < 0.2 * fd_noise, (fd_real, fd_noise)


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SHORTCUT_MINI_CACHE", str(tmp_path))
    assert clf_mod.default_cache_dir() == tmp_path / "classifiers"


# ---------------------------------------------------------------- Inception


class _FakeInception(torch.nn.Module):
    """Same interface as torch-fidelity's extractor: uint8 [B, 3, H, W] -> ([B, 2048],)."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 2048)
        self.seen = []

    def forward(self, x):
        assert x.dtype == torch.uint8 and x.shape[1] == 3
        self.seen.append(tuple(x.shape))
        return (self.proj(x.float().mean(dim=(2, 3))),)


def test_inception_injected_model_batches_and_converts():
    fake = _FakeInception()
    ext = get_feature_extractor("inception", model=fake, device="cpu", batch_size=4)
    x = torch.rand(10, 1, 28, 28) * 2 - 1
    f = ext(x)
    assert f.shape == (10, 2048)
    assert fake.seen == [(4, 3, 28, 28), (4, 3, 28, 28), (2, 3, 28, 28)]
    stats = feature_stats(ext, x, batch_size=3)
    assert stats.count == 10 and stats.dim == 2048


def _random_init_fidelity(monkeypatch):
    """Make torch-fidelity build its Inception-v3 with random weights (no download)."""
    fe = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    monkeypatch.setattr(fe, "load_state_dict_from_url", lambda *a, **k: {})
    monkeypatch.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None)


def test_inception_full_path_random_init(monkeypatch):
    _random_init_fidelity(monkeypatch)
    torch.manual_seed(0)
    ext = InceptionFeatures(device="cpu", batch_size=2)
    x = torch.rand(3, 3, 32, 32) * 2 - 1  # resized to 299x299 inside torch-fidelity
    f = ext(x)
    assert f.shape == (3, 2048) and torch.isfinite(f).all()


def test_inception_missing_weights_error(monkeypatch, tmp_path):
    fe = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(fe, "load_state_dict_from_url", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FeatureWeightsUnavailableError) as info:
        InceptionFeatures(device="cpu")
    msg = str(info.value)
    assert fe.URL_INCEPTION_V3 in msg and str(tmp_path) in msg and "TORCH_HOME" in msg
    with pytest.raises(FeatureWeightsUnavailableError, match="not found"):
        InceptionFeatures(weights_path=tmp_path / "missing.pth", device="cpu")


def test_inception_without_torch_fidelity(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", None)
    with pytest.raises(ImportError, match="pip install torch-fidelity"):
        InceptionFeatures(device="cpu")


# ---------------------------------------------------------------- others


def test_feature_extractor_kinds():
    ident = get_feature_extractor("points")
    assert isinstance(ident, IdentityFeatures)
    assert ident(torch.ones(4, 1, 2, 3)).shape == (4, 6)
    with pytest.raises(ValueError, match="unknown"):
        get_feature_extractor("vgg")
    with pytest.raises(ValueError, match="dataset"):
        get_feature_extractor("classifier")


def test_precision_recall():
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(600, 4, generator=gen)
    assert precision_recall(real, real) == (1.0, 1.0)
    far = precision_recall(real, real + 100.0)
    assert far.precision == 0.0 and far.recall == 0.0
    # a generator that covers only half the real modes: precise but half the recall
    modes = torch.cat([torch.randn(300, 2, generator=gen), torch.randn(300, 2, generator=gen) + 20])
    half = torch.randn(600, 2, generator=gen)
    pr = precision_recall(modes, half)
    assert pr.precision > 0.9 and 0.4 < pr.recall < 0.6
