"""Analysis tests run with one intra-op thread: on a shared 2-core machine that beats contending for two."""
import pytest
import torch

from tests.helpers import TINY_OPTIONS


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    """The tiny zfnet of the analysis tests (seeded, eval mode)."""
    from convscope.models import get_model

    torch.manual_seed(0)
    return get_model("zfnet", **TINY_OPTIONS).eval()
