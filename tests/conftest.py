"""Shared test fixtures.

Tests that need the real datasets use the ``data_root`` fixture: it points at
``URBANST_DATA`` (CI sets it to ``../shared/data``) and skips, saying why, when the
folder is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from urbanst.backbones.loading import quiet_transformers

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _real_data_root() -> Path | None:
    env = os.environ.get("URBANST_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for path in candidates:
        if (path / "nyc_manhattan_bike_taxi_69zones").is_dir():
            return path
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _real_data_root()
    if root is None:
        pytest.skip("real datasets not found: set URBANST_DATA to the shared data folder (CI uses ../shared/data)")
    return root


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> str:
    """A tiny random GPT-2 saved to a folder, loadable by path (no tokenizer: text is read as bytes, hence
    512 positions). Test modules may define their own ``tiny_gpt2``; theirs wins there."""
    from urbanst.backbones import build_tiny_backbone, save_backbone

    return str(save_backbone(build_tiny_backbone("gpt2", hidden=32, layers=2, max_positions=512, seed=0),
                             tmp_path_factory.mktemp("lm") / "tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_chronos(tmp_path_factory) -> str:
    """A Chronos-Bolt checkpoint of random weights saved to a folder (nothing downloaded)."""
    from chronos.chronos_bolt import ChronosBoltModelForForecasting
    from transformers import T5Config

    config = T5Config(d_model=16, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=8, vocab_size=2,
                      decoder_start_token_id=0, pad_token_id=0, use_cache=False)
    config.chronos_config = dict(context_length=64, prediction_length=16, input_patch_size=8, input_patch_stride=8,
                                 quantiles=[0.1, 0.5, 0.9], use_reg_token=True)
    config.chronos_pipeline_class = "ChronosBoltPipeline"
    config.architectures = ["ChronosBoltModelForForecasting"]
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("chronos") / "tiny-chronos-bolt"
    with quiet_transformers():
        ChronosBoltModelForForecasting(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module of small models: they step many times faster on one thread than on a
    contended pool, and the arithmetic is the same in every process (kill-and-resume, DDP). Modules opt in
    with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
