"""``edge-str data synth har2``: a demo-sized tree in the UCI HAR Dataset layout.

Simulated waist-worn phone, 50 Hz, windows of 128 samples (2.56 s) with 50% overlap, 30 subjects
(the real data set's 9 test subjects go to ``test/``). Signals are in g (accelerometer) and
rad/s (gyroscope), x pointing up along the body as in the real data:

* walking activities: periodic gait at the subject's cadence (upstairs slower, downstairs
  faster), a vertical component with harmonics (stronger impacts downstairs), forward and
  lateral sway at stride frequency, matching gyroscope rotation, body lean on the stairs;
* static activities: gravity orientation tells them apart (standing upright, sitting tilted
  back, laying on the back), plus breathing sway and sensor noise;
* per subject: cadence, gait strength, how the phone sits (a small rotation), noise level.

``total_acc`` = rotated gravity + body acceleration; ``body_acc`` = the body part. Values are
written in the data set's own format (`` 2.8858451e-001``: 3-digit exponents, 16 characters
per value).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_str.data.har import ACTIVITIES, SIGNALS, WINDOW
from edge_str.data.staging import check_free, staged_folder
from edge_str.errors import EdgeStrError

RATE = 50.0
STRIDE = WINDOW // 2  # 50% overlap, as in the real data set
SUBJECTS = 30
TEST_SUBJECTS = (2, 4, 9, 10, 12, 13, 18, 20, 24)  # the real data set's test subjects
DEFAULT_WINDOWS = 8  # per subject and activity: 1,440 windows in all

# Per activity: (cadence factor, vertical amplitude in g, impact harmonic, forward lean in
# degrees, gyro amplitude in rad/s); static ones have cadence 0.
GAITS = {
    1: (1.00, 0.28, 0.08, 0.0, 0.6),  # WALKING
    2: (0.82, 0.22, 0.06, 12.0, 0.8),  # WALKING_UPSTAIRS
    3: (1.12, 0.42, 0.20, -6.0, 0.7),  # WALKING_DOWNSTAIRS
}
# Static postures: tilt of the body's long axis from vertical (degrees, backwards) and sideways.
POSTURES = {4: (35.0, 8.0), 5: (6.0, 3.0), 6: (84.0, 15.0)}  # SITTING, STANDING, LAYING


def _rotation(rng: np.random.Generator, degrees: float) -> np.ndarray:
    """A random rotation by up to ``degrees`` about a random axis (Rodrigues)."""
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0, degrees))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def simulate(activity: int, windows: int, subject: dict, rng: np.random.Generator) -> np.ndarray:
    """``windows`` overlapping windows of one activity bout: [windows, 128, 9]."""
    n = (windows + 1) * STRIDE
    t = np.arange(n) / RATE
    body = np.zeros((n, 3))  # x up, y left, z forward
    gyro = np.zeros((n, 3))
    if activity in GAITS:
        factor, vertical, impact, lean, turn = GAITS[activity]
        cadence = subject["cadence"] * factor * rng.uniform(0.95, 1.05)  # steps per second
        drift = 1 + 0.03 * np.sin(2 * np.pi * t / rng.uniform(6, 12))  # cadence wanders a bit
        phase = 2 * np.pi * cadence * np.cumsum(drift) / RATE + rng.uniform(0, 2 * np.pi)
        s = subject["strength"]
        body[:, 0] = s * (vertical * np.sin(phase) + impact * np.sin(3 * phase + 0.7))
        body[:, 1] = s * 0.10 * np.sin(phase / 2)  # lateral sway at stride frequency
        body[:, 2] = s * (0.12 * np.sin(phase + np.pi / 2) + 0.4 * impact * np.sin(2 * phase))
        gyro[:, 0] = s * 0.3 * turn * np.sin(phase / 2 + 0.3)
        gyro[:, 1] = s * turn * np.sin(phase + 1.1)
        gyro[:, 2] = s * 0.5 * turn * np.sin(phase / 2 + 2.0)
        tilt, side = lean, 0.0
    else:
        tilt, side = POSTURES[activity]
        tilt += rng.normal(0, 4)
        side += rng.normal(0, 4)
        breath = 2 * np.pi * rng.uniform(0.2, 0.35) * t
        body[:, 2] = 0.006 * np.sin(breath)
        gyro[:, 1] = 0.01 * np.cos(breath)
    a, b = np.deg2rad(tilt), np.deg2rad(side)
    gravity = np.array([np.cos(a) * np.cos(b), np.sin(b), -np.sin(a) * np.cos(b)])
    noise = subject["noise"]
    body = body + rng.normal(0, noise, body.shape)
    gyro = gyro + rng.normal(0, 2 * noise, gyro.shape)
    mount = subject["mount"]  # how the phone sits on this subject: rotate the sensor frame
    body, gyro, gravity = body @ mount.T, gyro @ mount.T, mount @ gravity
    total = body + gravity
    signals = np.concatenate([body, gyro, total], axis=1)  # [n, 9] in SIGNALS order
    starts = np.arange(windows) * STRIDE
    return np.stack([signals[s : s + WINDOW] for s in starts])


def format_row(values: np.ndarray) -> str:
    """`` 2.8858451e-001 -2.0294171e-002 ...``: the data set's 3-digit-exponent format."""
    parts = []
    for value in values:
        mantissa, exponent = f"{value:.7e}".split("e")
        parts.append(f" {mantissa + 'e' + format(int(exponent), '+04d'):>15}")
    return "".join(parts)


