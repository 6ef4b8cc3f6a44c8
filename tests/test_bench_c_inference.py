"""benchmarks.c_inference: its C GRU peer is a GRU, and it reports what run_all reads."""

from __future__ import annotations

import pytest
import torch

from benchmarks import c_inference
from edge_str.export.c.toolchain import host_compiler

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no C compiler (gcc/cc/clang)")


def test_the_c_gru_peer_computes_torch_gru(tmp_path):
    model = c_inference.GRUClassifier().eval()
    header, source = c_inference.gru_c(model)
    (tmp_path / "gru.h").write_text(header)
    (tmp_path / "gru.c").write_text(source)
    x = torch.randn(4, 20, c_inference.FEATURES)
    assert c_inference._check_gru(tmp_path, model, x) <= 1e-4


@pytest.mark.slow
def test_c_benchmark_smoke(tmp_path):
    result = c_inference.main(tmp_path / "r.json", repeats=1, seconds=0.01)
    assert (tmp_path / "r.json").is_file()
    for key in ("c_latency_ratio_vs_gru", "c_latency_ratio_vs_dense"):
        assert set(result[key]) == {"-O2", "-Os"} and all(v > 0 for v in result[key].values())
    compact = result["models"]["fastgrnn_compact"]
    assert compact["ranks"] == {"W": "6/32", "U": "5/100"}
    assert set(compact["modes"]) == {"float32", "int8", "integer"}
    assert compact["modes"]["int8"]["flash_bytes"] < compact["modes"]["float32"]["flash_bytes"]
    assert result["mac_ratio_compact_vs_dense"] == pytest.approx(2092 / 13500)
