"""Run a keyword model over a long recording: class posteriors every stride (30 ms).

The recording's log-mel frames (the model's own front end, 10 ms hop) are fed frame by frame
through the model's streaming step (the compacted torch step, or the ONNX step graph). How the
recurrent state is handled over a long stream (``RESETS``):

  window  the default. ceil(T / stride) states run side by side, state k restarted from zero
          every T frames, offset by k strides; at each decision the state that has heard
          exactly the last T frames (1 s) is read. The model sees what it was trained on, a
          1 s clip from a zero state, and the result equals the sequence model on that clip.
          Cost: T / stride steps per frame (33 for 99 frames and a 30 ms stride).
  never   one state, never reset: one step per frame.
  decay   one state, multiplied by ``decay`` before every step (a leaky memory).

Measured on the demo model (10-minute synthetic stream; README "Keyword detection on audio"):
a never-reset state grows without bound (max |s| 1,548 after 10 minutes, its mean over the run
half that: linear growth, as z -> 1 leaves h' ~ h + sigmoid(nu) h~) and nothing is detected
(FRR 100%); decay keeps it bounded but misses most words (FRR >= 39% at any threshold); window
gives FRR 30% at 72 FA/h at the default threshold. So ``window`` is the default.

A model without a step (a CNN) gets the same 1 s windows, batched, from its clip form.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm import tqdm

from edge_str.errors import EdgeStrError
from edge_str.inference.predictor import Predictor, StreamStep, softmax
from edge_str.inference.smoothing import SmoothingSettings

RESETS = ("window", "never", "decay")
DEFAULT_DECAY = 0.98  # per frame (10 ms): the state's memory falls to 1/e in ~0.5 s


def decision_frames(frames_total: int, clip_frames: int, stride_frames: int) -> np.ndarray:
    """Indices of the frames after which a decision is made: the first once 1 s is heard."""
    if frames_total < clip_frames:
        return np.zeros(0, np.int64)
    return np.arange(clip_frames - 1, frames_total, stride_frames, dtype=np.int64)


def stream_posteriors(
    predictor: Predictor,
    samples: np.ndarray,
    settings: SmoothingSettings | None = None,
    reset: str = "window",
    decay: float = DEFAULT_DECAY,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(decision times in ms (D,), posteriors (D, C), state statistics) of a recording.

    A decision's time is the start of its 1 s window plus the clip (1 s): the time the
    window's audio has been heard, its frames being on the model's hop grid. The state
    statistics (max and mean of max |state| over the frames) show whether a never-reset state
    stays bounded.
    """
    settings = settings or SmoothingSettings()
    if reset not in RESETS:
        raise EdgeStrError(f"--reset {reset}: must be one of {', '.join(RESETS)}")
    if reset == "decay" and not 0 < decay < 1:
        raise EdgeStrError(f"--decay {decay}: must be between 0 and 1 (exclusive)")
    front = predictor.front_end
    stride_frames = _stride_frames(settings, front.hop_ms)
    clip_frames = front.frames
    features = front.stream_features(samples).numpy()  # (N, F) raw log-mel
    ends = decision_frames(len(features), clip_frames, stride_frames)
    starts = ends - clip_frames + 1  # first frame of each decision's window
    times_ms = starts * front.hop_samples * 1000.0 / front.sample_rate + settings.clip_ms
    step = predictor.stream_step()
    if step is None:
        if reset != "window":
            raise EdgeStrError(
                f"{predictor.source}: has no streaming step (a CNN); only --reset window"
            )
        logits = _window_logits(predictor, features, ends, clip_frames)
        return times_ms, softmax(logits), {"reset": reset, "stepped": False}
    logits, stats = _stepped_logits(
        step, features, ends, clip_frames, stride_frames, reset, decay, progress
    )
    return times_ms, softmax(logits), {"reset": reset, "stepped": True, **stats}


def _stride_frames(settings: SmoothingSettings, hop_ms: float) -> int:
    stride = settings.stride_ms / hop_ms
    if stride < 1 or abs(stride - round(stride)) > 1e-6:
        raise EdgeStrError(
            f"--stride-ms {settings.stride_ms:g}: must be a whole number of the model's "
            f"{hop_ms:g} ms feature hops"
        )
    return int(round(stride))


def _window_logits(
    predictor: Predictor, features: np.ndarray, ends: np.ndarray, clip_frames: int
) -> np.ndarray:
    x = torch.from_numpy(features)
    out = []
    for start in range(0, len(ends), 256):
        idx = ends[start : start + 256]
        windows = torch.stack([x[e - clip_frames + 1 : e + 1] for e in idx])
        out.append(predictor.logits(windows))
    classes = len(predictor.class_names)
    return np.concatenate(out) if out else np.zeros((0, classes), np.float32)


def _stepped_logits(
    step: StreamStep,
    features: np.ndarray,
    ends: np.ndarray,
    clip_frames: int,
    stride_frames: int,
    reset: str,
    decay: float,
    progress: bool,
) -> tuple[np.ndarray, dict]:
    slots = math.ceil(clip_frames / stride_frames) if reset == "window" else 1
    state = step.zero_state(slots)
    decisions = set(ends.tolist())
    out: list[np.ndarray] = []
    norm_max, norm_sum = 0.0, 0.0
    frames = len(features) if len(ends) == 0 else int(ends[-1]) + 1
    bar = tqdm(range(frames), desc="detect: streaming", unit="frame", disable=not progress or None)
    for t in bar:
        if reset == "window" and t % stride_frames == 0:
            state[(t // stride_frames) % slots] = 0.0  # window t // stride starts here
        elif reset == "decay":
            state *= decay
        x_t = np.broadcast_to(features[t], (slots, features.shape[1])).copy()
        state, logits = step(x_t, state)
        state = np.array(state, dtype=np.float32)  # writable (the next reset writes into it)
        norm = float(np.abs(state).max())
        norm_max, norm_sum = max(norm_max, norm), norm_sum + norm
        if t in decisions:
            start = t - clip_frames + 1  # the window that ends here started at this frame
            slot = (start // stride_frames) % slots if reset == "window" else 0
            out.append(np.asarray(logits[slot]))
    stats = {"state_abs_max": norm_max, "state_abs_mean": norm_sum / max(frames, 1)}
    return (np.stack(out) if out else np.zeros((0, 0), np.float32)), stats
