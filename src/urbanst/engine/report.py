"""``urbanst report``: a suite of ``urbanst benchmark`` runs, one folder each, gathered into one report.

Each entry of the suite (see :mod:`urbanst.engine.suites`) is run by :func:`run_benchmark` exactly as the
``benchmark`` command would run it with the same settings, so the report's tables are the benchmark's.
The report adds training curves per entry, a bar chart per transfer entry, ``results.json``
with every record and ``report.md`` (written by :mod:`urbanst.evaluation.report_text`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from urbanst.data.registry import builtin_datasets
from urbanst.engine.benchmark import run_benchmark
from urbanst.engine.suites import SUITES, Entry
from urbanst.errors import UrbanstError
from urbanst.evaluation.plots import plot_training_curves, plot_transfer
from urbanst.evaluation.report_text import primary_metric, report_markdown, summary_line
from urbanst.io import write_json_atomic, write_text_atomic
from urbanst.settings import data_dir as resolve_data_dir


@dataclass
class EntryResult:
    entry: Entry
    records: list[dict]
    seconds: float
    skipped: str = ""  # why the entry did not run (a dataset absent from the data folder)


def suite_entries(name: str) -> list[Entry]:
    if name not in SUITES:
        raise UrbanstError(f"unknown suite {name!r}; suites: {', '.join(SUITES)}")
    return SUITES[name]


def run_report(entries: list[Entry], output: Path, suite: str = "custom", data_dir: str | None = None, seed: int = 0,
               echo: Callable[[str], None] = print) -> list[EntryResult]:
    """Run every entry into ``output/<entry key>/`` and write ``output/report.md`` and ``output/results.json``."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    expected = sum(e.expected_seconds() for e in entries)
    echo(f"urbanst report, suite {suite}: {len(entries)} benchmark runs, expected about {_minutes(expected)} "
         f"on 2 CPU cores; writing {output}/")
    start = time.perf_counter()
    results = []
    for i, entry in enumerate(entries, 1):
        prefix = f"[{i}/{len(entries)}] {entry.title}"
        missing = missing_datasets(entry, data_dir)
        if missing:
            echo(f"{prefix}: skipped, {missing}")
            results.append(EntryResult(entry, [], 0.0, skipped=missing))
            continue
        echo(f"{prefix}: {', '.join(entry.models)} (about {_minutes(entry.expected_seconds())}) ...")
        results.append(run_entry(entry, output, data_dir, seed))
        echo(f"    done in {_minutes(results[-1].seconds)}; {summary_line(results[-1].records)}")
    wall = time.perf_counter() - start
    write_report(results, output, suite, wall)
    echo(f"report written to {output / 'report.md'} in {_minutes(wall)}")
    return results


def run_entry(entry: Entry, output: Path, data_dir: str | None, seed: int) -> EntryResult:
    folder = output / entry.key
    start = time.perf_counter()
    records = run_benchmark(entry.benchmark_config(folder, data_dir, seed))
    seconds = time.perf_counter() - start
    if entry.shots != "full":  # transfer rows beside the target's own baselines
        plot_transfer(records, folder / "transfer.png", metric=primary_metric(records)[0])
    curves = training_curves(folder / "runs")
    if curves:
        plot_training_curves(curves, folder / "training_curves.png")
    for checkpoints in (folder / "runs").glob("*/checkpoints"):  # the report keeps scores, logs and the saved models, not Lightning's checkpoints
        shutil.rmtree(checkpoints)
    return EntryResult(entry, records, seconds)


def missing_datasets(entry: Entry, data_dir: str | None) -> str:
    """Why an entry cannot run here ('' when it can): a dataset whose folder is not in the data folder."""
    specs, root = builtin_datasets(), resolve_data_dir(data_dir)
    absent = [name for name in (entry.dataset, *entry.sources)
              if name in specs and specs[name].folder and not (root / specs[name].folder).is_dir()]
    if not absent:
        return ""
    return "; ".join(f"dataset {n} not found ({specs[n].folder}/ is not in {root})" for n in absent)


def training_curves(runs: Path) -> dict:
    """Lightning's ``metrics.csv`` of each trained model under ``runs/<model>/logs/``."""
    import pandas as pd

    return {path.parents[1].name: pd.read_csv(path) for path in sorted(runs.glob("*/logs/metrics.csv"))}


def write_report(results: list[EntryResult], output: Path, suite: str, wall_seconds: float) -> None:
    ran = [r for r in results if r.records]
    write_json_atomic(output / "results.json", [record for r in ran for record in r.records])
    plots = {r.entry.key: sorted(p.name for p in (output / r.entry.key).glob("*.png")) for r in ran}
    write_text_atomic(output / "report.md", report_markdown(results, suite, wall_seconds, plots))


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
