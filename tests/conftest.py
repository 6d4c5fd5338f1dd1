import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # Small models on 2 shared cores: one thread avoids oversubscription stalls.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
