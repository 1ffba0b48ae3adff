#!/usr/bin/env python3
"""Side-by-side latency of effdense, ONNX Runtime and OpenVINO on the same machine, in one run.

Exports the reference architectures to ONNX (timm tf_efficientnet_lite0 @224, effdet
tf_efficientdet_d0 @512 -- raw class / box outputs --, segmentation_models_pytorch DeepLabV3Plus
efficientnet-b0 @512; with --models, also tf_efficientdet_d2 @768 and DeepLabV3Plus
efficientnet-b4 @512; random weights), then alternates, for each model and thread count, each
engine in its own process: ONNX Runtime (CPU provider, intra-op threads = T, inter-op 1,
sequential, all graph optimisations), OpenVINO in f32 and in bf16 (CPU plugin,
INFERENCE_NUM_THREADS = T, NUM_STREAMS 1, LATENCY hint, INFERENCE_PRECISION_HINT; bf16 needs
AVX512_BF16 or AMX, else OpenVINO runs f32 and the row says so) on the same ONNX files, and
`effdense bench --json`. Reports medians, p90s, the ratios effdense / ORT and effdense /
OpenVINO bf16, and peak resident memory. Network forward only, batch 1.

    pip install torch timm effdet segmentation-models-pytorch onnx onnxscript onnxruntime openvino
    swift build -c release
    python scripts/bench_vs_onnxruntime.py [--threads 1 2] [--rounds 3] [--runs 30] [--models all] [--engines ort ov-f32 ov-bf16] [--precision bf16]
                                           [--markdown OUT.md]
"""
import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = [  # (label, effdense bench arguments, input side)
    ("tf_efficientnet_lite0", ["--model", "tf_efficientnet_lite0"], 224),
    ("tf_efficientdet_d0", ["--model", "tf_efficientdet_d0"], 512),
    ("deeplabv3plus-efficientnet-b0", ["--model", "deeplabv3plus", "--encoder", "efficientnet-b0"], 512),
]
BIGGER_MODELS = [
    ("tf_efficientdet_d2", ["--model", "tf_efficientdet_d2"], 768),
    ("deeplabv3plus-efficientnet-b4", ["--model", "deeplabv3plus", "--encoder", "efficientnet-b4"], 512),
]

ORT_RUNNER = r'''
import json, resource, sys, time
import numpy as np
import onnxruntime as ort
path, threads, runs, side = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((1, 3, side, side)).astype(np.float32)
name = session.get_inputs()[0].name
for _ in range(3):
    session.run(None, {name: x})
times = []
for _ in range(runs):
    start = time.perf_counter()
    session.run(None, {name: x})
    times.append((time.perf_counter() - start) * 1000)
times.sort()
# VmHWM, not ru_maxrss: the latter inherits the parent's peak across fork + exec.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"median_ms": times[len(times) // 2], "p90_ms": times[int((len(times) - 1) * 0.9)],
                  "peak_rss_mb": hwm / 1024, "version": ort.__version__}))
'''

OPENVINO_RUNNER = r'''
import json, sys, time
import numpy as np
import openvino as ov
path, threads, runs, side, precision = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
core = ov.Core()
compiled = core.compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                                            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision})
request = compiled.create_infer_request()
x = np.random.default_rng(0).standard_normal((1, 3, side, side)).astype(np.float32)
for _ in range(3):
    request.infer({0: x})
times = []
for _ in range(runs):
    start = time.perf_counter()
    request.infer({0: x})
    times.append((time.perf_counter() - start) * 1000)
times.sort()
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"median_ms": times[len(times) // 2], "p90_ms": times[int((len(times) - 1) * 0.9)],
                  "peak_rss_mb": hwm / 1024, "version": ov.__version__,
                  "precision": compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()}))
'''


