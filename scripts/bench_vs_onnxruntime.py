#!/usr/bin/env python3
"""Side-by-side latency of effdense and ONNX Runtime on the same machine, in one run.

Exports the reference architectures to ONNX (timm tf_efficientnet_lite0 @224, effdet
tf_efficientdet_d0 @512 -- raw class / box outputs --, segmentation_models_pytorch DeepLabV3Plus
efficientnet-b0 @512, random weights), then alternates, for each model and thread count:
ONNX Runtime (CPU provider, intra-op threads = T, inter-op 1, sequential, all graph
optimisations) in its own process, and `effdense bench --json` in its own. Reports medians,
p90s, the ratio effdense / ORT, and peak resident memory. Network forward only, batch 1.

    pip install torch timm effdet segmentation-models-pytorch onnx onnxscript onnxruntime
    swift build -c release
    python scripts/bench_vs_onnxruntime.py [--threads 1 2] [--rounds 3] [--runs 30] [--markdown OUT.md]
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


def export(folder):
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

    seg = smp.DeepLabV3Plus("efficientnet-b0", encoder_weights=None, classes=21)
    models = {
        "tf_efficientnet_lite0": timm.create_model("tf_efficientnet_lite0", pretrained=False),
        "tf_efficientdet_d0": DetectionOutputs(create_model("tf_efficientdet_d0", pretrained=False,
                                                            pretrained_backbone=False, bench_task="")),
        "deeplabv3plus-efficientnet-b0": seg,
    }
    paths = {}
    for (label, _, side) in MODELS:
        path = folder / f"{label}.onnx"
        torch.onnx.export(models[label].eval(), torch.randn(1, 3, side, side), str(path), opset_version=17, dynamo=False)
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
    parser.add_argument("--effdense", default=str(ROOT / ".build/release/effdense"))
    parser.add_argument("--markdown")
    args = parser.parse_args()
    folder = pathlib.Path(tempfile.mkdtemp(prefix="effdense-onnx-"))
    paths = export(folder)
    rows = []
    for label, bench_args, side in MODELS:
        for threads in args.threads:
            ort_results, eff_results = [], []
            for _ in range(args.rounds):  # alternate, each in its own process
                ort_results.append(run_json([sys.executable, "-c", ORT_RUNNER, str(paths[label]), str(threads), str(args.runs), str(side)]))
                eff_results.append(run_json([args.effdense, "bench", *bench_args, "--threads", str(threads), "--runs", str(args.runs), "--json"]))
            med = lambda rs, k: sorted(r[k] for r in rs)[len(rs) // 2]
            row = {"model": label, "size": side, "threads": threads,
                   "ort_median_ms": med(ort_results, "median_ms"), "ort_p90_ms": med(ort_results, "p90_ms"),
                   "effdense_median_ms": med(eff_results, "median_ms"), "effdense_p90_ms": med(eff_results, "p90_ms"),
                   "effdense_pipeline_median_ms": med(eff_results, "pipeline_median_ms"),
                   "ort_peak_rss_mb": max(r["peak_rss_mb"] for r in ort_results),
                   "effdense_peak_rss_mb": max(r["peak_rss_mb"] for r in eff_results),
                   "ort_version": ort_results[0]["version"]}
            row["ratio"] = row["effdense_median_ms"] / row["ort_median_ms"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    lines = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; ONNX Runtime {rows[0]['ort_version']}; "
             f"{args.rounds} alternating rounds of {args.runs} runs, medians of medians.", "",
             "| model | input | threads | ONNX Runtime ms (p90) | effdense ms (p90) | effdense / ORT | effdense pipeline ms | peak RSS ORT / effdense MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['size']} | {r['threads']} | {r['ort_median_ms']:.2f} ({r['ort_p90_ms']:.2f}) | "
                     f"{r['effdense_median_ms']:.2f} ({r['effdense_p90_ms']:.2f}) | {r['ratio']:.2f} | "
                     f"{r['effdense_pipeline_median_ms']:.2f} | {r['ort_peak_rss_mb']:.0f} / {r['effdense_peak_rss_mb']:.0f} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(table + "\n")


if __name__ == "__main__":
    main()
