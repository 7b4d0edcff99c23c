"""The commands that describe and fetch: ``models list|info`` and ``data list|info|import|download``."""

from __future__ import annotations

import dataclasses
import json

from urbanst.cli.show import first_line, print_rows
from urbanst.errors import UrbanstError


def models(args) -> int:
    from urbanst.models.base import read_model_meta
    from urbanst.models.pretrained import PREFIX, model_folder, shipped
    from urbanst.models.registry import model_class, model_names

    if args.models_command == "info":
        return model_info(args)
    rows = [[name, model_class(name).family, first_line(model_class(name).__doc__)] for name in model_names()]
    for name in shipped():
        meta = read_model_meta(PREFIX + name)
        corpus = ", ".join(meta.get("pretrained_on", [])) or "unknown corpus"
        rows.append([PREFIX + name, "checkpoint", f"{meta['model']} pre-trained on {corpus} (card: "
                     f"{model_folder(PREFIX + name) / 'card.md'})"])
    print_rows(["model", "family", "description"], rows)
    return 0


def model_info(args) -> int:
    from urbanst.cli.configs import settings
    from urbanst.data.registry import load_dataset
    from urbanst.data.splits import SplitRule
    from urbanst.engine.runs import backbone_options, check_task, resolve_preset
    from urbanst.models.registry import model_class
    from urbanst.tasks import make_task

    cls = model_class(args.name)
    task_name = args.task or cls.tasks[0]
    check_task(cls, task_name)
    task = make_task(task_name, args.history, args.horizon, SplitRule())
    spec = task.data_spec(load_dataset(args.dataset, args.data_dir))
    model = cls.build(spec, resolve_preset(args.preset), **{**backbone_options(cls, settings(args)["backbone_settings"]),
                                                             **dict(args.option)})
    print(f"{cls.name} ({cls.family}): {first_line(cls.__doc__)}")
    print(f"built for {args.dataset} ({spec.num_units} units, {spec.num_channels} channels), task {task_name}, "
          f"history {task.history}, horizon {task.horizon}")
    rows = [[name, _count(part.parameters(), trainable=True), _count(part.parameters())]
            for name, part in model.named_children()]
    own = [p for _, p in model.named_parameters(recurse=False)]  # e.g. unit embeddings, mask tokens
    if own:
        rows.append(["(own parameters)", _count(own, trainable=True), _count(own)])
    rows.append(["total", f"{model.num_parameters(trainable_only=True):,}", f"{model.num_parameters():,}"])
    print_rows(["part", "trainable", "total"], rows)
    print("config: " + json.dumps(dataclasses.asdict(model.config), default=str))
    return 0


def _count(parameters, trainable: bool = False) -> str:
    return f"{sum(p.numel() for p in parameters if p.requires_grad or not trainable):,}"


def data(args) -> int:
    from urbanst.data import registry

    if args.data_command == "list":
        rows = []
        for name in registry.dataset_names(args.data_dir):
            try:
                s = registry.load_dataset(name, args.data_dir).summary()
                rows.append([name, "x".join(map(str, s["shape"])), s["step"], f"{s['start'][:10]}..{s['end'][:10]}",
                             s["city"], f"{s['missing_pct']:.2f}"])
            except UrbanstError as err:
                rows.append([name, "-", "-", "-", "-", f"not available: {str(err).split(';')[0]}"])
        print_rows(["name", "shape T x N x C", "step", "span", "city", "missing %"], rows)
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
        print(f"imported {args.file} as {args.name!r} into {folder}: shape {summary['shape']}, "
              f"missing {summary['missing_pct']}%")
        return 0
    if args.data_command == "download":
        from urbanst.data.download import download

        folder = download(args.name, args.data_dir)
        print(f"downloaded {args.name} into {folder}")
        return 0
    raise UrbanstError("use one of: urbanst data list | info NAME | import FILE --name NAME | download NAME")
