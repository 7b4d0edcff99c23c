"""Achieved FLOP/s of a training step, as a share of the plain matmul FLOP/s of the same machine and run.

    .venv/bin/python benchmarks/efficiency.py [--models stid,unist,st_llm] [--accelerator cpu|gpu] [--batch 32]
                                              [--iters 5] [--matmul-size N] [--threads N] [--json FILE]

The FLOPs of one training step (forward and backward of the model's own loss on the fixed shapes of
``speed.py``) are counted with ``torch.utils.flop_counter.FlopCounterMode``, which counts matrix
multiplications, convolutions and attention (element-wise work and the optimizer are not counted). The
step is then timed (with the AdamW update), and achieved FLOP/s = counted FLOPs / step seconds. The
reference is a float32 matmul of two N x N matrices (2 N^3 FLOPs) timed in the same process just before.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402


def matmul_flops_per_s(size: int, iters: int, device) -> float:
    import torch

    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    seconds = _common.seconds_per_call(lambda _: a @ b, [None], iters, 2, device)
    return 2 * size**3 / seconds


def step_flops(model, batch) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        _common.loss_of(model)(batch).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def measure(model_name: str, args) -> dict:
    device = _common.setup(args)
    size = args.matmul_size or (8192 if device.type == "cuda" else 1024)
    peak = matmul_flops_per_s(size, args.iters, device)
    spec, batches = _common.training_batches(model_name, 69, 12, 12, args.batch, 2, device, weeks=2)
    model = _common.build_model(model_name, spec, device).train()
    flops = step_flops(model, batches[0])
    seconds = _common.seconds_per_call(_common.training_step(model), batches, args.iters, 2, device)
    return {"model": model_name, "step_gflop": round(flops / 1e9, 3), "step_s": round(seconds, 4),
            "achieved_gflop_per_s": round(flops / seconds / 1e9, 2), "matmul_size": size,
            "matmul_gflop_per_s": round(peak / 1e9, 2), "share_of_matmul": round(flops / seconds / peak, 4)}


def main(argv=None) -> list[dict]:
    parser = _common.parser(__doc__, "stid,unist,st_llm")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--matmul-size", type=int, help="N of the reference N x N matmul (default 1024 CPU, 8192 GPU)")
    args, models, device = _common.start(parser, argv)
    print(f"one training step: 69 units, 2 channels, 12 steps in, 12 out, batch {args.batch}; FLOPs counted by "
          "torch.utils.flop_counter (matmul, convolution, attention)")
    results = [_common.isolated(measure, name, args) for name in models]
    _common.print_table(
        ["model", "GFLOP/step", "step s", "achieved GFLOP/s", "matmul GFLOP/s", "share of matmul"],
        [[r["model"], r["step_gflop"], r["step_s"], r["achieved_gflop_per_s"], r["matmul_gflop_per_s"],
          f"{100 * r['share_of_matmul']:.1f}%"] for r in results])
    _common.write_json(args, device, results=results)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
