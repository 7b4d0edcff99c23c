"""Markdown result tables with the best value of each column marked."""

from __future__ import annotations

# (key, label, higher is better)
REGRESSION = [("mae", "MAE", False), ("rmse", "RMSE", False), ("mape", "MAPE %", False), ("wape", "WAPE %", False)]
CLASSIFICATION = [("recall", "recall", True), ("precision", "precision", True), ("macro_f1", "macro-F1", True),
                  ("auroc", "AUROC", True)]


def metric_columns(record: dict) -> list[tuple[str, str, bool]]:
    return CLASSIFICATION if "macro_f1" in record["metrics"] else REGRESSION


LM_FORMS = {"random": "random LM", "none": "no LM"}
FALLBACK_LABEL = 0.5  # a baseline that fell back on more than this share of its forecasts says so in its row


def lm_form(record: dict) -> str:
    """``pretrained``, ``random`` or ``none``: the language model a record's model ran with ('' without one)."""
    backbone = record.get("backbone") or {}
    if "backbone" not in backbone:
        return ""
    form = str(backbone["backbone"]).split(":", 1)[0]  # "random:PATH": a local checkpoint's architecture
    return form if form in LM_FORMS else "pretrained"


def row_label(record: dict) -> str:
    """The model as a row names it: ``(b)`` for a baseline, the language-model ablation, the baseline a model
    corrects, the preset when it is the paper's, test-time adaptation, and a baseline's fallback when it
    served most forecasts."""
    parts = [record["model"] + (" (b)" if record["family"] == "baseline" else "")]
    if lm_form(record) in LM_FORMS:
        parts.append(f"[{LM_FORMS[lm_form(record)]}]")
    if record.get("correction_of"):
        parts.append(f"on {record['correction_of']}")
    if record.get("preset") == "paper":
        parts.append("(paper preset)")
    if record.get("tta_steps"):
        parts.append(f"+TTA {record['tta_steps']}" + (" transductive" if record.get("tta_windows", {}).get("mode") ==
                                                        "transductive" else ""))
    share = record["metrics"].get("fallback_share")
    if share is not None and share > FALLBACK_LABEL:
        parts.append(f"(lag missing: last value for {share:.0%})")
    return " ".join(parts)


def results_table(records: list[dict]) -> str:
    """One row per record (named by :func:`row_label`); the best of each metric in bold."""
    columns = metric_columns(records[0])
    best = {}
    for key, _, higher in columns:
        values = [r["metrics"][key] for r in records if r["metrics"].get(key) is not None]
        best[key] = (max if higher else min)(values) if values else None
    shots = any(r["shots"] != "full" for r in records)
    header = ["model", *(["shots"] if shots else []), *[label for _, label, _ in columns], "train s", "infer s", "params"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in records:
        cells = [row_label(r)] + ([_shot_text(r)] if shots else [])
        for key, _, _ in columns:
            value = r["metrics"].get(key)
            text = "n/a" if value is None else f"{value:.3f}"
            cells.append(f"**{text}**" if value is not None and value == best[key] else text)
        cells += [f"{r['train_seconds']:.1f}", f"{r['inference_seconds']:.1f}", f"{r['parameters']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def channel_table(records: list[dict]) -> str:
    """The headline metric (MAE, or macro-F1 for events) of every channel (named by the records'
    ``channels``), one row per record, best marked; empty for single-channel data."""
    key, label, higher = metric_columns(records[0])[0]
    channels = records[0].get("channels", [])
    rows = [r for r in records if key in r.get("per_channel", {})]
    if len(channels) < 2 or not rows:
        return ""
    pick = max if higher else min
    best = [pick(r["per_channel"][key][c] for r in rows) for c in range(len(channels))]
    lines = [f"{label} per channel:", "", "| model | " + " | ".join(channels) + " |", "|" + "---|" * (len(channels) + 1)]
    for r in rows:
        cells = [f"**{v:.3f}**" if v == best[c] else f"{v:.3f}" for c, v in enumerate(r["per_channel"][key])]
        lines.append(f"| {row_label(r)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _shot_text(record: dict) -> str:
    if record["shots"] == "zero":
        return "zero from " + "+".join(record["sources"])
    return record["shots"]


def protocol_line(record: dict) -> str:
    return (
        f"dataset {record['dataset']}, task {record['task']}, history {record['history']}, horizon {record['horizon']}, "
        f"split {record['split']}, scaling {record['scale']}, shots {record['shots']}, seed {record['seed']}. "
        f"Metrics in original units over observed targets only (missing values are never scored); {record['metric_policy']}."
    )


def ablation_table(records: list[dict]) -> str:
    """Each language-model preset with its pretrained, random and absent LM, a row each (the headline metric,
    train and inference seconds, trainable and total parameters), then the best baseline and stid for reference;
    empty when no record ran an ablation."""
    key, label, higher = metric_columns(records[0])[0]
    ablated = [r for r in records if lm_form(r) in LM_FORMS]
    if not ablated:
        return ""
    lines = [f"| model | language model | {label} | train s | infer s | trainable | params |", "|" + "---|" * 7]
    for name in dict.fromkeys(r["model"] for r in ablated):
        for r in sorted((r for r in records if r["model"] == name), key=lambda r: list(("pretrained", *LM_FORMS)).index(lm_form(r))):
            lines.append(f"| {name} | {lm_form(r)} | {_metric_text(r, key)} | {r['train_seconds']:.1f} | "
                         f"{r['inference_seconds']:.1f} | {r['trainable_parameters']:,} | {r['parameters']:,} |")
    baselines = [r for r in records if r["family"] == "baseline" and r["metrics"].get(key) is not None]
    references = [(max if higher else min)(baselines, key=lambda r: r["metrics"][key])] if baselines else []
    references += [r for r in records if r["model"] == "stid"]
    if references:
        lines += ["", "For reference: " + ", ".join(f"{row_label(r)} {_metric_text(r, key)}" for r in references) + "."]
    return "\n".join(lines)


def _metric_text(record: dict | None, key: str) -> str:
    value = None if record is None else record["metrics"].get(key)
    return "n/a" if value is None else f"{value:.3f}"
