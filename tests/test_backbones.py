"""Language-model backbones: loading by path, freezing policies, saving only what trains."""

from __future__ import annotations

import json
import re
import socket

import pytest
import torch
from torch import nn

from urbanst.backbones import (
    FAMILIES,
    apply_freezing,
    backbone_state_to_save,
    build_backbone,
    build_tiny_backbone,
    load_adapter,
    load_backbone,
    parse_policy,
    save_adapter,
    save_backbone,
    state_to_save,
    trainable_summary,
)
from urbanst.errors import UrbanstError

POLICIES = ("frozen", "ln_only", "pfa:1", "pfa:2", "last:1", "lora:4", "full")
HIDDEN, VOCAB = 32, 128

# What each policy must train, written out per family independently of the library's rules.
NORMS = {
    "gpt2": r"^model\.(h\.\d+\.ln_[12]|ln_f)\.",
    "llama": r"^model\.(layers\.\d+\.(input_layernorm|post_attention_layernorm)|norm)\.weight$",
    "bert": r"^model\.(embeddings|encoder\.layer\.\d+\.(attention\.output|output))\.LayerNorm\.",
}
POSITIONS = {"gpt2": r"^model\.wpe\.weight$", "llama": r"(?!)", "bert": r"^model\.embeddings\.position_embeddings\.weight$"}
ATTENTION = {"gpt2": r"^model\.h\.{i}\.attn\.", "llama": r"^model\.layers\.{i}\.self_attn\.", "bert": r"^model\.encoder\.layer\.{i}\.attention\."}
BLOCK = {"gpt2": r"^model\.h\.{i}\.", "llama": r"^model\.layers\.{i}\.", "bert": r"^model\.encoder\.layer\.{i}\."}
LORA_MODULES = {
    "gpt2": {"attn.c_attn", "attn.c_proj"},
    "llama": {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"},
    "bert": {"attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"},
}


def expected_trained(family: str, policy: str, names: list[str], num_layers: int = 2) -> set[str]:
    if policy == "frozen":
        return set()
    if policy == "full":
        return set(names)
    if policy.startswith("lora"):
        return {n for n in names if ".lora_A." in n or ".lora_B." in n}
    if policy.startswith("last"):
        block = BLOCK[family].format(i=num_layers - 1)
        return {n for n in names if re.search(block, n)}
    patterns = [NORMS[family], POSITIONS[family]]
    if policy.startswith("pfa"):
        units = int(policy.split(":")[1])
        patterns += [ATTENTION[family].format(i=i) for i in range(num_layers - units, num_layers)]
    return {n for n in names if any(re.search(p, n) for p in patterns)}


def inputs(seed: int = 0, batch: int = 2, length: int = 5):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (batch, 3), generator=gen)
    embeds = torch.randn(batch, length, HIDDEN, generator=gen)
    return ids, embeds


def run(backbone, ids, embeds, mask=None):
    return backbone(torch.cat([backbone.embed_tokens(ids), embeds], dim=1), mask)


def train_steps(backbone, steps: int = 2) -> None:
    """Adam steps on a dummy loss; two, so LoRA's A (zero gradient while B is zero) moves too."""
    ids, embeds = inputs()
    target = torch.randn(2, 8, HIDDEN, generator=torch.Generator().manual_seed(1))
    params = [p for p in backbone.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-2) if params else None
    backbone.train()
    for _ in range(steps):
        loss = (run(backbone, ids, embeds) * target).sum()
        if opt is not None:
            opt.zero_grad()
            loss.backward()
            opt.step()
    backbone.eval()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a backbone test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# -- freezing policies ------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("policy", POLICIES)
def test_policy_trains_exactly_its_parameters(family, policy):
    backbone = apply_freezing(build_tiny_backbone(family, hidden=HIDDEN, vocab=VOCAB, seed=0), policy)
    named = dict(backbone.named_parameters())
    expected = expected_trained(family, policy, list(named))
    assert backbone.policy == policy
    assert {n for n, p in named.items() if p.requires_grad} == expected
    if policy != "frozen":
        assert expected
    if policy.startswith("lora"):
        lora_modules = {n.split(".lora_")[0] for n in expected}
        assert {re.sub(r"^.*?\.\d+\.", "", m) for m in lora_modules} == LORA_MODULES[family]
        assert len(lora_modules) == 2 * len(LORA_MODULES[family])  # every block
    summary = trainable_summary(backbone)
    assert summary == {"trainable": sum(named[n].numel() for n in expected), "total": sum(p.numel() for p in named.values())}

    before = {n: p.detach().clone() for n, p in named.items()}
    train_steps(backbone)
    changed = {n for n, p in backbone.named_parameters() if not torch.equal(p, before[n])}
    assert changed == expected
    for n in set(named) - expected:
        assert torch.equal(named[n], before[n])  # bit-identical


