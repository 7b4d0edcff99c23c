"""Time and memory of one training epoch as the number of units grows and as the history grows.

    .venv/bin/python benchmarks/scale.py [--models stid,unist] [--quick] [--units 69,256] [--histories 12,48]
                                         [--accelerator cpu|gpu]
                                         [--epoch-samples 32] [--batch 8] [--threads N] [--json FILE]

One epoch is ``--epoch-samples`` training windows of a synthetic region city in batches of ``--batch``
(the model's own loss, backward, AdamW step, after one warm-up step). Units grow over 69, 256, 1024 and
4096 at 12 steps in and out; history grows over 12, 48 and 168 steps at 69 units. Each point runs in a
fresh process; its memory is the peak resident memory above what the process held before the model was
built (on a GPU also torch's peak allocation). The growth exponent is the slope of a straight line
through the log-log points: 1 means linear, 2 quadratic. ``--quick`` stops at 1024 units and 48 steps.
A point that fails (out of memory) is printed as failed and left out of the fit.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

UNITS, HISTORIES = [69, 256, 1024, 4096], [12, 48, 168]
QUICK_UNITS, QUICK_HISTORIES = [69, 256, 1024], [12, 48]


def epoch(model_name: str, units: int, history: int, args) -> dict:
    device = _common.setup(args)
    steps = max(1, args.epoch_samples // args.batch)
    spec, batches = _common.training_batches(model_name, units, history, 12, args.batch, steps, device)
    before = _common.memory_mib(device)["rss_mib"]
    _common.reset_peak_memory(device)
    model = _common.build_model(model_name, spec, device)
    model.train()
    seconds = _common.seconds_per_call(_common.training_step(model), batches, steps, 1, device) * steps
    memory = _common.memory_mib(device)
    out = {"model": model_name, "units": units, "history": history, "epoch_s": round(seconds, 3),
           "memory_mib": round(memory["peak_rss_mib"] - before, 1)}
    if "peak_gpu_mib" in memory:
        out["gpu_mib"] = memory["peak_gpu_mib"]
    return out


def growth_exponent(xs: list[float], ys: list[float]) -> float | None:
    """Slope of log(y) against log(x) by least squares; None with fewer than two points."""
    import numpy as np

    points = [(x, y) for x, y in zip(xs, ys) if y and y > 0]
    if len(points) < 2:
        return None
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return float(np.polyfit(x, y, 1)[0])


def sweep(model: str, axis: str, values: list[int], args) -> list[dict]:
    rows = []
    for value in values:
        units, history = (value, 12) if axis == "units" else (69, value)
        try:
            rows.append(_common.isolated(epoch, model, units, history, args))
        except Exception as err:  # noqa: BLE001  (a killed or failing point is reported, the sweep goes on)
            rows.append({"model": model, "units": units, "history": history, "failed": f"{type(err).__name__}: {err}"[:120]})
        r = rows[-1]
        print(f"  {model} {axis}={value}: " + (f"failed ({r['failed']})" if "failed" in r else
              f"epoch {r['epoch_s']} s, memory +{r['memory_mib']} MiB"), flush=True)
    return rows


def exponents(rows: list[dict], axis: str) -> dict:
    ok = [r for r in rows if "failed" not in r]
    xs = [r[axis] for r in ok]
    return {"time": growth_exponent(xs, [r["epoch_s"] for r in ok]),
            "memory": growth_exponent(xs, [r["memory_mib"] for r in ok])}


def main(argv=None) -> dict:
    parser = _common.parser(__doc__, "stid,unist")
    parser.add_argument("--quick", action="store_true", help="units up to 1024, history up to 48")
    parser.add_argument("--units", help="comma-separated unit counts instead of 69,256,1024,4096")
    parser.add_argument("--histories", help="comma-separated history lengths instead of 12,48,168")
    parser.add_argument("--epoch-samples", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    args, models, device = _common.start(parser, argv)
    units, histories = (QUICK_UNITS, QUICK_HISTORIES) if args.quick else (UNITS, HISTORIES)
    units = [int(u) for u in args.units.split(",")] if args.units else units
    histories = [int(h) for h in args.histories.split(",")] if args.histories else histories
    print(f"one epoch = {args.epoch_samples} windows in batches of {args.batch}; units {units} at 12 steps in and "
          f"out; history {histories} at 69 units")
    result = {"rows": [], "exponents": []}
    for model in models:
        for axis, values in (("units", units), ("history", histories)):
            rows = sweep(model, axis, values, args)
            result["rows"] += rows
            result["exponents"].append({"model": model, "axis": axis, **exponents(rows, axis)})
    print("growth exponents (log-log slope of epoch time and memory):")
    _common.print_table(["model", "grows with", "time", "memory"],
                        [[e["model"], e["axis"], _fmt(e["time"]), _fmt(e["memory"])] for e in result["exponents"]])
    _common.write_json(args, device, **result)
    return result


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.2f}"


if __name__ == "__main__":
    main(sys.argv[1:])
