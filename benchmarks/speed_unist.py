"""Training and inference speed of ``unist`` at a preset (default: paper) on a 16x8 grid, 6 steps in and 6 out.

    .venv/bin/python benchmarks/speed_unist.py [--preset paper|cpu] [--accelerator cpu|gpu] [--batch 64]
                                               [--iters 20] [--threads N] [--size S] [--patch-t T] [--profile]

Prints samples per second for a training step (the task's forecasting loss, backward, AdamW step) and for
inference (forward under ``torch.inference_mode``), after warm-up iterations, per second of wall time and, on a
CPU, per second of the process's CPU time (with one thread, what an idle core would do even on a shared
machine), and peak memory: the process's resident set (Linux VmHWM) and, on a GPU, torch's allocator peak. A
sample is one window of one attribute (the released code's unit: it reads one volume per attribute). Torch uses
as many CPU threads as the machine has cores unless ``--threads`` says otherwise. ``--profile`` adds
torch.profiler's table of the operators that take the time.

Reference on a 2-core machine: the released UniST code at its own token layout (2 steps x 2 x 2 cells, size
middle; the paper preset here) trains at 39.6 samples/s at best and infers at 140 samples/s, 2.8 GB peak RSS.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import device_text, memory_mib, reset_peak_memory, setup, to_device  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["cpu", "paper"], default="paper")
    parser.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--size", help="override the preset's size")
    parser.add_argument("--patch-t", type=int, help="override the preset's steps per grid token")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--history", type=int, default=6)
    parser.add_argument("--horizon", type=int, default=6)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--no-prompts", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="print where a training and an inference step spend their time")
    args = parser.parse_args(argv)
    device = setup(args)

    from urbanst.data.synthetic import make_city
    from urbanst.models.registry import model_class
    from urbanst.tasks.forecast import ForecastTask

    data = make_city("grid", grid=(16, 8), weeks=3, seed=0, channels=("inflow",))
    task = ForecastTask(args.history, args.horizon)
    windows = task.windows(data, task.fit_scaler(data), splits=("train",))["train"]
    options = {k: v for k, v in (("size", args.size), ("patch_t", args.patch_t)) if v is not None}
    model = model_class("unist").build(task.data_spec(data), args.preset, prompts=not args.no_prompts, **options)
    model.to(device)
    batches = [to_device(windows.__getitems__(list(range(i * args.batch, (i + 1) * args.batch))), device)
               for i in range(4)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step(batch) -> None:
        optimizer.zero_grad(set_to_none=True)
        task.loss(model, batch).backward()
        optimizer.step()

    def infer(batch) -> None:
        with torch.inference_mode():
            model(batch)

    def samples_per_second(step) -> tuple[float, float]:
        """Per second of wall time and of CPU time, over ``--iters`` calls after ``--warmup``."""
        for i in range(args.warmup):
            step(batches[i % len(batches)])
        sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
        sync()
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(args.iters):
            step(batches[i % len(batches)])
        sync()
        samples = args.batch * args.iters
        return samples / (time.perf_counter() - wall), samples / (time.process_time() - cpu)

    reset_peak_memory(device)
    model.train()
    train_sps, train_cpu = samples_per_second(train_step)
    model.eval()
    infer_sps, infer_cpu = samples_per_second(infer)
    memory = memory_mib(device)

    c = model.config
    prompt = sum(p.numel() for n, p in model.named_parameters() if n.startswith("prompt."))
    counts = {"backbone": model.num_parameters() - prompt, "prompt": prompt, "total": model.num_parameters()}
    result = {"preset": args.preset, "size": c.size, "patch_t": c.patch_t, "device": device_text(device),
              "batch": args.batch, "train_samples_per_s": round(train_sps, 1),
              "inference_samples_per_s": round(infer_sps, 1), "train_samples_per_cpu_s": round(train_cpu, 1),
              "inference_samples_per_cpu_s": round(infer_cpu, 1), **memory, "parameters": counts}
    print(f"unist at preset {args.preset}: size {c.size}, 16x8 grid, {args.history} in / {args.horizon} out, "
          f"tokens of {c.patch_t} steps x {c.patch_hw}x{c.patch_hw} cells, batch {args.batch}")
    print(f"  device   : {result['device']}")
    print(f"  parameters: backbone {counts['backbone']:,}, prompt network {counts['prompt']:,}")
    per_cpu = device.type == "cpu"
    print(f"  training : {train_sps:7.1f} samples/s" + (f", {train_cpu:7.1f} per CPU second" if per_cpu else ""))
    print(f"  inference: {infer_sps:7.1f} samples/s" + (f", {infer_cpu:7.1f} per CPU second" if per_cpu else ""))
    print("  peak     : " + ", ".join(f"{k} {v}" for k, v in memory.items() if k.startswith("peak")))
    if args.profile:
        profile(model, train_step, infer, batches[0], device)
    return result


def profile(model, train_step, infer, batch, device: torch.device, rows: int = 25) -> None:
    """torch.profiler's operators by own time over three training steps and three inference steps."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as record

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    for name, mode, step in (("training", model.train, train_step), ("inference", model.eval, infer)):
        mode()
        with record(activities=activities) as prof:
            for _ in range(3):
                step(batch)
        print(f"\n== {name}: three steps, operators by own time")
        print(prof.key_averages().table(sort_by=key, row_limit=rows))


if __name__ == "__main__":
    main(sys.argv[1:])
