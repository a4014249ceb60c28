"""Analysis tests run with one intra-op thread: on a shared 2-core machine that beats contending for two."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
