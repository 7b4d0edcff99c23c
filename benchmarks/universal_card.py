"""Write the model card (card.md, loss.png) of a shipped checkpoint from the runs of benchmarks/pretrain_universal.sh:
corpus, evaluation set, steps, wall time, machine, the loss curves, and the zero-shot table when it has been run."""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import pandas as pd

from urbanst.evaluation.plots import plot_training_curves
from urbanst.evaluation.tables import results_table

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "urbanst" / "pretrained"


def curve(run: Path) -> pd.DataFrame:
    """The run's validation and training losses per epoch, from Lightning's CSV log."""
    frame = pd.read_csv(run / "logs" / "metrics.csv")
    return frame.groupby("epoch").last().reset_index() if "epoch" in frame else frame


def zero_table(dataset: str, args) -> str:
    """One table of every zero-shot run on ``dataset`` (TTA off, causal, transductive)."""
    records = []
    for mode in ("off", "causal", "transductive"):
        path = args.runs / "zero" / f"{dataset}-{mode}" / "results.json"
        records += json.loads(path.read_text()) if path.is_file() else []
    return results_table(records) if records else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--evaluation", nargs="+", required=True)
    parser.add_argument("--stride", type=int, default=1, help="the zero-shot tables score one test window in this many")
    parser.add_argument("--fracast", type=Path, help="runs on thinned test splits with fracast: DATASET/results.json "
                        "(baselines and fracast) and DATASET-NAME/results.json (the checkpoint, evaluate --test-stride)")
    args = parser.parse_args()
    folder = PACKAGE / args.name
    meta = json.loads((folder / "config.json").read_text())
    corpus = args.corpus.split(",")
    overlap = sorted(set(corpus) & set(args.evaluation))
    if overlap:
        raise SystemExit(f"the evaluation set shares {overlap} with the corpus")
    meta["pretrained_on"] = corpus
    meta["evaluation_set"] = list(args.evaluation)
    (folder / "config.json").write_text(json.dumps(meta, indent=2))

    stages = {"pre-training (masked reconstruction)": args.runs / "pretrain",
              "forecasting (prompts and head)": args.runs / "tune"}
    curves = {name: curve(run) for name, run in stages.items() if (run / "logs" / "metrics.csv").is_file()}
    plot_training_curves(curves, folder / "loss.png")
    tuned = json.loads((args.runs / "tune" / "results.json").read_text())[0]
    lines = [f"# {args.name}", "",
             f"UniST ({meta['config']['size']}, one volume per attribute: any number of channels"
             f"{'; each series read in the units of its own input window' if meta['config'].get('window_norm') else ''}), "
             f"{tuned['parameters']:,} parameters, {meta['config']['history']} steps in, "
             f"{meta['config']['horizon']} out.", "",
             f"- corpus (training splits only): {', '.join(corpus)}",
             f"- evaluation set (no step of them in pre-training or validation): {', '.join(args.evaluation)}",
             f"- machine: {platform.processor() or platform.machine()}, {platform.system()}, one torch thread",
             "- stages:"]
    walls = json.loads((args.runs / "wall_seconds.json").read_text())
    for name, wall in zip(stages, (walls["pretrain"], walls["tune"])):
        frame = curves.get(name)
        lines.append(f"  - {name}: {0 if frame is None else len(frame)} epoch(s), {wall / 60:.1f} min wall")
    lines += ["", "![losses per epoch](loss.png)", ""]
    tables = [zero_table(dataset, args) for dataset in args.evaluation]
    if any(tables):
        scored = "every window" if args.stride == 1 else f"one window in {args.stride}"
        lines += [f"## Zero-shot evaluation (test split, {scored}; the target's own baselines)", "",
                  "Test-time adaptation off, causal (the default) and transductive; `ridge_periodic (corpus of ...)` is "
                  "a linear rule fit on the same corpus, scored zero-shot too.", ""]
        for dataset, table in zip(args.evaluation, tables):
            if table:
                lines += [f"### {dataset}", "", table, ""]
    else:
        lines += ["Zero-shot evaluation: not run yet (see benchmarks/pretrain_universal.sh)."]
    if args.fracast:
        lines += ["## Beside fracast (the same thinned test windows for every row)", ""]
        for dataset in args.evaluation:
            own, checkpoint = args.fracast / dataset / "results.json", args.fracast / f"{dataset}-{args.name}" / "results.json"
            records = [r for r in (json.loads(own.read_text()) if own.is_file() else []) if r["family"] == "baseline"]
            for r in json.loads(checkpoint.read_text()) if checkpoint.is_file() else []:
                records.append({**r, "model": f"pretrained:{args.name}"})
            if records:
                note = next((part for part in records[0]["notes"].split("; ") if "one test window in" in part), "")
                lines += [f"### {dataset}", "", note, "", results_table(records), ""]
    (folder / "card.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {folder / 'card.md'}")


if __name__ == "__main__":
    main()
