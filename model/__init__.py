"""Parley's interaction model and its serving: one full-duplex MoE model stepped in 200 ms micro-turns.

The network (`interaction.InteractionModel`, backbone, MoE, dMel, vocoder, tokenizer, sampling),
per-call streaming state (`state.StreamState`), checkpoints, and the serving stack (`scheduler`
decides, `runner` computes, `server` speaks `protocol` to the gateways). Imports nothing of Parley
outside itself; `protocol` is torch-free so every side of the session can share it.
"""
