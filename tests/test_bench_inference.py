"""benchmarks.inference runs end to end (tiny time budget) and reports what run_all reads."""

from __future__ import annotations

import pytest
import torch

from benchmarks import inference


def test_forced_ranks_survive_baking():
    model = inference.build_fastgrnn((8, 20))
    assert model.effective_ranks() == {"W": 8, "U": 20}
    assert inference.build_fastgrnn((32, 100)).effective_ranks() == {"W": 32, "U": 100}


@pytest.mark.slow
def test_inference_benchmark_smoke(tmp_path, capsys):
    threads = torch.get_num_threads()
    result = inference.main(tmp_path / "r.json", budget_s=0.05, features=False)
    assert torch.get_num_threads() == threads  # restored for the next benchmark section
    assert (tmp_path / "r.json").is_file()
    for key in (
        "onnx_latency_ratio_vs_gru",
        "onnx_compact_vs_dense_latency_ratio",
        "onnx_compact_vs_dense_macs_ratio",
    ):
        assert result[key] > 0
    models = result["models"]
    assert models["fastgrnn_compact"]["ranks"] == {"W": "8/32", "U": "20/100"}
    assert 0.45 < models["fastgrnn_half"]["macs_ratio_vs_dense"] < 0.55
    assert models["fastgrnn_compact"]["nodes_per_step"] == 10
    assert models["fastgrnn_dense"]["nodes_per_step"] == 9
    assert models["fastgrnn_compact"]["scan_body_nodes"] == 10
    assert "GRU" in result["gru"]["op_types"]
    assert set(result["targets"]) == {"half_macs_latency_vs_dense", "batch1_latency_vs_onnx_gru"}
    assert result["features"] is None
    assert "fastgrnn_compact / ONNX GRU" in capsys.readouterr().out
