"""Training and inference speed, peak memory and parameters of each deep model on fixed shapes.

    .venv/bin/python benchmarks/speed.py [--models stid,unist,...] [--accelerator cpu|gpu] [--batch 32]
                                         [--iters 10] [--units 69] [--threads N] [--json FILE]

Shapes: a synthetic region city of 69 units (as Manhattan's taxi zones), 2 channels, 12 steps in and 12 out
(llm4hrs: imputation windows of 12 steps; airgpt: the synthetic air-quality city, which has wind), batch 32.
Each model runs in a fresh process: training samples/s (the model's own loss, backward, AdamW step) and
inference samples/s (forward under ``torch.inference_mode``), both after warm-up; peak resident memory of
that process while the model is built, trained and run (and torch's GPU peak on a GPU); parameters in all
and trainable. LM models use the embedded MiniLM backbone with their default depth and freezing.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

MEMORY_LABELS = {"peak_rss_mib": "peak RSS MiB", "peak_gpu_mib": "peak GPU MiB"}


def measure(model_name: str, args) -> dict:
    import torch

    device = _common.setup(args)
    spec, batches = _common.training_batches(model_name, args.units, 12, 12, args.batch, 4, device, weeks=2)
    _common.reset_peak_memory(device)  # the data is built; what follows is the model's
    model = _common.build_model(model_name, spec, device)
    model.train()
    train_s = _common.seconds_per_call(_common.training_step(model), batches, args.iters, args.warmup, device)
    model.eval()
    with torch.inference_mode():
        infer_s = _common.seconds_per_call(model, batches, args.iters, args.warmup, device)
    return {"model": model_name, "train_samples_per_s": round(args.batch / train_s, 1),
            "inference_samples_per_s": round(args.batch / infer_s, 1), **_common.memory_mib(device),
            **_common.parameter_counts(model)}


def main(argv=None) -> list[dict]:
    parser = _common.parser(__doc__, ",".join(_common.DEEP_MODELS))
    parser.add_argument("--units", type=int, default=69)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args, models, device = _common.start(parser, argv)
    print(f"shapes: {args.units} units, 2 channels, 12 steps in, 12 out, batch {args.batch}; "
          f"{args.iters} timed steps after {args.warmup} warm-up steps")
    results = []
    for name in models:
        results.append(_common.isolated(measure, name, args))
        r = results[-1]
        print(f"  {name}: train {r['train_samples_per_s']} samples/s, inference {r['inference_samples_per_s']} "
              f"samples/s, peak RSS {r['peak_rss_mib']} MiB", flush=True)
    memory = ["peak_rss_mib"] + (["peak_gpu_mib"] if device.type == "cuda" else [])
    _common.print_table(
        ["model", "train samples/s", "infer samples/s", *[MEMORY_LABELS[m] for m in memory], "parameters",
         "trainable"],
        [[r["model"], r["train_samples_per_s"], r["inference_samples_per_s"], *[r[m] for m in memory],
          f"{r['parameters']:,}", f"{r['trainable']:,}"] for r in results])
    _common.write_json(args, device, results=results)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
