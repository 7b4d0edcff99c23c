"""The ``urbanst`` command.

User errors (unknown names, bad values, missing or hostile files) end with one line on
stderr and exit status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from urbanst.errors import UrbanstError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        self.exit(2, f"urbanst: error: {message} (see `{self.prog} --help`)\n")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="folder holding the datasets (default: $URBANST_DATA, else ~/.cache/urbanst/data)")


def _add_protocol(p: argparse.ArgumentParser, history: int = 12, horizon: int = 12) -> None:
    p.add_argument("--history", type=int, default=history, help=f"input steps (default {history})")
    p.add_argument("--horizon", type=int, default=horizon, help=f"steps to forecast (default {horizon})")
    p.add_argument("--split", default="70/10/20", help="chronological train/val/test shares (default 70/10/20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="urbanst", description="Universal urban spatio-temporal prediction with pretrained language models.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    demo = sub.add_parser("demo", help="benchmark the baselines on the synthetic city (about a minute)")
    demo.add_argument("--output", default="outputs/demo", help="where to write results (default outputs/demo)")

    bench = sub.add_parser("benchmark", help="train and score models next to the baselines; print a table")
    bench.add_argument("--dataset", required=True)
    bench.add_argument("--models", type=_csv, default=["ha", "last", "seasonal", "ridge"],
                       help="comma-separated model names; 'seasonal' means seasonal_day,seasonal_week")
    bench.add_argument("--output", help="folder for results.json, results.md and plots")
    bench.add_argument("--time-budget", type=float, help="seconds of training per trained model (default: no limit)")
    bench.add_argument("--max-epochs", type=int, default=50)
    _add_protocol(bench)
    _add_data_dir(bench)

    data = sub.add_parser("data", help="list, inspect, import and download datasets")
    data_sub = data.add_subparsers(dest="data_command", parser_class=_Parser)
    lst = data_sub.add_parser("list", help="every dataset with shape, step, span, city and missing share")
    _add_data_dir(lst)
    info = data_sub.add_parser("info", help="everything urbanst knows about one dataset")
    info.add_argument("name")
    info.add_argument("--json", action="store_true", help="print JSON")
    _add_data_dir(info)
    imp = data_sub.add_parser("import", help="import a CSV (long form), NPZ or NetCDF file under a name")
    imp.add_argument("file")
    imp.add_argument("--name", required=True)
    imp.add_argument("--format", choices=["csv", "npz", "netcdf"], help="default: from the file suffix")
    imp.add_argument("--step", help="time step such as 1h or 15min (default: inferred)")
    imp.add_argument("--city", default="unknown")
    imp.add_argument("--attribute", help="NetCDF variable to read when several")
    imp.add_argument("--overwrite", action="store_true")
    _add_data_dir(imp)
    dl = data_sub.add_parser("download", help="fetch a dataset's public original files and check their checksums")
    dl.add_argument("name")
    _add_data_dir(dl)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(parser, args)
    except UrbanstError as err:
        if args.debug:
            raise
        print(f"urbanst: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("urbanst: interrupted", file=sys.stderr)
        return 130


def _dispatch(parser: argparse.ArgumentParser, args) -> int:
    if args.version:
        from urbanst import __version__

        print(__version__)
        return 0
    if args.command == "demo":
        return _demo(args)
    if args.command == "benchmark":
        return _benchmark(args)
    if args.command == "data":
        return _data(args)
    parser.print_help()
    return 0


def _benchmark(args) -> int:
    from urbanst.data.splits import SplitRule
    from urbanst.engine.benchmark import BenchmarkConfig, run_benchmark
    from urbanst.evaluation.tables import protocol_line, results_table

    cfg = BenchmarkConfig(
        dataset=args.dataset,
        models=args.models,
        history=args.history,
        horizon=args.horizon,
        split=SplitRule.parse(args.split),
        seed=args.seed,
        batch_size=args.batch_size,
        time_budget=args.time_budget,
        max_epochs=args.max_epochs,
        output=Path(args.output) if args.output else None,
        data_dir=args.data_dir,
    )
    records = run_benchmark(cfg)
    print(protocol_line(records[0]))
    print(results_table(records))
    if cfg.output:
        print(f"results written to {cfg.output}/ (results.json, results.md, error_per_step.png, forecasts.png)")
    return 0


def _demo(args) -> int:
    from urbanst.engine.benchmark import BenchmarkConfig, run_benchmark
    from urbanst.evaluation.tables import protocol_line, results_table

    print("urbanst demo: baselines on the synthetic city (synthetic_grid), 12 steps in, 12 out")
    cfg = BenchmarkConfig(dataset="synthetic_grid", models=["ha", "last", "seasonal", "ridge"], output=Path(args.output))
    records = run_benchmark(cfg)
    print(protocol_line(records[0]))
    print(results_table(records))
    print(f"results written to {args.output}/")
    return 0


def _data(args) -> int:
    from urbanst.data import registry

    if args.data_command == "list":
        rows = []
        for name in registry.dataset_names(args.data_dir):
            try:
                s = registry.load_dataset(name, args.data_dir).summary()
                rows.append([name, "x".join(map(str, s["shape"])), s["step"], f"{s['start'][:10]}..{s['end'][:10]}", s["city"], f"{s['missing_pct']:.2f}"])
            except UrbanstError as err:
                rows.append([name, "-", "-", "-", "-", f"not available: {str(err).split(';')[0]}"])
        _print_rows(["name", "shape T x N x C", "step", "span", "city", "missing %"], rows)
        return 0
    if args.data_command == "info":
        summary = registry.load_dataset(args.name, args.data_dir).summary()
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            for key, value in summary.items():
                print(f"{key:>12}: {value}")
        return 0
    if args.data_command == "import":
        from urbanst.data.importers import import_file

        folder = import_file(args.file, args.name, args.data_dir, fmt=args.format, step=args.step, city=args.city,
                             attribute=args.attribute, overwrite=args.overwrite)
        summary = registry.load_dataset(args.name, args.data_dir).summary()
        print(f"imported {args.file} as {args.name!r} into {folder}: shape {summary['shape']}, missing {summary['missing_pct']}%")
        return 0
    if args.data_command == "download":
        from urbanst.data.download import download

        folder = download(args.name, args.data_dir)
        print(f"downloaded {args.name} into {folder}")
        return 0
    raise UrbanstError("use one of: urbanst data list | info NAME | import FILE --name NAME | download NAME")


def _print_rows(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
