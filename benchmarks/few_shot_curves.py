"""Few-shot curves: each dataset scored at several shares of its training windows (the most recent ones, as
``--shots few``), every trained model given the same windows, then one table and one plot per dataset.

    python benchmarks/few_shot_curves.py --datasets nyc_taxi,chi_crime --output runs/few \\
        --models ha,seasonal,ridge,stid,pretrained:unist-urban-v2 --time-budget 60 --test-stride 97

Each (dataset, share) is one ``urbanst benchmark`` run in ``OUTPUT/DATASET/SHARE``; a run whose results.json
exists is not repeated, so the script can be stopped and started again. A share of 1 is ``--shots few
--few-ratio 1``: every training window, and a shipped checkpoint fine-tuned on them (with ``--shots full`` a
benchmark scores a checkpoint zero-shot).
Writes ``OUTPUT/curves.md`` (MAE per model and share) and ``OUTPUT/DATASET.png``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from urbanst.evaluation.plots import plot_few_shot
from urbanst.evaluation.tables import row_label


def run(dataset: str, share: float, args, folder: Path) -> None:
    shots = ["--shots", "few", "--few-ratio", str(share)]
    command = [sys.executable, "-m", "urbanst.cli", "benchmark", "--dataset", dataset, "--models", args.models,
               *shots, "--time-budget", str(args.time_budget), "--test-stride", str(args.test_stride),
               "--seed", str(args.seed), "--output", str(folder)]
    start = time.perf_counter()
    with open(folder.parent / f"{folder.name}.log", "w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    print(f"{dataset} {share:.0%}: exit {done.returncode}, {time.perf_counter() - start:.0f} s", flush=True)


def curves_of(dataset: str, shares: list[float], output: Path) -> dict[str, dict[float, float]]:
    """MAE per model (its table row's label) and share."""
    curves: dict[str, dict[float, float]] = {}
    for share in shares:
        path = output / dataset / f"{share:g}" / "results.json"
        if path.is_file():
            for record in json.loads(path.read_text()):
                curves.setdefault(row_label(record), {})[share] = record["metrics"].get("mae")
    return curves


def table(curves: dict[str, dict[float, float]], shares: list[float]) -> list[str]:
    lines = ["| model | " + " | ".join(f"{s:.0%}" for s in shares) + " |", "|---" * (len(shares) + 1) + "|"]
    for model, points in curves.items():
        cells = ["—" if points.get(s) is None else f"{points[s]:.3f}" for s in shares]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", required=True, help="comma-separated")
    p.add_argument("--shares", default="0.01,0.05,0.1,0.2,1", help="comma-separated shares of training windows")
    p.add_argument("--models", default="ha,seasonal,ridge,stid")
    p.add_argument("--time-budget", type=float, default=60)
    p.add_argument("--test-stride", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--report-only", action="store_true", help="write the table and plots from the runs there are")
    args = p.parse_args()
    datasets = [d for d in args.datasets.split(",") if d]
    shares = sorted(float(s) for s in args.shares.split(","))
    args.output.mkdir(parents=True, exist_ok=True)
    for dataset in datasets:
        for share in shares:
            folder = args.output / dataset / f"{share:g}"
            if not args.report_only and not (folder / "results.json").is_file():
                folder.parent.mkdir(parents=True, exist_ok=True)
                run(dataset, share, args, folder)
    scored = "every test window" if args.test_stride == 1 else f"one test window in {args.test_stride}"
    lines = [f"Test MAE (original units; {scored}) against the share of the target's "
             f"most recent training windows, {args.time_budget:g} s of training per trained model (seasonal naive "
             "and last value read no training window: the same at every share).", ""]
    for dataset in datasets:
        curves = curves_of(dataset, shares, args.output)
        if curves:
            plot_few_shot(curves, dataset, args.output / f"{dataset}.png")
            lines += [f"### {dataset}", "", *table(curves, shares), "", f"![{dataset}]({dataset}.png)", ""]
    (args.output / "curves.md").write_text("\n".join(lines))
    print(f"wrote {args.output / 'curves.md'}")


if __name__ == "__main__":
    main()
