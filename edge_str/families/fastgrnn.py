"""The FastGRNN family: its settings and hooks (W and U low rank, ranks learned by STR)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_str.defaults import (
    GATE_BIAS_INIT,
    LOWRANK_S_INIT,
    NU_INIT,
    UPDATE_BIAS_INIT,
    ZETA_INIT,
)
from edge_str.families.base import ModelFamily, lazy, summary_hooks
from edge_str.fastgrnn import GATES, LOOP_BACKENDS
from edge_str.lowrank import RANK_MODES
from edge_str.validation import setting


@dataclass
class FastGRNNConfig:
    """FastGRNN's ``model`` settings (fields of ``ModelConfig``; see ``edge_str.config``)."""

    hidden: int = setting(100, at_least=1)
    rank_mode: str = setting("str", choices=RANK_MODES)  # str (learned rank) | fixed | dense
    rank_w: int | None = setting(None, at_least=1)  # fixed mode: rank of W (default full)
    rank_u: int | None = setting(None, at_least=1)  # fixed mode: rank of U (default full)
    s_init: float = LOWRANK_S_INIT  # STR threshold init; g = exp on singular values
    # Gates: exact sigmoid/tanh, or piecewise linear (what an integer-only C export computes,
    # `edge-str export --c DIR --integer`), so the model is trained for them.
    gates: str = setting("exact", choices=GATES)
    # STR mode: refactor W1·diag(sigma)·W2 as its SVD after every epoch, so the threshold acts
    # on true singular values (see edge_str.lowrank). Off, sigma drifts from them and W keeps
    # full rank on the demo data (measured).
    svd_each_epoch: bool = True
    # Initialisation (edge_str.defaults says why b_z starts at 3)
    gate_bias_init: float = GATE_BIAS_INIT
    update_bias_init: float = UPDATE_BIAS_INIT
    zeta_init: float = ZETA_INIT
    nu_init: float = NU_INIT
    # Budget mode (STR): steer the thresholds so the compacted model lands within ±10% of this
    # size (see edge_str.training.budget). At most one of the two; KiB of float32 (4 B a param).
    target_params: int | None = None
    target_kb: float | None = None
    target_int8: bool = False  # target_kb counts int8 weights (1 B a param), as export --int8
    # The time loop: auto (C++ kernel where it builds, else PyTorch) | cpp | torch | loop (the
    # reference Python loop); see edge_str.fastgrnn.FastGRNN. EDGE_STR_FUSED_EXT overrides the
    # C++ build.
    backend: str = setting("auto", choices=LOOP_BACKENDS)


def _unused(cfg: Any) -> dict[str, str]:
    if cfg.rank_mode == "fixed":
        return {}
    why = f"applies to rank_mode fixed only (rank_mode is {cfg.rank_mode})"
    return {"rank_w": why, "rank_u": why}


FAMILY = ModelFamily(
    name="FastGRNN",
    archs=("fastgrnn",),
    config=FastGRNNConfig,
    build=lazy("edge_str.models:build_fastgrnn"),
    **summary_hooks("fastgrnn"),
    method=lambda cfg: cfg.rank_mode,
    unused_settings=_unused,
)
