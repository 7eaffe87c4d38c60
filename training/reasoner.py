"""Fine-tuning the background model's reasoner: a LoRA adapter on SmolLM2-135M-Instruct, trained
on text calls, written as a llama.cpp adapter GGUF that `workers.reasoner_local.LocalReasoner` loads
over the packaged base weights.

    parley train-reasoner --out ~/.cache/parley/train/reasoner [--minutes M] [--resume]

The data: synthetic support calls (corpus.support_text, seeds below the held-out range) and calls
to many other generated agents with tools of their own (corpus.agent_calls), each in the order the
live loop produces it. A call is one sequence in exactly the prompt `workers.reasoner` builds
(`chat_messages` -> ChatML, tokenised as llama.cpp does); the loss is on the call's assistant turns
(the decisions), never on the brief, its demo call or the greeting. The base weights are the
packaged Q4_1 ones dequantised (transformers reads the GGUF), the same numbers llama.cpp serves.

Every `checkpoint_every` optimiser steps the run directory gets the adapter (`adapter.gguf`), the
trainer state (`state.pt`: LoRA weights, optimiser, step, position in the data) and `losses.jsonl`;
`--resume` continues from there. Nothing is downloaded: the base model comes from its package.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workers.reasoner import Brief, chat_messages, smollm2_path

log = logging.getLogger(__name__)
logging.getLogger("gguf").setLevel(logging.WARNING)  # its writer logs every file at INFO

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Hugging Face's module names -> llama.cpp's tensor names (blk.N.<name>.weight).
GGUF_NAMES = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}
ADAPTER_FILE = "adapter.gguf"
STATE_FILE = "state.pt"
LOSSES_FILE = "losses.jsonl"


@dataclass(frozen=True)
class ReasonerTrainConfig:
    rank: int = 16
    alpha: float = 32.0
    lr: float = 3e-4
    warmup_steps: int = 10
    total_steps: int = 400  # the learning-rate schedule's length (cosine to 10%)
    calls_per_step: int = 4
    max_tokens: int = 1536  # longer calls are left out
    support_share: float = 0.5  # the rest: other agents (corpus.agent_calls)
    demo_share: float = 0.25  # support calls briefed with the shipped agent's demo call
    seed: int = 0
    checkpoint_every: int = 10
    threads: int = 2


# --- the data -------------------------------------------------------------------------------------
def text_calls(cfg: ReasonerTrainConfig, start: int = 0) -> Iterator[tuple[int, Brief, list[dict]]]:
    """(index, brief, events) from index `start` on, the same for the same config."""
    from corpus.support_text import support_brief, support_text_call

    i = start
    while True:
        rng = random.Random(f"reasoner-data:{cfg.seed}:{i}")
        if rng.random() < cfg.support_share:
            brief = support_brief(examples=rng.random() < cfg.demo_share, shipped=rng.random() < 0.5)
            _, events = support_text_call(rng.randrange(800_000), brief)
        else:
            from corpus.agent_calls import agent_call

            call = agent_call(rng.randrange(10**9))
            brief, events = call.brief, list(call.events)
        yield i, brief, events
        i += 1


def _piece(role: str, content: str) -> tuple[str, str]:
    return f"<|im_start|>{role}\n", f"{content}<|im_end|>\n"


def encode_call(
    tokenize: Callable[[str], list[int]], brief: Brief, events: list[dict]
) -> tuple[list[int], list[bool]]:
    """The call as the reasoner's prompt, token ids and which of them are trained on: the content
    and end of every assistant turn after the greeting (the decisions)."""
    fixed = len(chat_messages(brief, [])) - 1  # system, demo call, "(new call)", greeting
    messages = chat_messages(brief, events)
    if events and messages[-1]["role"] == "user" and messages[-1]["content"] == "(nothing new)":
        messages = messages[:-1]  # chat_messages asks for the next decision; the call has ended
    ids: list[int] = []
    mask: list[bool] = []
    for n, m in enumerate(messages):
        head, body = _piece(m["role"], m["content"])
        h, b = tokenize(head), tokenize(body)
        learn = m["role"] == "assistant" and n >= fixed
        ids += h + b
        # the content and <|im_end|>, not the newline after it
        mask += [False] * len(h) + [learn] * (len(b) - 1) + [False]
    return ids, mask


def llama_tokenizer() -> Callable[[str], list[int]]:
    """llama.cpp's own tokenisation of the base model (what serving feeds it)."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(smollm2_path()), vocab_only=True, verbose=False)
    return lambda text: llm.tokenize(text.encode(), add_bos=False, special=True)


# --- the model ------------------------------------------------------------------------------------
def load_model(cfg: ReasonerTrainConfig):
    """The packaged base model (dequantised) with fresh LoRA layers on every linear of its blocks."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    path = smollm2_path()
    base = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    lora = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, target_modules=list(TARGETS), lora_dropout=0.0)
    return get_peft_model(base, lora)


def decision_loss(model, ids: list[int], mask: list[bool]):
    """Mean cross-entropy of the trained tokens given all before them; the vocabulary projection
    only where a token is trained on (a fifth of the step's time otherwise)."""
    import torch
    import torch.nn.functional as F

    x = torch.tensor([ids])
    inner = model.get_base_model()
    hidden = inner.model(input_ids=x).last_hidden_state[0]
    target = torch.tensor(mask[1:])
    logits = inner.lm_head(hidden[:-1][target])
    return F.cross_entropy(logits, x[0, 1:][target])


def lora_state(model) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}


