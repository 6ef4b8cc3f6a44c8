"""``edge-str data info|synth|fetch``: inspect, make or get the data sets."""

from __future__ import annotations

import argparse
import json
import sys

from edge_str.errors import EdgeStrError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="inspect, synthesise or fetch data sets")
    commands = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    info = commands.add_parser("info", help="print the summary of a data set as JSON")
    info.add_argument("task", choices=["google12", "har2", "har6"])
    info.add_argument("--data", required=True, metavar="DIR", help="the data set's folder")
    info.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a data setting (repeatable), e.g. --set silence_percentage=5",
    )
    info.add_argument("--cache-dir", metavar="DIR", help="feature cache (default $EDGE_STR_CACHE)")
    info.set_defaults(func=run_info)

    synth = commands.add_parser("synth", help="write a small demo data set in the real layout")
    synth.add_argument("task", choices=["google12", "har2"])
    synth.add_argument("--out", required=True, metavar="DIR", help="new folder for the data")
    synth.add_argument("--seed", type=int, default=0, help="same seed, same data (default 0)")
    synth.add_argument(
        "--per-word", type=int, metavar="N", help="google12: clips per command word (default 100)"
    )
    synth.add_argument(
        "--windows",
        type=int,
        metavar="N",
        help="har2: windows per subject and activity (default 8)",
    )
    synth.add_argument(
        "--stream",
        action="store_true",
        help="google12: instead of a tree, one long WAV (--out FILE.wav) of words at known "
        "times over noise, with its ground truth FILE.csv (time_s,label)",
    )
    synth.add_argument(
        "--minutes", type=float, default=1.0, help="--stream: length of the recording (1)"
    )
    synth.set_defaults(func=run_synth)

    fetch = commands.add_parser("fetch", help="download the data set, or unpack a local archive")
    fetch.add_argument("task", choices=["google12", "har2"])
    fetch.add_argument("--out", required=True, metavar="DIR", help="folder for the data")
    fetch.add_argument(
        "--archive", metavar="FILE", help="unpack this archive instead of downloading"
    )
    fetch.add_argument("--url", help="download from this URL (a mirror) instead of the official")
    fetch.set_defaults(func=run_fetch)


def run_info(args: argparse.Namespace) -> int:
    from edge_str.data import DataConfig, load_task

    config = DataConfig().with_overrides(args.set)
    if args.cache_dir:
        config = DataConfig.from_dict({**config.to_dict(), "cache_dir": args.cache_dir})
    data = load_task(args.task, args.data, config)
    summary = data.summary()
    print(json.dumps(summary, indent=2))
    counts = " / ".join(f"{summary['splits'][s]['examples']} {s}" for s in ("train", "val", "test"))
    shape = "x".join(str(n) for n in data.input_shape)
    cache = "cache reused" if summary.get("cache", {}).get("reused") else "cache written"
    print(
        f"{data.task} data in {summary['data_dir']}: {counts} examples, "
        f"{len(data.class_names)} classes, input {shape} ({cache})",
        file=sys.stderr,
    )
    return 0


def run_synth(args: argparse.Namespace) -> int:
    if args.stream:
        return _run_synth_stream(args)
    if args.task == "google12":
        if args.windows is not None:
            raise EdgeStrError("--windows is for har2; google12 takes --per-word")
        from edge_str.data.synth_google12 import DEFAULT_PER_WORD, synth_google12

        result = synth_google12(
            args.out, seed=args.seed, per_word=args.per_word or DEFAULT_PER_WORD
        )
        print(
            f"wrote synthetic google12 data to {result['out']}: {result['clips']} clips by "
            f"{result['speakers']} espeak-ng speakers ({result['val_speakers']} validation, "
            f"{result['test_speakers']} test), {result['background_recordings']} noise recordings"
        )
    else:
        if args.per_word is not None:
            raise EdgeStrError("--per-word is for google12; har2 takes --windows")
        from edge_str.data.synth_har import DEFAULT_WINDOWS, synth_har

        result = synth_har(args.out, seed=args.seed, windows=args.windows or DEFAULT_WINDOWS)
        print(
            f"wrote synthetic UCI HAR data to {result['out']}: {result['train_windows']} train / "
            f"{result['test_windows']} test windows of {result['subjects']} simulated subjects"
        )
    return 0


def _run_synth_stream(args: argparse.Namespace) -> int:
    if args.task != "google12" or args.per_word is not None or args.windows is not None:
        raise EdgeStrError("--stream is for google12 and takes --minutes, not --per-word/--windows")
    from edge_str.data.synth_stream import synth_stream

    result = synth_stream(args.out, minutes=args.minutes, seed=args.seed)
    print(
        f"wrote a {result['seconds']:.0f} s synthetic google12 stream to {result['wav']}: "
        f"{result['words']} words ({result['keywords']} command words) at the times in "
        f"{result['truth']}"
    )
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from edge_str.data.fetch import fetch

    result = fetch(args.task, args.out, archive=args.archive, url=args.url)
    if args.task == "google12":
        what = f"{result['clips']} clips in {result['words']} word folders"
    else:
        what = f"{result['train_windows']} train / {result['test_windows']} test windows"
    print(f"{args.task} data {result['action']} in {result['data_dir']}: {what}")
    return 0
