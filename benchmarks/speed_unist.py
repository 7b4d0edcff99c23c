"""Training and inference speed of ``unist`` (default: size middle) on a 16x8 grid, 6 steps in and 6 out, batch 64.

    .venv/bin/python benchmarks/speed_unist.py [--size middle] [--batch 64] [--iters 20] [--threads N]

Prints samples per second for a training step (forecasting loss, backward, AdamW step) and
for inference (forward under ``torch.inference_mode``), after warm-up iterations, and the
process's peak resident memory (``resource.getrusage``). Torch uses as many threads as the
machine has cores unless ``--threads`` says otherwise. Reference on a 2-core machine: the
released UniST code trains at 39.6 samples/s at best and infers at 140 samples/s, 2.8 GB peak
RSS; target here >= 80 training, >= 210 inference samples/s at <= 1 GB. ``--patch-t 2`` times
the released code's token layout (3x the tokens of unist's default 6 steps per token).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import seconds_per_call  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="middle")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--history", type=int, default=6)
    parser.add_argument("--horizon", type=int, default=6)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--channels", default="fused", choices=["fused", "separate"])
    parser.add_argument("--no-prompts", action="store_true")
    parser.add_argument("--patch-t", type=int, default=6,
                        help="steps per grid token (default 6, unist's default; 2 is the released code's, 3x the tokens)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from urbanst.data.synthetic import make_city
    from urbanst.models.registry import model_class
    from urbanst.tasks.forecast import ForecastTask

    data = make_city("grid", grid=(16, 8), weeks=3, seed=0)
    task = ForecastTask(args.history, args.horizon)
    windows = task.windows(data, task.fit_scaler(data), splits=("train",))["train"]
    spec = task.data_spec(data)
    model = model_class("unist").build(spec, size=args.size, channels=args.channels, prompts=not args.no_prompts,
                                      patch_t=args.patch_t)
    batches = [windows.__getitems__(list(range(i * args.batch, (i + 1) * args.batch))) for i in range(4)]
    cpu = torch.device("cpu")

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step(batch) -> None:  # the task's forecasting loss, backward, an AdamW step
        optimizer.zero_grad(set_to_none=True)
        task.loss(model, batch).backward()
        optimizer.step()

    model.train()
    train_sps = args.batch / seconds_per_call(train_step, batches, args.iters, args.warmup, cpu)
    model.eval()
    with torch.inference_mode():
        infer_sps = args.batch / seconds_per_call(model, batches, args.iters, args.warmup, cpu)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    prompt = sum(p.numel() for n, p in model.named_parameters() if n.startswith("prompt."))
    counts = {"backbone": model.num_parameters() - prompt, "prompt": prompt, "total": model.num_parameters()}
    result = {
        "size": args.size, "channels": args.channels, "threads": torch.get_num_threads(), "batch": args.batch,
        "train_samples_per_s": round(train_sps, 1), "inference_samples_per_s": round(infer_sps, 1),
        "peak_rss_mib": round(peak, 1), "parameters": counts,
    }
    print(f"unist {args.size} ({args.channels} channels), 16x8 grid, {args.history} in / {args.horizon} out, "
          f"{args.patch_t} steps per token, batch {args.batch}, {result['threads']} threads")
    print(f"  parameters: backbone {counts['backbone']:,}, prompt network {counts['prompt']:,}")
    print(f"  training : {train_sps:7.1f} samples/s")
    print(f"  inference: {infer_sps:7.1f} samples/s")
    print(f"  peak RSS : {peak:7.1f} MiB")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
