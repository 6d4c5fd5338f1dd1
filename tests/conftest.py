import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # Small models on 2 shared cores: one thread avoids oversubscription stalls.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY_CONFIG = dict(
    data="checkerboard",
    model="mlp-small",
    steps=20,
    batch_size=32,
    lr=1e-3,
    n_data=2000,
    device="cpu",
    progress=False,
    log_every=5,
    ckpt_every=10,
)
"""The smallest run that trains for real on the CPU in well under a second."""


def make_tiny_config(**overrides):
    """A ``TrainConfig`` of :data:`TINY_CONFIG` with ``overrides`` applied."""
    from shortcut_mini import TrainConfig

    return TrainConfig(**{**TINY_CONFIG, **overrides})


@pytest.fixture(scope="session")
def tiny_config():
    """The shared tiny-config factory: ``tiny_config(steps=4, out_dir=...)``."""
    return make_tiny_config
