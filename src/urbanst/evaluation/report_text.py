"""The text of ``report.md``: one section per benchmark run with its protocol, its table (the same table
``urbanst benchmark`` prints), how each trained model fares against the best baseline, and its plots."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone

from urbanst import __version__
from urbanst.evaluation.tables import protocol_line, results_table

MISSING = {
    "forecast": "Missing: an entry the source does not hold (NaN, an absent row, a masked gap) is unobserved; models "
                "see it as zero with input_mask False, and it is never scored.",
    "classify": "Missing: an unobserved count is neither an event nor a non-event; it is hidden from the models and "
                "never scored.",
    "impute": "Missing: scored entries are observed values hidden from every model (the evaluation mask); entries "
              "the source lacks are neither seen nor scored.",
}


def primary_metric(records: list[dict]) -> tuple[str, str, bool]:
    """(key, label, higher is better) of the metric a run is judged by: macro-F1 for events, else MAE."""
    if "macro_f1" in records[0]["metrics"]:
        return "macro_f1", "macro-F1", True
    return "mae", "MAE", False


def _best(records: list[dict], key: str, higher: bool) -> dict | None:
    scored = [r for r in records if r["metrics"].get(key) is not None]
    if not scored:
        return None
    return (max if higher else min)(scored, key=lambda r: r["metrics"][key])


def summary_line(records: list[dict]) -> str:
    """One line per finished run: the best model and the best baseline on the primary metric."""
    key, label, higher = primary_metric(records)
    best = _best(records, key, higher)
    baseline = _best([r for r in records if r["family"] == "baseline"], key, higher)
    parts = [f"best {label}: {best['model']} {best['metrics'][key]:.3f}"] if best else [f"no {label}"]
    if baseline and baseline is not best:
        parts.append(f"best baseline {baseline['model']} {baseline['metrics'][key]:.3f}")
    return "; ".join(parts)


def verdict_line(records: list[dict]) -> str:
    """Each trained model against the best baseline on the primary metric: better, or worse (shown losing)."""
    key, label, higher = primary_metric(records)
    baseline = _best([r for r in records if r["family"] == "baseline"], key, higher)
    trained = [r for r in records if r["family"] != "baseline" and r["metrics"].get(key) is not None]
    if baseline is None or not trained:
        return ""
    reference = baseline["metrics"][key]
    words = []
    for r in trained:
        value = r["metrics"][key]
        better = value > reference if higher else value < reference
        words.append(f"{r['model']} {value:.3f} ({'better' if better else 'WORSE'})")
    return f"Against the best baseline on {label} ({baseline['model']}, {reference:.3f}): " + ", ".join(words) + "."


def shots_line(entry) -> str:
    if entry.shots == "full":
        return "Shots: full (every model trains on the target's training split)."
    trained = (f"the most recent {entry.few_ratio:g} of the target's training windows" if entry.shots == "few"
               else f"{' + '.join(entry.sources)} only (no target window)")
    return (f"Shots: {entry.shots}; the trained models learn from {trained}; the baselines are the target's own, "
            "fit on its full training split, so each transfer row stands beside them.")


def machine_line() -> str:
    import torch

    return (f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} CPU cores, "
            f"torch {torch.__version__} with {torch.get_num_threads()} threads, Python {platform.python_version()}")


def report_markdown(results, suite: str, wall_seconds: float, plots: dict[str, list[str]]) -> str:
    """``results``: the suite's EntryResults in order; ``plots``: PNG names per entry folder."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# urbanst report: suite {suite}",
        "",
        f"urbanst {__version__}, {stamp}, wall time {wall_seconds / 60:.1f} min on {machine_line()}.",
        "",
        "Every table is the one `urbanst benchmark` prints for the same settings (its folder holds results.json and "
        "results.md). (b) = baseline; the best value of each column is in bold; models that lose to a baseline are "
        "shown losing. Train and inference seconds are wall time on the machine above.",
        "",
    ]
    skipped = [r for r in results if r.skipped]
    if skipped:
        lines += ["Skipped (data absent):", "", *[f"- {r.entry.title}: {r.skipped}" for r in skipped], ""]
    for number, result in enumerate((r for r in results if r.records), 1):
        lines += entry_section(number, result, plots.get(result.entry.key, []))
    return "\n".join(lines)


def entry_section(number: int, result, plots: list[str]) -> list[str]:
    entry, records = result.entry, result.records
    deep = [r for r in records if r["family"] != "baseline"]
    reference = deep[0] if deep else records[0]  # a transfer row carries the transfer's scaling
    notes = list(dict.fromkeys(part for r in records for part in r["notes"].split("; ") if part))
    budget = "no time budget" if entry.time_budget is None else f"a time budget of {entry.time_budget:g} s"
    training = (f"{budget} and at most {entry.max_epochs} epoch(s) per model trained by gradient"
                if entry.trained_models() else "closed-form models only (no gradient training)")
    lines = [
        f"## {number}. {entry.title}",
        "",
        f"Folder `{entry.key}/`, {result.seconds / 60:.1f} min; {training}.",
        "",
        f"Protocol: {protocol_line(reference)}",
        "",
        shots_line(entry),
        "",
        MISSING[entry.task],
        "",
        *(["Notes: " + "; ".join(notes), ""] if notes else []),
        results_table(records),
        "",
    ]
    verdict = verdict_line(records)
    if verdict:
        lines += [verdict, ""]
    for name in plots:
        lines += [f"![{name[:-4].replace('_', ' ')}]({entry.key}/{name})", ""]
    return lines