@pytest.mark.parametrize("bad", ["", "half", "lora", "lora:0", "pfa:x", "pfa:-1", "pfa:1.5", "LN_ONLY", None, 3])
def test_bad_policy_lists_valid_forms(bad):
    with pytest.raises(UrbanstError, match=r"frozen, ln_only, pfa:U, last:U, lora:R, full"):
        parse_policy(bad)


def test_policy_limits():
    backbone = build_tiny_backbone("gpt2", layers=2)
    for policy in ("pfa:3", "last:3"):
        with pytest.raises(UrbanstError, match="only 2 layers"):
            apply_freezing(backbone, policy)
    apply_freezing(backbone, "ln_only")
    apply_freezing(backbone, "lora:2")
    apply_freezing(backbone, "lora:2")  # the same LoRA again is fine
    with pytest.raises(UrbanstError, match="already carries LoRA"):
        apply_freezing(backbone, "full")
    with pytest.raises(UrbanstError, match="policy 'lora:2', not 'pfa:1'"):
        backbone_state_to_save(backbone, "pfa:1")


# -- loading ------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_forward_shape_and_direction(family):
    backbone = build_tiny_backbone(family, seed=0)
    ids, embeds = inputs()
    out = run(backbone, ids, embeds)
    assert out.shape == (2, 8, HIDDEN)
    poked = embeds.clone()
    poked[:, -1] += torch.randn(HIDDEN)  # not a constant shift: BERT's embedding LayerNorm would erase it
    out2 = run(backbone, ids, poked)
    earlier_same = torch.allclose(out[:, :-1], out2[:, :-1], atol=1e-6)
    assert earlier_same == (family != "bert")  # causal GPT-2/LLaMA, bidirectional BERT
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[:, -1] = False  # the poked position is padding: nobody may attend to it
    torch.testing.assert_close(run(backbone, ids, embeds, mask)[:, :-1], run(backbone, ids, poked, mask)[:, :-1])
    with pytest.raises(UrbanstError, match="must be"):
        backbone(torch.randn(2, 5, HIDDEN + 1))
    if backbone.max_length is not None:
        with pytest.raises(UrbanstError, match="positions"):
            backbone(torch.randn(1, backbone.max_length + 1, HIDDEN))


@pytest.mark.parametrize("family", FAMILIES)
def test_save_and_load_by_path(family, tmp_path, no_network):
    tiny = build_tiny_backbone(family, layers=3, seed=0)
    save_backbone(tiny, tmp_path / "lm")
    assert (tmp_path / "lm" / "model.safetensors").is_file()
    loaded = load_backbone(tmp_path / "lm")
    assert (loaded.family, loaded.num_layers, loaded.hidden_size) == (family, 3, HIDDEN)
    assert loaded.source == str((tmp_path / "lm").resolve()) and loaded.tokenizer is None
    ids, embeds = inputs()
    assert torch.equal(run(loaded, ids, embeds), run(tiny, ids, embeds))

    cut = load_backbone(str(tmp_path / "lm"), layers=2)
    assert cut.num_layers == 2 == cut.config.num_hidden_layers
    full_blocks = dict(tiny.blocks.named_parameters())
    for name, param in cut.blocks.named_parameters():
        assert torch.equal(param, full_blocks[name])
    assert not any(n.startswith("2.") for n, _ in cut.blocks.named_parameters())
    for bad in (0, 4, -1, True):
        with pytest.raises(UrbanstError, match="layers="):
            load_backbone(tmp_path / "lm", layers=bad)


def test_pickled_weights_are_refused(tmp_path, monkeypatch):
    folder = tmp_path / "pickled"
    tiny = build_tiny_backbone("gpt2")
    tiny.model.config.save_pretrained(folder)
    torch.save(tiny.model.state_dict(), folder / "pytorch_model.bin")

    def no_unpickling(*args, **kwargs):
        raise AssertionError("urbanst unpickled a checkpoint")

    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(UrbanstError, match=r"only pickled weights \['pytorch_model.bin'\].*never unpickles"):
        load_backbone(folder)


