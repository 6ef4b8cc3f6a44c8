"""Time Google-12 loading: first load (decode + features + cache write), cached load, and one
epoch of augmented training batches; figures per 1,000 examples.

    python -m benchmarks.data_load --data DIR            # an existing Speech Commands tree
    python -m benchmarks.data_load --synth-per-word 100  # make a synth tree first (espeak-ng)

Each run uses a fresh temporary cache folder. Prints one JSON object; ``measure()`` returns it
(``inference.py`` calls it for its feature-extraction figures).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from edge_str.data import DataConfig, load_task


def measure(
    data_dir: Path | None = None, synth_per_word: int | None = None, batch_size: int = 100
) -> dict:
    """Time the loads of ``data_dir``, or of a synth tree of ``synth_per_word`` clips per word
    made first in a temporary folder (default 100); returns the figures ``main`` prints."""
    with tempfile.TemporaryDirectory() as tmp:
        source = data_dir
        synth_s = None
        if source is None:
            from edge_str.data.synth_google12 import synth_google12

            source = Path(tmp) / "synth"
            start = time.perf_counter()
            synth_google12(source, seed=0, per_word=synth_per_word or 100)
            synth_s = time.perf_counter() - start
        config = DataConfig(cache_dir=str(Path(tmp) / "cache"))
        start = time.perf_counter()
        data = load_task("google12", source, config)
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        cached = load_task("google12", source, config)
        cached_s = time.perf_counter() - start
        assert cached.summary()["cache"]["reused"]
        examples = sum(data.num_examples(s) for s in ("train", "val", "test"))
        silence = sum(data.summary()["splits"][s]["per_class"]["_silence_"] for s in ("train",
                      "val", "test"))  # fmt: skip
        start = time.perf_counter()
        for _ in cached.train_batches(epoch=0, batch_size=batch_size, seed=0):
            pass
        epoch_s = time.perf_counter() - start
        train = cached.num_examples("train")
    return {
        "data_dir": str(data_dir) if data_dir else f"synth --per-word {synth_per_word}",
        "synth_s": None if synth_s is None else round(synth_s, 2),
        "examples": examples,
        "decoded_wavs": examples - silence,
        "first_load_s": round(first_s, 3),
        "first_load_s_per_1000": round(first_s / examples * 1000, 3),
        "cached_load_s": round(cached_s, 3),
        "cached_load_s_per_1000": round(cached_s / examples * 1000, 3),
        "augmented_epoch_s_per_1000": round(epoch_s / train * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="Speech Commands tree to load")
    parser.add_argument("--synth-per-word", type=int, help="synthesise a tree of this size first")
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    result = measure(args.data, args.synth_per_word, args.batch_size)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
