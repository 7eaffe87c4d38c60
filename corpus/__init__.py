"""Synthetic two-channel calls for training and evaluation: scripts, speech, line effects, labels.

Data tooling, never the serving path: it drives espeak-ng and piper (both GPL-3.0), which only this
package and `evaluation` may load (an import contract in pyproject.toml checks it).
"""
