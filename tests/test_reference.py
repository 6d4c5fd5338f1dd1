"""The five kinds of reference input resolve to one Reference (shortcut_mini.reference)."""

from types import SimpleNamespace

import pytest
import torch

from shortcut_mini.data import load_dataset
from shortcut_mini.metrics import FeatureStats
from shortcut_mini.reference import Reference, held_out_points, resolve_reference


def fake_run(kind, name="digits", seed=0, num_classes=0):
    return SimpleNamespace(
        data_info={"kind": kind, "name": name, "num_classes": num_classes},
        config=SimpleNamespace(seed=seed, image_size=None, data_root=None),
    )


def test_held_out_points_are_the_test_split_of_the_training_seed():
    ref = held_out_points("checkerboard", 100, seed=3)
    assert ref.n == 100 and tuple(ref.points.shape) == (100, 2)
    assert torch.equal(ref.points, load_dataset("checkerboard", train=False, n=100, seed=3).x)
    assert not torch.equal(ref.points, load_dataset("checkerboard", n=100, seed=3).x)
    assert "test seed of training seed 3" in ref.description


def test_points_none_tensor_and_reference():
    run = fake_run("points", name="checkerboard", seed=1)
    default = resolve_reference(run, None, n=50)
    assert torch.equal(default.points, held_out_points("checkerboard", 50, seed=1).points)
    given = resolve_reference(run, torch.ones(7, 2, dtype=torch.float64))
    assert given.n == 7 and given.points.dtype == torch.float32
    assert given.description == "7 given points"
    assert resolve_reference(run, given) is given


def test_images_tensor_stats_and_reference():
    run = fake_run("image")
    imgs = torch.tensor([0, 255], dtype=torch.uint8).repeat(3, 1)[:, :, None, None]  # [3, 2, 1, 1]

    def flatten(x):
        return x.flatten(1)

    ref = resolve_reference(run, imgs, extractor=flatten, keep_features=True, batch_size=2)
    assert ref.n == 3 and ref.description == "3 given images"
    assert torch.equal(ref.features, torch.tensor([[-1.0, 1.0]] * 3))  # uint8 -> [-1, 1]
    assert torch.allclose(torch.as_tensor(ref.stats.mean).float(), torch.tensor([-1.0, 1.0]))
    stats = FeatureStats.from_features(torch.randn(10, 2))
    from_stats = resolve_reference(run, stats)
    assert from_stats.stats is stats and from_stats.n == 10
    assert resolve_reference(run, ref, keep_features=True) is ref


def test_precision_recall_needs_reference_features():
    run = fake_run("image")
    stats = FeatureStats.from_features(torch.randn(10, 2))
    with pytest.raises(ValueError, match="not FeatureStats"):
        resolve_reference(run, stats, keep_features=True)
    with pytest.raises(ValueError, match="keeps its features"):
        resolve_reference(run, Reference("stats only", stats=stats, n=10), keep_features=True)


def test_each_feature_kind_is_one_registry_entry():
    """One entry per feature kind: its builder, metric, settings and cache key; evaluation, the
    reproduction runner and the command line all read the names from it."""
    from shortcut_mini.cli import build_parser
    from shortcut_mini.evaluate import metric_name
    from shortcut_mini.metrics.features import FEATURE_KINDS, IdentityFeatures, feature_kind
    from shortcut_mini.reproduce.presets import metric_names

    assert list(FEATURE_KINDS) == ["classifier", "inception", "identity"]
    assert metric_names() == ("auto", "classifier", "inception", "identity", "points", "pixels")
    assert [metric_name(k) for k in FEATURE_KINDS] == ["FD (classifier)", "FID", "FD (pixels)"]
    for alias in ("points", "pixels", "IDENTITY"):
        assert feature_kind(alias)[0] == "identity"
    identity = FEATURE_KINDS["identity"]
    assert isinstance(identity.build(None), IdentityFeatures)
    assert identity.cache_key(identity.build(None)) == "identity"
    with pytest.raises(ValueError, match="unknown feature extractor 'fid'; use classifier"):
        feature_kind("fid")
    evaluate_help = build_parser()._subparsers._group_actions[0].choices["evaluate"].format_help()
    assert all(k in evaluate_help for k in FEATURE_KINDS)
