"""What the commands print: result tables and plain aligned rows."""

from __future__ import annotations


def print_records(records: list[dict]) -> None:
    """The protocol, the results table, for data with several channels the headline metric per channel, and the
    language-model ablation when one ran."""
    from urbanst.evaluation.tables import ablation_table, channel_table, protocol_line, results_table

    print(protocol_line(records[0]))
    print(results_table(records))
    for extra in (channel_table(records), ablation_table(records)):
        if extra:
            print("\n" + extra)


def print_rows(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def first_line(doc: str | None) -> str:
    return ((doc or "").strip().splitlines() or [""])[0]