def synth_har(out: str | Path, seed: int = 0, windows: int = DEFAULT_WINDOWS) -> dict:
    """Write the tree to ``out`` (which must not exist or be empty); returns a short summary."""
    if windows < 1:
        raise EdgeStrError(f"windows per subject and activity must be >= 1, got {windows}")
    target = Path(out).expanduser()
    check_free(target)
    rows: dict[str, list[tuple[int, int, np.ndarray]]] = {"train": [], "test": []}
    for subject_id in range(1, SUBJECTS + 1):
        rng = np.random.default_rng([seed, 10, subject_id])
        subject = {
            "cadence": rng.uniform(1.6, 2.1),
            "strength": rng.uniform(0.75, 1.25),
            "noise": rng.uniform(0.008, 0.025),
            "mount": _rotation(rng, 12.0),
        }
        split = "test" if subject_id in TEST_SUBJECTS else "train"
        for activity in rng.permutation(np.arange(1, 7)):
            bout = simulate(int(activity), windows, subject, rng)
            rows[split].extend((int(activity), subject_id, w) for w in bout)
    with staged_folder(target) as staging:
        for split, entries in rows.items():
            folder = staging / split
            (folder / "Inertial Signals").mkdir(parents=True)
            (folder / f"y_{split}.txt").write_text("".join(f"{a}\n" for a, _, _ in entries))
            (folder / f"subject_{split}.txt").write_text("".join(f"{s}\n" for _, s, _ in entries))
            for channel, name in enumerate(SIGNALS):
                text = "".join(format_row(w[:, channel]) + "\n" for _, _, w in entries)
                (folder / "Inertial Signals" / f"{name}_{split}.txt").write_text(text)
        labels = "".join(f"{i} {name}\n" for i, name in enumerate(ACTIVITIES, start=1))
        (staging / "activity_labels.txt").write_text(labels)
        (staging / "README.txt").write_text(
            f"Synthetic UCI HAR Dataset-layout data made by `edge-str data synth har2 --seed "
            f"{seed}`: simulated 50 Hz inertial windows of {SUBJECTS} subjects.\n"
            "Demo data only: not the real UCI HAR data set.\n"
        )
    return {
        "out": str(target),
        "train_windows": len(rows["train"]),
        "test_windows": len(rows["test"]),
        "subjects": SUBJECTS,
    }
