"""agent.echo: the agent's own voice coming back in the caller's channel is not heard as the
caller; a caller talking, alone or over the agent, is (real espeak-ng voices through the
telephone line of bench.voice)."""

import numpy as np
import pytest

from agent.echo import EchoCheck, log_energy

pytest.importorskip("espeakng_loader")

from bench.voice import telephone  # noqa: E402
from corpus.tts import Espeak  # noqa: E402

AGENT_AT = 1.0  # the agent's line plays from here on the caller's clock
DELAY = 0.24  # and comes back this much later


@pytest.fixture(scope="module")
def voices():
    tts = Espeak.instance()
    agent = tts.synthesize_16k(
        "Your order shipped on June twenty sixth and should arrive by July second.", "en-us+f3"
    )
    caller = tts.synthesize_16k(
        "Hi, I want to return a notebook set, it does not look like the picture.", "en-gb+m3"
    )
    return agent.audio, caller.audio


def _check(agent: np.ndarray) -> EchoCheck:
    check = EchoCheck()
    for k in range(0, len(agent) - 3200 + 1, 3200):  # as the call plays it, 200 ms at a time
        check.agent(agent[k : k + 3200], AGENT_AT + k / 16000)
    return check


def test_the_agents_echo_is_an_echo_and_the_caller_is_not(voices):
    agent, caller = voices
    check = _check(agent)
    line = telephone(0.1 * agent)  # -20 dB, through an 8 kHz mu-law line, plus line noise
    echo = line + 0.002 * np.random.default_rng(0).standard_normal(len(line)).astype(np.float32)
    assert check.is_echo(echo, AGENT_AT + DELAY)
    assert check.is_echo(echo, AGENT_AT + DELAY - 0.2)  # a segment's pre-roll: the delay is searched
    talk = telephone(0.5 * caller)
    assert not check.is_echo(talk, AGENT_AT + DELAY)  # the caller over the agent's sound
    n = min(len(talk), len(echo))
    assert not check.is_echo(talk[:n] + echo[:n], AGENT_AT + DELAY)  # a barge-in, echo and all
    assert not check.is_echo(talk, 30.0)  # the agent silent


def test_short_or_flat_segments_are_never_echoes(voices):
    agent, _ = voices
    check = _check(agent)
    assert not check.is_echo(telephone(0.1 * agent)[:3200], AGENT_AT + DELAY)  # 200 ms: too short
    assert not check.is_echo(np.zeros(16000, np.float32), AGENT_AT)
    assert not EchoCheck().is_echo(telephone(0.1 * agent), AGENT_AT)  # nothing played yet


def test_log_energy_is_per_20_ms_with_a_floor():
    x = np.concatenate([np.zeros(320), 0.5 * np.ones(320), np.zeros(100)]).astype(np.float32)
    env = log_energy(x)
    assert env.shape == (2,) and env[0] == -70.0 and -7 < env[1] < -5
