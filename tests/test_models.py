"""Shapes and initialisation of the networks."""

import pytest
import torch

from shortcut_mini.models import DiT, build_model, count_parameters
from shortcut_mini.models.dit import sincos_pos_embed_2d


def test_dit_shapes_and_adaln_zero_start():
    model = build_model("dit-tiny", sample_shape=(3, 16, 16), num_classes=10)
    x = torch.randn(4, 3, 16, 16)
    out = model(x, torch.rand(4), torch.tensor([0, 1, 7, 7]), torch.tensor([0, 1, 2, 10]))
    assert out.shape == x.shape
    assert torch.all(out == 0)  # adaLN-Zero: output layer starts at zero


def test_patchify_roundtrip():
    model = DiT(image_size=8, channels=2, patch=2, hidden=32, depth=1, heads=2)
    x = torch.randn(3, 2, 8, 8)
    tokens = model.patchify(x)
    assert tokens.shape == (3, 16, 8)
    assert torch.equal(model.unpatchify(tokens), x)
    # token 1 holds the top row's second patch
    assert torch.equal(tokens[0, 1].view(2, 2, 2).permute(2, 0, 1), x[0, :, 0:2, 2:4])


def test_pos_embed_distinct_rows():
    pe = sincos_pos_embed_2d(32, 4)
    assert pe.shape == (16, 32)
    assert torch.cdist(pe, pe).fill_diagonal_(1).min() > 0


def test_conditioning_changes_output_after_training_step():
    model = build_model("dit-tiny", sample_shape=(1, 8, 8), num_classes=3)
    for p in model.parameters():  # leave adaLN-Zero start to see conditioning take effect
        torch.nn.init.normal_(p, std=0.05)
    x, t = torch.randn(2, 1, 8, 8), torch.full((2,), 0.3)
    a = model(x, t, torch.tensor([0, 0]))
    b = model(x, t, torch.tensor([5, 5]))
    c = model(x, t, torch.tensor([0, 0]), torch.tensor([1, 1]))
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


@pytest.mark.parametrize("kind", ["learned", "sin_level", "sin_d", "sin_d_unit"])
def test_level_embeddings(kind):
    model = build_model("mlp-small", sample_shape=(2,), level_embedding=kind)
    assert model(torch.randn(5, 2), torch.rand(5), torch.arange(5)).shape == (5, 2)


def test_presets_match_paper_shapes():
    b = build_model("dit-b", sample_shape=(4, 32, 32))
    assert 125e6 < count_parameters(b) < 135e6  # DiT-B/2 is about 130M parameters


def test_bad_shapes_have_clear_errors():
    with pytest.raises(ValueError, match="use a DiT preset"):
        build_model("mlp", sample_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="model='mlp'"):
        build_model("dit-tiny", sample_shape=(2,))
    with pytest.raises(ValueError, match="not divisible by patch"):
        build_model("dit-tiny", sample_shape=(1, 7, 7))
    with pytest.raises(ValueError, match="unknown model"):
        build_model("dit-huge", sample_shape=(1, 8, 8))
