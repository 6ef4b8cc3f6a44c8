"""Inference on audio: clip prediction and streaming keyword detection with a trained model.

``load_predictor`` (a run folder or an exported ONNX file) gives a ``Predictor`` with the
model's own front end; ``detect_keywords`` runs it over a long recording with TensorFlow's
posterior smoothing and scores it against a ground truth (FA/h, FRR, DET curve).
"""

from edge_str.inference.detect import detect_keywords
from edge_str.inference.frontend import FrontEnd
from edge_str.inference.predictor import Predictor, StreamStep, load_predictor
from edge_str.inference.smoothing import (
    Detection,
    SmoothingSettings,
    detect_commands,
    smooth_posteriors,
)
from edge_str.inference.stream import RESETS, stream_posteriors
from edge_str.inference.stream_eval import (
    StreamStats,
    TruthWord,
    det_points,
    read_truth,
    score_detections,
)

__all__ = [
    "RESETS",
    "Detection",
    "FrontEnd",
    "Predictor",
    "SmoothingSettings",
    "StreamStats",
    "StreamStep",
    "TruthWord",
    "det_points",
    "detect_commands",
    "detect_keywords",
    "load_predictor",
    "read_truth",
    "score_detections",
    "smooth_posteriors",
    "stream_posteriors",
]
