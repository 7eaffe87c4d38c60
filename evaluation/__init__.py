"""`parley eval`: held-out scenarios through the real model server, scored against a VAD cascade.

The metrics know nothing about the model, audio files or reports; they read an annotated scenario
(`metrics.Annotations`) and what the agent did in it (`metrics.AgentTrack`).
"""