def export(folder, models):
    import torch
    import timm
    import segmentation_models_pytorch as smp
    from effdet import create_model

    class DetectionOutputs(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            classes, boxes = self.model(x)
            return tuple(classes) + tuple(boxes)

    builders = {
        "tf_efficientnet_lite0": lambda: timm.create_model("tf_efficientnet_lite0", pretrained=False),
        "tf_efficientdet_d0": lambda: DetectionOutputs(create_model("tf_efficientdet_d0", pretrained=False,
                                                                    pretrained_backbone=False, bench_task="")),
        "tf_efficientdet_d2": lambda: DetectionOutputs(create_model("tf_efficientdet_d2", pretrained=False,
                                                                    pretrained_backbone=False, bench_task="")),
        "deeplabv3plus-efficientnet-b0": lambda: smp.DeepLabV3Plus("efficientnet-b0", encoder_weights=None, classes=21),
        "deeplabv3plus-efficientnet-b4": lambda: smp.DeepLabV3Plus("efficientnet-b4", encoder_weights=None, classes=21),
    }
    paths = {}
    for (label, _, side) in models:
        path = folder / f"{label}.onnx"
        torch.onnx.export(builders[label]().eval(), torch.randn(1, 3, side, side), str(path), opset_version=17, dynamo=False)
        paths[label] = path
    return paths


def run_json(command):
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--models", choices=["three", "bigger", "all"] + [label for label, _, _ in MODELS + BIGGER_MODELS],
                        default="three",
                        help="three: Lite0, D0, DeepLabV3+ b0; bigger: D2 @768, DeepLabV3+ b4; all: both; or one model's label")
    parser.add_argument("--engines", nargs="+", choices=["ort", "ov-f32", "ov-bf16"], default=["ort", "ov-f32", "ov-bf16"])
    parser.add_argument("--effdense", default=str(ROOT / ".build/release/effdense"))
    parser.add_argument("--precision", nargs="+", choices=["f32", "bf16"], default=["f32"],
                        help="effdense's --precision; several run as separate engines in the same alternation")
    parser.add_argument("--markdown")
    args = parser.parse_args()
    groups = {"three": MODELS, "bigger": BIGGER_MODELS, "all": MODELS + BIGGER_MODELS}
    models = groups.get(args.models) or [model for model in MODELS + BIGGER_MODELS if model[0] == args.models]
    folder = pathlib.Path(tempfile.mkdtemp(prefix="effdense-onnx-"))
    paths = export(folder, models)
    engines = {"ort": lambda label, threads, side: [sys.executable, "-c", ORT_RUNNER, str(paths[label]), str(threads), str(args.runs), str(side)],
               "ov-f32": lambda label, threads, side: [sys.executable, "-c", OPENVINO_RUNNER, str(paths[label]), str(threads), str(args.runs), str(side), "f32"],
               "ov-bf16": lambda label, threads, side: [sys.executable, "-c", OPENVINO_RUNNER, str(paths[label]), str(threads), str(args.runs), str(side), "bf16"]}
    # effdense under each --precision is an engine of its own: "effdense" alone, or "effdense-f32", "effdense-bf16".
    ours = ["effdense"] if len(args.precision) == 1 else [f"effdense-{p}" for p in args.precision]
    rows = []
    for label, bench_args, side in models:
        for threads in args.threads:
            results = {engine: [] for engine in args.engines + ours}
            for _ in range(args.rounds):  # alternate, each in its own process
                for engine in args.engines:
                    results[engine].append(run_json(engines[engine](label, threads, side)))
                for precision, engine in zip(args.precision, ours):
                    results[engine].append(run_json([args.effdense, "bench", *bench_args, "--threads", str(threads), "--runs", str(args.runs),
                                                     "--precision", precision, "--json"]))
            med = lambda rs, k: sorted(r[k] for r in rs)[len(rs) // 2]
            row = {"model": label, "size": side, "threads": threads}
            for engine in ours:
                row[f"{engine}_pipeline_median_ms"] = med(results[engine], "pipeline_median_ms")
                row[f"{engine}_load_ms"] = med(results[engine], "load_ms")
            for engine, rs in results.items():
                row[engine] = {"median_ms": med(rs, "median_ms"), "p90_ms": med(rs, "p90_ms"), "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                               "version": rs[0].get("version"), "precision": rs[0].get("precision")}
            for mine in ours:
                for engine in args.engines:
                    row[f"{mine}/{engine}"] = row[mine]["median_ms"] / row[engine]["median_ms"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    versions = f"effdense --precision {' and '.join(args.precision)}; " + "; ".join(f"{engine} {rows[0][engine]['version']}" + (f" (runs {rows[0][engine]['precision']})" if rows[0][engine]["precision"] else "")
                         for engine in args.engines)
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {versions}; "
             f"{args.rounds} alternating rounds of {args.runs} runs, medians of medians; ms (p90).", "",
             "| model | input | threads | " + " | ".join(f"{e} ms" for e in args.engines + ours) + " | "
             + " | ".join(f"{m} / {e}" for m in ours for e in args.engines) + " | peak RSS " + " / ".join(args.engines + ours) + " MB |",
             "|---|---|---|" + "---|" * ((len(args.engines) + 1) * (len(ours) + 1))]
    for r in rows:
        cells = [f"{r[e]['median_ms']:.2f} ({r[e]['p90_ms']:.2f})" for e in args.engines + ours]
        cells += [f"{r[f'{m}/{e}']:.2f}" for m in ours for e in args.engines]
        cells.append(" / ".join(f"{r[e]['peak_rss_mb']:.0f}" for e in args.engines + ours))
        lines.append(f"| {r['model']} | {r['size']} | {r['threads']} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(table + "\n")


if __name__ == "__main__":
    main()
