"""`make run`'s demo summary: what the caller said, what the background model did, what the agent
wrote, and what Whisper hears on the agent's channel of the recording."""

from __future__ import annotations

import numpy as np
import pytest

from parley.call import write_stereo_wav
from parley.serve import HEARD_CHARS, agent_heard, readable


def test_the_summary_reads_as_lines_a_person_can_follow():
    summary = {
        "duration_s": 20.1,
        "out": "out/demo/call.wav",
        "caller_said": ["The number is B-40808."],
        "background": [
            {"kind": "tool", "tool": "lookup_order", "arguments": {"order_id": "B-40808"}, "ms": 900},
            {"kind": "reply", "text": "It shipped on June 26th.", "ms": 700},
        ],
        "agent_wrote": ["Sure, one moment.", "It shipped on June 26th."],
        "agent_heard": "It shipped on June 26th. " * 40,
    }
    lines = readable(summary)
    assert "  caller said:      The number is B-40808." in lines
    lookup = '  background model: call lookup_order {"order_id": "B-40808"}'
    assert any(line.startswith(lookup) for line in lines)
    assert "  agent wrote:      It shipped on June 26th." in lines
    heard = [line for line in lines if line.startswith("  agent heard as:")]
    assert len(heard) == 1 and " ..." in heard[0] and len(heard[0]) < HEARD_CHARS + 80


def test_no_recogniser_no_heard_line():
    assert not any("heard as" in line for line in readable({"agent_heard": None}))


def test_a_silent_agent_channel_is_heard_as_no_words(tmp_path):
    pytest.importorskip("faster_whisper")
    from evaluation.asr import Recogniser

    if not Recogniser().available():
        pytest.skip(Recogniser().unavailable_reason())
    rng = np.random.default_rng(0)
    caller = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    write_stereo_wav(tmp_path / "call.wav", caller, np.zeros(16000, np.float32), 16000)
    assert agent_heard(tmp_path / "call.wav") == ""
