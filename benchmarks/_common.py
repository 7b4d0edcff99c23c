"""Helpers shared by the benchmark scripts: the device, synthetic batches of fixed shape, one training step,
timing, peak memory, and running one measurement in a fresh process (so that its peak memory is its own)."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import re
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

DEEP_MODELS = ["stid", "unist", "promptst", "st_llm", "urbangpt", "urbanmind", "airgpt", "llm4hrs"]


def parser(doc: str, models: str):
    """The flags every script takes: --models, --accelerator, --threads, --json."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--models", default=models, help=f"comma-separated (default {models})")
    p.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    p.add_argument("--json", help="also write the results to this JSON file")
    return p


def start(p, argv) -> tuple:
    """(arguments, model names, device), after printing the device the figures come from."""
    args = p.parse_args(argv)
    device = setup(args)
    print(f"device: {device_text(device)}")
    return args, [m.strip() for m in args.models.split(",") if m.strip()], device


def write_json(args, device, **results) -> None:
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device_text(device), **results}, indent=2))


def setup(args) -> torch.device:
    """Threads, seed and device of a measurement (also called in each fresh process)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.accelerator == "gpu":
        if not torch.cuda.is_available():
            raise SystemExit("--accelerator gpu: torch sees no CUDA device here")
        return torch.device("cuda")
    return torch.device("cpu")


def device_text(device: torch.device) -> str:
    torch_text = f"torch {torch.__version__}"
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"GPU {p.name} ({p.total_memory / 2**30:.0f} GiB), {torch_text}"
    cpu = _cpu_model() or platform.processor() or platform.machine()
    return f"CPU {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, {torch_text}"


def _cpu_model() -> str:
    try:
        match = re.search(r"model name\s*:\s*(.+)", open("/proc/cpuinfo").read())
    except OSError:
        return ""
    return match.group(1).strip() if match else ""


def task_of(model: str) -> str:
    from urbanst.models.registry import model_class

    return model_class(model).tasks[0]


def synthetic_data(model: str, units: int, weeks: int):
    """A synthetic region city of ``units`` units (the air-quality city for airgpt, which needs wind)."""
    from urbanst.data.synthetic import make_city
    from urbanst.data.synthetic_air import make_air

    if model.startswith("airgpt"):
        return make_air(stations=units, weeks=weeks)
    return make_city("region", num_units=units, weeks=weeks)


def training_batches(model: str, units: int, history: int, horizon: int, batch: int, count: int,
                     device: torch.device, weeks: int = 4):
    """(data spec, ``count`` distinct training batches of ``batch`` windows on ``device``) for ``model``'s task."""
    from urbanst.data.splits import SplitRule
    from urbanst.tasks import make_task

    data = synthetic_data(model, units, weeks)
    task = make_task(task_of(model), history, None if task_of(model) == "impute" else horizon, SplitRule())
    windows = task.windows(data, task.fit_scaler(data), splits=("train",))["train"]
    if len(windows) < batch * count:
        raise SystemExit(f"{units} units, history {history}: {len(windows)} training windows, need {batch * count}")
    batches = [to_device(windows.__getitems__(list(range(i * batch, (i + 1) * batch))), device) for i in range(count)]
    return task.data_spec(data), batches


def build_model(model: str, spec, device: torch.device) -> torch.nn.Module:
    from urbanst.models.registry import model_class

    return model_class(model).build(spec).to(device)


def to_device(value, device: torch.device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


def loss_of(model: torch.nn.Module):
    """``batch -> loss`` of the model's task (the loss reads the batch, not the task's window lengths)."""
    from urbanst.data.splits import SplitRule
    from urbanst.tasks import make_task

    task = make_task(model.task, None, None, SplitRule())
    return lambda batch: task.loss(model, batch)


def training_step(model: torch.nn.Module):
    """A closure running one step: the loss of the model's task, backward, AdamW over the trainable parameters."""
    loss = loss_of(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step(batch) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss(batch).backward()
        optimizer.step()

    return step


def seconds_per_call(fn, batches: list, iters: int, warmup: int, device: torch.device) -> float:
    """Mean wall seconds of ``fn(batch)`` over ``iters`` calls after ``warmup`` calls (GPU work synchronised)."""
    for i in range(warmup):
        fn(batches[i % len(batches)])
    _sync(device)
    start = time.perf_counter()
    for i in range(iters):
        fn(batches[i % len(batches)])
    _sync(device)
    return (time.perf_counter() - start) / iters


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: the process's resident set (Linux VmHWM) and, on a GPU, torch's allocator."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def memory_mib(device: torch.device) -> dict:
    """Current and peak resident memory of this process in MiB, and torch's GPU peak where there is a GPU."""
    status = open("/proc/self/status").read()
    read = lambda key: int(re.search(rf"{key}:\s+(\d+)", status).group(1)) / 1024  # noqa: E731
    out = {"rss_mib": round(read("VmRSS"), 1), "peak_rss_mib": round(read("VmHWM"), 1)}
    if device.type == "cuda":
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def parameter_counts(model: torch.nn.Module) -> dict:
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def isolated(fn, *args):
    """``fn(*args)`` in a fresh process (spawned: no memory or threads inherited); returns its result. A process
    killed on the way (out of memory) raises ``BrokenProcessPool``."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def print_table(header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    for row in [header, *rows]:
        print("  ".join(str(x).rjust(w) for x, w in zip(row, widths)))
