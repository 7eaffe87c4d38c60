"""Telephony: getting call audio in and out of Parley, and nothing about what is said.

This package holds the transports (websocket media-stream protocols, SIP) and the audio plumbing
they share: G.711 and PCM16 codecs as pure functions (`g711`), a streaming resampler per call
direction (`resample`), a framer that cuts caller audio into the model's 200 ms frames of 3200
samples at 16 kHz (`framer`), and a pacer that sends agent audio out as real-time 20 ms packets
(`pacer`). Stateful pieces are small classes with push/flush/clear, one per call direction, whose
sample rate is fixed for the life of a stream. Nothing here knows about the model, the agent's
behaviour, transcripts or tools: audio in, audio out.
"""