# --- the adapter as llama.cpp reads it --------------------------------------------------------------
def _to_gguf_layout(b: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp keeps q and k rows in another order than Hugging Face (its converter permutes
    them for its rotary embedding; transformers undoes it when it reads a GGUF): a LoRA B of q or k
    is permuted the same way."""
    out_dim = b.shape[0]
    return b.reshape(heads, 2, out_dim // heads // 2, *b.shape[1:]).swapaxes(1, 2).reshape(b.shape)


def write_adapter(state: dict[str, Any], path: Path, *, alpha: float, heads: int, kv_heads: int) -> Path:
    """A PEFT LoRA state dict as a llama.cpp LoRA adapter GGUF (f16)."""
    import gguf

    tensors: dict[str, np.ndarray] = {}
    for key, value in state.items():
        parts = key.split(".")
        layer = int(parts[parts.index("layers") + 1])
        module = next(p for p in parts if p in GGUF_NAMES)
        ab = "lora_a" if ".lora_A." in key else "lora_b"
        arr = value.float().numpy()
        if ab == "lora_b" and module in ("q_proj", "k_proj"):
            arr = _to_gguf_layout(arr, heads if module == "q_proj" else kv_heads)
        tensors[f"blk.{layer}.{GGUF_NAMES[module]}.weight.{ab}"] = arr.astype(np.float16)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch="llama")
    writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    for name in sorted(tensors):
        writer.add_tensor(name, tensors[name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(path)
    return path


def export_adapter(model, cfg: ReasonerTrainConfig, path: Path) -> Path:
    c = model.get_base_model().config
    return write_adapter(
        lora_state(model), path, alpha=cfg.alpha, heads=c.num_attention_heads, kv_heads=c.num_key_value_heads
    )


# --- the loop -------------------------------------------------------------------------------------
def _lr(cfg: ReasonerTrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def train_reasoner(
    out: Path,
    cfg: ReasonerTrainConfig,
    *,
    minutes: float | None = None,
    steps: int | None = None,
    resume: bool = False,
    progress: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Train until `minutes` or `steps` (optimiser steps, in all) or cfg.total_steps; returns the
    last record. The run directory holds the adapter, the state and the losses."""
    import torch

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    model = load_model(cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    step, cursor = 0, 0
    if resume and state_path.is_file():
        saved = torch.load(state_path, weights_only=False)
        if saved["config"] != asdict(cfg):
            raise ValueError(f"{state_path} was trained with another configuration: {saved['config']}")
        model.load_state_dict(saved["lora"], strict=False)
        opt.load_state_dict(saved["optimizer"])
        step, cursor = saved["step"], saved["cursor"]
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    tokenize = llama_tokenizer()
    data = text_calls(cfg, cursor)
    last_step = min(steps or cfg.total_steps, cfg.total_steps)
    deadline = time.monotonic() + minutes * 60 if minutes else None
    record: dict[str, Any] = {"step": step}
    model.train()
    while step < last_step and (deadline is None or time.monotonic() < deadline):
        t0 = time.perf_counter()
        losses, tokens, trained = [], 0, 0
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, step)
        done = 0
        while done < cfg.calls_per_step:
            cursor, brief, events = next(data)
            cursor += 1
            ids, mask = encode_call(tokenize, brief, events)
            if len(ids) > cfg.max_tokens or not any(mask):
                continue
            loss = decision_loss(model, ids, mask)
            (loss / cfg.calls_per_step).backward()
            losses.append(loss.item())
            tokens, trained, done = tokens + len(ids), trained + sum(mask), done + 1
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        record = {
            "step": step,
            "loss": round(float(np.mean(losses)), 4),
            "lr": round(_lr(cfg, step - 1), 6),
            "tokens": tokens,
            "trained_tokens": trained,
            "step_s": round(time.perf_counter() - t0, 2),
            "cursor": cursor,
        }
        with (out / LOSSES_FILE).open("a") as f:
            f.write(json.dumps(record) + "\n")
        if progress:
            progress(record)
        if step % cfg.checkpoint_every == 0 or step == last_step:
            _checkpoint(model, opt, cfg, out, step, cursor)
    _checkpoint(model, opt, cfg, out, step, cursor)
    return record


def _checkpoint(model, opt, cfg: ReasonerTrainConfig, out: Path, step: int, cursor: int) -> None:
    import torch

    tmp = out / (STATE_FILE + ".tmp")
    saved = {"lora": lora_state(model), "optimizer": opt.state_dict(), "step": step, "cursor": cursor}
    torch.save({**saved, "config": asdict(cfg)}, tmp)
    tmp.replace(out / STATE_FILE)
    export_adapter(model, cfg, out / ADAPTER_FILE)
