"""Parley's interaction model: one full-duplex Mixture-of-Experts model stepped in 200 ms micro-turns.

Weights (`interaction.InteractionModel`), per-call streaming state (`state.StreamState`), dMel
features, the streaming vocoder, the byte tokenizer and checkpoints. Knows nothing of telephony.
"""
