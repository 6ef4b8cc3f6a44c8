"""Load a trained model (a run folder or an exported ONNX file) for inference on audio.

    from edge_str import load_predictor
    predictor = load_predictor("runs/kws")            # or "kws.onnx", "kws.step.onnx"
    predictor.top("yes.wav")                          # [("yes", 0.97), ("no", 0.01), ...]
    predictor.probabilities(samples, sample_rate=8000)  # (C,) for a waveform array

The front end (sample rate, log-mel settings) comes from the run's config.json or the ONNX
file's metadata; the normaliser is part of the model (its buffers, or the graph). A run is
computed by its PyTorch model; an ONNX file by onnxruntime.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch

from edge_str.errors import EdgeStrError
from edge_str.inference.frontend import METADATA_KEY, FrontEnd

Audio = str | Path | np.ndarray | torch.Tensor

# One streaming step of a recurrent model: (x_t (B, F) raw features, state (B, H)) ->
# (next state (B, H), logits (B, C)); numpy float32 in and out.
StepFunction = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class StreamStep:
    """A model's single-step form: the state it carries starts at zeros((B, hidden))."""

    def __init__(self, step: StepFunction, hidden: int, source: str) -> None:
        self.step = step
        self.hidden = hidden
        self.source = source  # what computes it: "torch" or the ONNX file

    def zero_state(self, batch: int) -> np.ndarray:
        return np.zeros((batch, self.hidden), np.float32)

    def __call__(self, x_t: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.step(x_t, state)


class Predictor:
    """Class probabilities for WAV files or waveforms, with the model's own front end."""

    def __init__(
        self,
        logits: Callable[[torch.Tensor], np.ndarray],
        class_names: list[str],
        front_end: FrontEnd,
        source: str,
        stream_step: Callable[[], StreamStep] | None = None,
    ) -> None:
        self._logits = logits
        self.class_names = list(class_names)
        self.front_end = front_end
        self.source = source
        self._stream_step = stream_step

    # ------------------------------------------------------------------ audio in
    def samples(self, audio: Audio, sample_rate: int | None = None) -> np.ndarray:
        """A WAV path, or an array (S,) / (S, channels) at ``sample_rate`` -> mono samples at
        the model's rate."""
        if isinstance(audio, str | Path):
            if sample_rate is not None:
                raise EdgeStrError(f"{audio}: sample_rate is read from the WAV file; omit it")
            return self.front_end.read(audio)
        if sample_rate is None:
            raise EdgeStrError("a waveform array needs its sample_rate")
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        return self.front_end.waveform(audio, sample_rate)

    def features(self, audio: Audio, sample_rate: int | None = None) -> torch.Tensor:
        """Raw log-mel features (frames, n_mels) of one clip, fitted to 1 s as in training."""
        return self.front_end.clip_features(self.samples(audio, sample_rate))

    # ------------------------------------------------------------------ predictions
    def logits(self, features: torch.Tensor) -> np.ndarray:
        """Raw features (N, frames, n_mels) -> logits (N, C)."""
        return self._logits(torch.as_tensor(features, dtype=torch.float32))

    def probabilities(self, audio: Audio, sample_rate: int | None = None) -> np.ndarray:
        """Softmax class probabilities (C,) of one clip."""
        return softmax(self.logits(self.features(audio, sample_rate)[None]))[0]

    def top(
        self, audio: Audio, sample_rate: int | None = None, k: int = 3
    ) -> list[tuple[str, float]]:
        """The ``k`` most probable classes of one clip, most probable first."""
        probs = self.probabilities(audio, sample_rate)
        order = np.argsort(-probs, kind="stable")[:k]
        return [(self.class_names[i], float(probs[i])) for i in order]

    def stream_step(self) -> StreamStep | None:
        """The model's single-step form (recurrent models), else None."""
        return self._stream_step() if self._stream_step else None


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def load_predictor(model: str | Path) -> Predictor:
    """A run folder made by ``edge-str train`` or an ``.onnx`` file made by ``edge-str export``."""
    path = Path(model)
    if path.suffix == ".onnx":
        return _onnx_predictor(path)
    if path.is_dir():
        return _run_predictor(path)
    if not path.exists():
        raise EdgeStrError(f"{path}: no such run folder or ONNX file")
    raise EdgeStrError(f"{path}: not a run folder or an .onnx file")


# ----------------------------------------------------------------------------- a run (torch)


def _run_predictor(run_dir: Path) -> Predictor:
    from edge_str.export.torch_onnx import torch_logits
    from edge_str.fastgrnn import FastGRNNClassifier
    from edge_str.run import load_trained_model

    info, model = load_trained_model(run_dir)
    if info.config.task != "google12":
        raise EdgeStrError(
            f"{run_dir}: a {info.config.task} run; prediction on audio needs a google12 run"
        )
    front_end = FrontEnd.from_data_config(info.config.data)

    def logits(x: torch.Tensor) -> np.ndarray:
        return torch_logits(model, x).numpy()

    step = None
    if isinstance(model, FastGRNNClassifier):
        step = partial(_torch_step, model)  # built on first use
    return Predictor(logits, info.class_names, front_end, str(run_dir), step)


def _torch_step(model) -> StreamStep:
    """The compacted model's step (``CompactFastGRNNStep``): what the ONNX step graph holds."""
    from edge_str.export.compact_model import CompactFastGRNNStep, compact_fastgrnn

    compact, _ = compact_fastgrnn(model)
    step = CompactFastGRNNStep(compact).eval()

    @torch.no_grad()
    def run(x_t: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, logits = step(torch.from_numpy(x_t), torch.from_numpy(state))
        return s.numpy(), logits.numpy()

    return StreamStep(run, compact.hidden_size, "torch")


# ----------------------------------------------------------------------------- an ONNX file


def _onnx_predictor(path: Path) -> Predictor:
    from edge_str.export.runtime import onnx_session, run_onnx

    if not path.is_file():
        raise EdgeStrError(f"{path}: no such ONNX file")
    session = _session(path, onnx_session)
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise EdgeStrError(
            f"{path}: no front-end settings in its metadata; re-export it with this version of "
            "`edge-str export` (or pass the run folder instead)"
        )
    front_end = FrontEnd.from_json(props[METADATA_KEY], str(path))
    try:
        class_names = json.loads(props["edge_str.class_names"])
    except (KeyError, json.JSONDecodeError):
        raise EdgeStrError(f"{path}: no class names in its metadata") from None

    def logits(x: torch.Tensor) -> np.ndarray:
        return run_onnx(path, x, session)

    kind = props.get("edge_str.graph", "")
    step = None
    if kind.startswith("step"):
        step = partial(_onnx_step, path, session)
    elif kind.startswith("sequence"):
        step = partial(_onnx_step, step_file_for(path), None)
    return Predictor(logits, class_names, front_end, str(path), step)


def step_file_for(path: Path) -> Path:
    """The step graph ``edge-str export --streaming`` writes beside a sequence graph."""
    name = path.name
    if name.endswith(".int8.onnx"):
        return path.with_name(name[: -len(".int8.onnx")] + ".step.int8.onnx")
    return path.with_name(name[: -len(".onnx")] + ".step.onnx")


def _session(path: Path, onnx_session):
    try:
        return onnx_session(path, threads=1)
    except Exception as error:  # onnxruntime raises its own types for a foreign/corrupt file
        text = " ".join(str(error).split())[:160]
        raise EdgeStrError(f"{path}: onnxruntime cannot load it ({text})") from None


def _onnx_step(path: Path, session) -> StreamStep:
    from edge_str.export.runtime import onnx_session

    if session is None:
        if not path.is_file():
            raise EdgeStrError(
                f"{path}: no step graph beside the sequence graph; export with "
                "`edge-str export RUN --out FILE.onnx --streaming` for streaming detection"
            )
        session = _session(path, onnx_session)
    inputs = session.get_inputs()
    if len(inputs) != 2:
        raise EdgeStrError(f"{path}: not a single-step graph (inputs x_t, h)")
    x_name, h_name = inputs[0].name, inputs[1].name
    fixed = inputs[0].shape[0] if isinstance(inputs[0].shape[0], int) else None
    hidden = int(inputs[1].shape[1])

    def run(x_t: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if fixed is None or fixed == len(x_t):
            s, logits = session.run(None, {x_name: x_t, h_name: state})
            return s, logits
        out_s, out_logits = [], []
        for start in range(0, len(x_t), fixed):  # the file's fixed batch, the last one padded
            xs, hs = x_t[start : start + fixed], state[start : start + fixed]
            n = len(xs)
            if n < fixed:
                xs = np.concatenate([xs, np.zeros((fixed - n, xs.shape[1]), np.float32)])
                hs = np.concatenate([hs, np.zeros((fixed - n, hidden), np.float32)])
            s, logits = session.run(None, {x_name: xs, h_name: hs})
            out_s.append(s[:n])
            out_logits.append(logits[:n])
        return np.concatenate(out_s), np.concatenate(out_logits)

    return StreamStep(run, hidden, str(path))
