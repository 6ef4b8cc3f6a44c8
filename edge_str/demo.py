"""`make demo`: the main job end to end on demo data it makes itself.

Makes a Speech Commands-layout tree with espeak-ng (when absent), trains an STR low-rank FastGRNN
and the same FastGRNN dense for the same epochs, evaluates both, exports the STR model to ONNX,
and prints a table: accuracy, learned ranks against full rank, parameters and bytes. It ends
with keyword detection on a one-minute synthetic stream through the exported step graph: false
accepts per hour and false reject rate beside the accuracy, and the pictures it wrote.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edge_str.cli import main as cli_main
from edge_str.commands.evaluate import evaluate_run
from edge_str.errors import EdgeStrError
from edge_str.run import FINAL_FILE

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo_google12.yaml"
STREAM_MINUTES = 1


def _step(title: str, argv: list[str]) -> None:
    print(f"\n== {title}: edge-str {' '.join(argv)}", flush=True)
    code = cli_main(argv)
    if code != 0:
        raise SystemExit(code)


def _run(out: Path, name: str, data: Path, epochs: int | None, extra: list[str]) -> dict:
    run_dir = out / "runs" / name
    if (run_dir / FINAL_FILE).is_file():
        print(f"\n== {name}: already trained in {run_dir}")
    else:
        argv = ["train", "--config", str(DEMO_CONFIG), "--data", str(data), "--out", str(run_dir)]
        if epochs is not None:
            argv += ["--epochs", str(epochs)]
        if (run_dir / "last.pt").is_file():
            argv.append("--resume")
        _step(f"train {name}", argv + extra)
    return json.loads((run_dir / FINAL_FILE).read_text())


def table(rows: list[tuple[str, dict]], exported: dict) -> str:
    """Markdown table of the trained models, then what the ONNX export holds."""
    lines = [
        "| model | test acc | rank W | rank U | params | bytes (fp32) | MACs/step |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, final in rows:
        ranks, full = final["ranks"], final["full_ranks"]
        lines.append(
            f"| {name} | {final['test_accuracy']:.2%} | {ranks['W']}/{full['W']} | "
            f"{ranks['U']}/{full['U']} | {final['params']:,} | {final['bytes']:,} | "
            f"{final['macs_per_step']:,} |"
        )
    accuracy = exported["accuracy"].get("onnx")
    lines += [
        "",
        f"ONNX {exported['onnx']}: {exported['file_bytes']['onnx']:,} bytes on disk, "
        f"{exported['weight_bytes']['float32']:,} bytes of weights "
        f"(dense model: {exported['params_dense'] * 4:,}), "
        f"{exported['macs_per_step']:,} MACs/step (dense: {exported['macs_per_step_dense']:,}), "
        f"max |onnxruntime - torch| = {exported['max_abs_diff']:.1e}"
        + (f", test accuracy in onnxruntime {accuracy:.2%}" if accuracy is not None else ""),
        f"report: {Path(exported['onnx']).with_suffix('.json')}",
    ]
    return "\n".join(lines)


def _detect(out: Path, onnx_path: Path) -> dict:
    """Keyword detection on a one-minute synthetic stream, through the exported step graph."""
    from edge_str.inference import detect_keywords, load_predictor

    wav = out / "stream.wav"
    if not wav.with_suffix(".csv").is_file():
        argv = ["data", "synth", "google12", "--stream", "--minutes", str(STREAM_MINUTES)]
        _step("make a one-minute test stream", argv + ["--out", str(wav)])
    truth, det_png = wav.with_suffix(".csv"), wav.with_suffix(".det.png")
    print(
        f"\n== detect: edge-str detect {onnx_path} {wav} --truth {truth}  "
        f"(step graph {onnx_path.with_suffix('.step.onnx').name})",
        flush=True,
    )
    return detect_keywords(load_predictor(onnx_path), wav, truth=truth, det_png=det_png)


def detection_summary(report: dict, detection: dict) -> str:
    ev = detection["evaluation"]
    return "\n".join(
        [
            f"test accuracy {report['accuracy']:.2%} on clips; on a "
            f"{detection['duration_s']:.0f} s stream ({ev['keyword_truths']} command words) "
            f"at threshold {detection['settings']['threshold']:g}: FA/h {ev['fa_per_hour']:.1f}, "
            f"FRR {ev['frr']:.1%} (matched {ev['matched']}, wrong {ev['wrong']}, "
            f"false positives {ev['false_positives']}, missed {ev['missed']})",
            f"pictures: confusion matrix {report['confusion_png']}, DET curve {ev['det_png']}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="edge_str end-to-end demo")
    parser.add_argument("--out", default="demo", help="folder for data, runs and exports")
    parser.add_argument("--epochs", type=int, help="override the demo config's epochs")
    args = parser.parse_args(argv)
    out = Path(args.out)
    data = out / "speech_commands"
    start = time.perf_counter()
    try:
        if not (data / "testing_list.txt").is_file():
            _step("make demo data", ["data", "synth", "google12", "--out", str(data)])
        _step("data summary", ["data", "info", "google12", "--data", str(data)])
        str_final = _run(out, "fastgrnn_str", data, args.epochs, [])
        dense_final = _run(out, "fastgrnn_dense", data, args.epochs, ["--rank-mode", "dense"])
        run_dir = out / "runs" / "fastgrnn_str"
        print(f"\n== evaluate: edge-str evaluate {run_dir}", flush=True)
        report = evaluate_run(run_dir)
        print(
            f"test accuracy {report['accuracy']:.2%}, "
            f"macro F1 {report['macro_avg']['f1-score']:.3f} over {report['examples']} clips; "
            f"per-class report in {run_dir / 'eval.json'}, confusion matrix "
            f"{report['confusion_png']}"
        )
        onnx_path = out / "fastgrnn_str.onnx"
        export_argv = ["export", str(run_dir), "--out", str(onnx_path), "--int8", "--streaming"]
        _step("export", export_argv)
        exported = json.loads(onnx_path.with_suffix(".json").read_text())
        detection = _detect(out, onnx_path)
    except EdgeStrError as error:
        print(f"edge-str demo: error: {error}", file=sys.stderr)
        return 2
    print("\n" + table([("STR low rank", str_final), ("dense", dense_final)], exported))
    print("\n" + detection_summary(report, detection))
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s; outputs under {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
