"""C99 export of a compacted STR FastGRNN for microcontrollers: float32, int8 weights, integer.

    from edge_str.export.c import export_c_model
    report = export_c_model(model, "out/c", x_test, y_test, mode="integer", prefix="kws")
    # out/c/kws.h, out/c/kws.c (the mode asked for) and out/c/kws.json

``lower`` (arrays, normaliser folded, quantisation), ``codegen`` (the .h/.c text),
``toolchain`` (compile with -Werror, run, ``size``), ``export`` (check and measure all three
modes, stage the files). ``edge-str export RUN --c DIR`` runs it beside the ONNX export.
"""

from edge_str.export.c.export import (
    C_FLOAT_TOLERANCE,
    DEFAULT_PREFIX,
    c_mode,
    export_c,
    export_c_model,
    feature_settings,
    validate_c_options,
)
from edge_str.export.c.lower import MODES

__all__ = [
    "C_FLOAT_TOLERANCE",
    "DEFAULT_PREFIX",
    "MODES",
    "c_mode",
    "export_c",
    "export_c_model",
    "feature_settings",
    "validate_c_options",
]