@pytest.mark.parametrize("name", ["/no/such/checkpoint", "./missing-dir", "urbanst-tests/no-such-model"])
def test_missing_checkpoint_says_no_download(name, no_network):
    with pytest.raises(UrbanstError, match=re.escape(repr(name)) + ".*never downloads"):
        load_backbone(name)


def test_unsupported_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt_neo"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(UrbanstError, match="'gpt_neo' is not supported"):
        load_backbone(tmp_path)


@pytest.mark.parametrize("model_type", ["mistral", "qwen2", "roberta"])
def test_other_members_of_the_families(model_type, tmp_path):
    from transformers import AutoConfig, AutoModel

    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=VOCAB)
    if model_type != "roberta":
        sizes["num_key_value_heads"] = 2
    AutoModel.from_config(AutoConfig.for_model(model_type, **sizes)).save_pretrained(tmp_path)
    backbone = apply_freezing(load_backbone(tmp_path), "pfa:1")
    family = {"mistral": "llama", "qwen2": "llama", "roberta": "bert"}[model_type]
    names = [n for n, _ in backbone.named_parameters()]
    assert backbone.family == family
    assert {n for n, p in backbone.named_parameters() if p.requires_grad} == expected_trained(family, "pfa:1", names)
    assert backbone(torch.randn(2, 5, 32)).shape == (2, 5, 32)


def test_embedded_minilm_offline(no_network):
    minilm = load_backbone()
    assert (minilm.source, minilm.family, minilm.hidden_size, minilm.num_layers) == ("minilm", "bert", 384, 6)
    assert minilm.tokenizer is not None and minilm.token_embeddings.num_embeddings == minilm.tokenizer.vocab_size

    def sentence(text: str) -> torch.Tensor:
        ids = minilm.tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            hidden = minilm(minilm.embed_tokens(ids))
        assert hidden.shape == (1, ids.shape[1], 384)
        return hidden.mean(dim=1)[0]

    cat, kitten, market = sentence("a cat sits on the mat"), sentence("a kitten rests on a rug"), sentence("stock prices fell sharply")
    cos = nn.functional.cosine_similarity
    assert cos(cat, kitten, dim=0) > cos(cat, market, dim=0) + 0.1  # real pretrained weights, not random

    short = load_backbone("minilm", layers=2)
    assert short.num_layers == 2 and short.hidden_size == 384
    with pytest.raises(UrbanstError, match="choose 1..6"):
        load_backbone(None, layers=7)


# -- the language-model ablations: none and random ---------------------------------------------
def test_none_keeps_the_embeddings_and_no_transformer_block(no_network):
    minilm, none = load_backbone(), build_backbone("none", layers=2, policy="pfa:1")
    assert (none.source, none.num_layers, none.hidden_size) == ("none", 0, 384)
    assert not any(".layer." in n for n, _ in none.named_parameters())
    assert torch.equal(none.token_embeddings.weight, minilm.token_embeddings.weight)  # instruction text reads the same
    assert {n for n, p in none.named_parameters() if p.requires_grad} == {  # what pfa:1 trains outside the blocks
        "model.embeddings.position_embeddings.weight", "model.embeddings.LayerNorm.weight", "model.embeddings.LayerNorm.bias"}
    embeds = torch.randn(2, 5, 384)
    with torch.no_grad():
        out = none(embeds)
        positions = none.model.embeddings.position_embeddings.weight[:5] + none.model.embeddings.token_type_embeddings.weight[0]
        assert torch.allclose(out, none.model.embeddings.LayerNorm(embeds + positions), atol=1e-5)  # no block between


def test_random_is_the_default_architecture_drawn_anew_and_rebuilds_the_same(no_network):
    minilm, random = build_backbone("minilm", layers=2, policy="pfa:1"), build_backbone("random", layers=2, policy="pfa:1")
    assert (random.source, random.num_layers, random.family) == ("random", 2, "bert")
    shapes = {n: p.shape for n, p in minilm.named_parameters()}
    assert {n: p.shape for n, p in random.named_parameters()} == shapes
    assert ({n for n, p in random.named_parameters() if p.requires_grad}
            == {n for n, p in minilm.named_parameters() if p.requires_grad})  # the same freezing
    pretrained = dict(minilm.named_parameters())
    assert all(not torch.equal(p, pretrained[n]) for n, p in random.named_parameters() if p.dim() > 1)
    again = build_backbone("random", layers=2, policy="pfa:1")
    assert all(torch.equal(p, q) for p, q in zip(random.parameters(), again.parameters()))
    assert random.tokenizer is not None and build_backbone("random").num_layers == 6


