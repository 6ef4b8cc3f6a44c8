import pytest
import torch

# Tests use tiny tensors: one intra-op thread is many times faster than two on a busy 2-core
# machine (and avoids oversubscribing CI).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _feature_cache_in_tmp(tmp_path_factory, monkeypatch):
    """Keep feature caches out of the user's ~/.cache during tests."""
    monkeypatch.setenv("EDGE_STR_CACHE", str(tmp_path_factory.getbasetemp() / "feature-cache"))
