"""Google-12 loader: decode once, cache, serve clean features and augmented training batches.

The first load decodes every chosen clip (tqdm progress bar), fits it to 1 s, cuts the silence
slices from the background noise and computes clean log-mel features; the waveforms (int16) and
features go to the on-disk cache. Later loads with the same files and settings read the cache
and decode nothing. Augmented training batches are made from the cached training waveforms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from edge_str.data import audio
from edge_str.data.augment import WaveAugmenter
from edge_str.data.cache import ArrayCache, cache_key, describe, file_stats
from edge_str.data.config import DataConfig
from edge_str.data.features import FEATURE_VERSION, extract, log_mel_for
from edge_str.data.speech_commands import (
    COMMAND_WORDS,
    GOOGLE12_CLASSES,
    SILENCE,
    SPLITS,
    Layout,
    SplitIndex,
    build_index,
    scan_layout,
)
from edge_str.data.task import TaskData
from edge_str.errors import EdgeStrError

# A background recording at least this many clips long is cut in time into 80% / 10% / 10%
# regions, so validation/test silence is never audio the model trained on; shorter ones are
# shared by all splits.
REGION_SPLIT_MIN_CLIPS = 10
MAX_LISTED_SKIPS = 20
# Bump when the arrays written to the cache change; it is part of the key.
CACHE_VERSION = 3
CACHED = [f"{s}_{a}" for s in SPLITS for a in ("features", "labels", "sources")] + [
    "train_waves",
    "noise",
    "noise_bounds_train",
]


def load_google12(data_dir: str | Path, config: DataConfig) -> TaskData:
    layout = scan_layout(data_dir)
    index = build_index(layout, config)
    for split in SPLITS:
        if not any(GOOGLE12_CLASSES[label] in COMMAND_WORDS for _, label in index[split].clips):
            rule = "the list files" if layout.has_lists else "the speaker-hash rule"
            raise EdgeStrError(
                f"{layout.root}: the {split} split has no command-word clips under {rule}; "
                "the tree is too small or its list files do not match its clips"
            )
    if _needs_background(config) and not layout.background:
        raise EdgeStrError(
            f"{layout.root / '_background_noise_'}: no background-noise .wav recordings; they "
            "are needed for _silence_ examples and noise augmentation (or set "
            "silence_percentage=0 and background_frequency=0)"
        )
    key = cache_key(
        {
            "task": "google12",
            "root": str(layout.root.resolve()),
            "files": file_stats(layout.root, layout.all_files()),
            "settings": config.google12_cache_settings(),
            "feature_version": FEATURE_VERSION,
            "cache_version": CACHE_VERSION,
        }
    )
    cache = ArrayCache(config.resolved_cache_dir(), "google12", layout.root)
    loaded = cache.load(key, required=CACHED)
    reused = loaded is not None
    if loaded is None:
        arrays, info = _extract(layout, index, config)
        cache.save(key, arrays, info)
    else:
        arrays, info = loaded
    splits = {
        s: (torch.from_numpy(arrays[f"{s}_features"]), torch.from_numpy(arrays[f"{s}_labels"]))
        for s in SPLITS
    }
    augment = None
    mixes_noise = config.background_frequency > 0 and config.background_volume > 0
    if config.time_shift_samples > 0 or mixes_noise:  # else: batches of the clean features
        augment = WaveAugmenter(
            arrays["train_waves"],
            arrays["noise"],
            arrays["noise_bounds_train"] if mixes_noise else np.zeros((0, 2), np.int64),
            log_mel_for(config),
            config.time_shift_samples,
            config.background_frequency,
            config.background_volume,
        )
    info = {
        "data_dir": str(layout.root),
        **info,
        "cache": {"folder": describe(cache.entry(key)), "reused": reused},
    }
    sources = {s: arrays[f"{s}_sources"].tolist() for s in SPLITS}
    return TaskData(
        "google12", GOOGLE12_CLASSES, splits, augment=augment, info=info, sources=sources
    )


def _needs_background(config: DataConfig) -> bool:
    augments = config.background_frequency > 0 and config.background_volume > 0
    return config.silence_percentage > 0 or augments


def _extract(
    layout: Layout, index: dict[str, SplitIndex], config: DataConfig
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    clip = config.clip_samples
    stats = {"resampled": 0, "mixed_down": 0}
    skipped: list[str] = []

    def decode(rel: str) -> np.ndarray | None:
        try:
            decoded = audio.read_wav(
                layout.root / rel, config.sample_rate, config.on_other_sample_rate
            )
        except audio.BadWavError as error:
            if not config.skip_bad_wavs:
                raise
            skipped.append(str(error))
            return None
        stats["resampled"] += decoded.resampled
        stats["mixed_down"] += decoded.mixed_down
        return decoded.samples

    # Background noise: whole recordings, concatenated; per split the [start, end) regions.
    decoded = [(rel, decode(rel)) for rel in layout.background]
    background_names = [rel for rel, r in decoded if r is not None]
    recordings = [audio.fit_length(r, max(len(r), clip)) for _, r in decoded if r is not None]
    if _needs_background(config) and not recordings:
        raise EdgeStrError(f"{layout.root / '_background_noise_'}: no readable recordings")
    noise = audio.to_int16(np.concatenate(recordings)) if recordings else np.zeros(0, np.int16)
    bounds = _noise_regions([len(r) for r in recordings], clip)

    extractor = log_mel_for(config)
    arrays: dict[str, np.ndarray] = {"noise": noise}
    counts = {}
    total = sum(len(index[s].clips) for s in SPLITS)
    with tqdm(total=total, desc="google12: decoding clips", unit="clip", disable=None) as bar:
        for number, split in enumerate(SPLITS):
            waves, labels, sources = [], [], []
            for rel, label in index[split].clips:
                samples = decode(rel)
                bar.update()
                if samples is not None:
                    waves.append(audio.to_int16(audio.fit_length(samples, clip)))
                    labels.append(label)
                    sources.append(rel)
            rng = np.random.default_rng([config.seed, 2, number])  # same slices every run
            for _ in range(index[split].num_silence if recordings else 0):
                which = int(rng.integers(len(recordings)))
                region = bounds[split][which]
                start = int(rng.integers(region[0], region[1] - clip + 1))
                gain = rng.uniform(0.0, 1.0)
                waves.append(audio.to_int16(audio.from_int16(noise[start : start + clip]) * gain))
                labels.append(GOOGLE12_CLASSES.index(SILENCE))
                offset = start - sum(len(r) for r in recordings[:which])  # within the recording
                sources.append(f"{background_names[which]}@{offset}x{gain:.3f}")
            wave_array = np.stack(waves) if waves else np.zeros((0, clip), np.int16)
            features = extract(extractor, audio.from_int16(wave_array))
            arrays[f"{split}_features"] = features.numpy()
            arrays[f"{split}_labels"] = np.asarray(labels, dtype=np.int64)
            arrays[f"{split}_sources"] = np.asarray(sources, dtype=np.str_)
            arrays[f"noise_bounds_{split}"] = np.asarray(bounds[split], np.int64).reshape(-1, 2)
            if split == "train":
                arrays["train_waves"] = wave_array  # only training clips are augmented
            counts[split] = {"unknown_available": index[split].unknown_available}
    info = {
        "split_rule": "list files" if layout.has_lists else "speaker hash (10%/10% by default)",
        "word_folders": len(layout.words),
        "clips_in_tree": layout.num_clips,
        "background_recordings": len(recordings),
        "resampled_wavs": stats["resampled"],
        "mixed_down_wavs": stats["mixed_down"],
        "skipped_bad_wavs": len(skipped),
        "skipped_files": skipped[:MAX_LISTED_SKIPS],
        "skipped_missing_listed": sum(index[s].missing_listed for s in SPLITS),
        "unknown_available": {s: counts[s]["unknown_available"] for s in SPLITS},
    }
    return arrays, info


def _noise_regions(lengths: list[int], clip: int) -> dict[str, list[tuple[int, int]]]:
    """Per split, the [start, end) range of each recording inside the concatenated noise."""
    regions: dict[str, list[tuple[int, int]]] = {s: [] for s in SPLITS}
    offset = 0
    for length in lengths:
        if length >= REGION_SPLIT_MIN_CLIPS * clip:
            cut1, cut2 = offset + length * 8 // 10, offset + length * 9 // 10  # each >= 1 s
            parts = {"train": (offset, cut1), "val": (cut1, cut2), "test": (cut2, offset + length)}
        else:
            parts = dict.fromkeys(SPLITS, (offset, offset + length))
        for split in SPLITS:
            regions[split].append(parts[split])
        offset += length
    return regions