def test_ablations_of_a_local_checkpoint(tmp_path, no_network):
    save_backbone(build_tiny_backbone("gpt2", seed=0), tmp_path / "lm")
    random, none = build_backbone(f"random:{tmp_path / 'lm'}"), build_backbone(f"none:{tmp_path / 'lm'}", policy="last:1")
    assert (random.family, random.num_layers, random.source) == ("gpt2", 2, f"random:{(tmp_path / 'lm').resolve()}")
    assert none.num_layers == 0 and not any(p.requires_grad for p in none.parameters())
    assert none(torch.randn(2, 5, HIDDEN)).shape == (2, 5, HIDDEN)


# -- saving what trains --------------------------------------------------------------------------
class Holder(nn.Module):
    """The shape of a zoo model: its own layers plus a backbone."""

    def __init__(self, backbone):
        super().__init__()
        self.head = nn.Linear(HIDDEN, 1)
        self.backbone = backbone

    def forward(self, ids, embeds):
        return self.head(run(self.backbone, ids, embeds))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("policy", ["frozen", "ln_only", "pfa:1", "lora:4", "full"])
def test_state_to_save_holds_only_what_trains_and_reloads(family, policy, tmp_path):
    save_backbone(build_tiny_backbone(family, seed=0), tmp_path / "lm")
    model = Holder(build_backbone(tmp_path / "lm", policy=policy))
    with torch.no_grad():  # stands in for training: move every trainable tensor
        for param in model.backbone.parameters():
            if param.requires_grad:
                param.add_(0.1 * torch.randn_like(param))
    state = state_to_save(model)
    backbone_keys = {k.removeprefix("backbone.") for k in state if k.startswith("backbone.")}
    assert backbone_keys == expected_trained(family, policy, [n for n, _ in model.backbone.named_parameters()])
    assert {"head.weight", "head.bias"} <= set(state)

    torch.manual_seed(123)
    fresh = Holder(build_backbone(tmp_path / "lm", policy=policy))  # rebuilt from the path, then the trained part
    result = fresh.load_state_dict(state, strict=False)
    assert not result.unexpected_keys
    assert set(result.missing_keys).isdisjoint(state)
    ids, embeds = inputs(seed=5)
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(ids, embeds), model(ids, embeds))


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")
@pytest.mark.parametrize("family", FAMILIES)
def test_lora_adapter_in_peft_format(family, tmp_path):
    from peft import PeftModel
    from transformers import AutoModel

    save_backbone(build_tiny_backbone(family, seed=0), tmp_path / "lm")
    trained = build_backbone(tmp_path / "lm", policy="lora:4")
    train_steps(trained)
    save_adapter(trained, tmp_path / "adapter")
    assert {p.name for p in (tmp_path / "adapter").iterdir()} == {"adapter_model.safetensors", "adapter_config.json"}
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["r"] == 4

    reloaded = load_adapter(load_backbone(tmp_path / "lm"), tmp_path / "adapter")
    assert reloaded.policy == "lora:4"
    assert trainable_summary(reloaded) == trainable_summary(trained)
    ids, embeds = inputs(seed=7)
    with torch.no_grad():
        expected = run(trained, ids, embeds)
        assert not torch.equal(expected, run(load_backbone(tmp_path / "lm"), ids, embeds))  # the adapter matters
        assert torch.equal(run(reloaded, ids, embeds), expected)
        # peft itself reads the same folder onto the plain Hugging Face model
        plain = PeftModel.from_pretrained(AutoModel.from_pretrained(tmp_path / "lm"), tmp_path / "adapter").eval()
        x = torch.cat([trained.embed_tokens(ids), embeds], dim=1)
        torch.testing.assert_close(plain(inputs_embeds=x).last_hidden_state, expected)

    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": 1}))
    with pytest.raises(UrbanstError, match="lora_alpha"):
        load_adapter(load_backbone(tmp_path / "lm"), tmp_path / "adapter")
    with pytest.raises(UrbanstError, match="not lora:R"):
        save_adapter(load_backbone(tmp_path / "lm"), tmp_path / "nothing")
    with pytest.raises(UrbanstError, match="save_adapter"):
        save_backbone(trained, tmp_path / "again")
