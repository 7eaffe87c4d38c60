"""Is a caller speech segment only the agent's own voice coming back? (`EchoCheck`)

On a phone line the caller's channel carries an echo of what the agent plays, delayed by the
network and the handset and changed by codecs, so the hearing's VAD cuts the agent's own words as
caller segments and Whisper writes them into the call as if the caller had said them (seen in
`parley eval --background`: "Sorry actually. A nighting to deliver your bread?" in a caller's
turn). Waveforms do not survive the line, but the loudness contour does: `EchoCheck` keeps the
agent's log-energy per 20 ms as it is played, and calls a segment an echo when the agent was
sounding through most of it and, at some delay up to `max_delay_s`, the segment's contour follows
the agent's closely (Pearson r >= `min_r`). A caller talking over the agent adds a contour of its
own, which lowers r, so a barge-in is kept. Short segments are never called echoes: too few
frames to tell. Numpy only; never logs audio.
"""

from __future__ import annotations

import numpy as np

from model.protocol import SAMPLE_RATE

HOP = SAMPLE_RATE // 50  # 20 ms
FLOOR_DB = -70.0  # silence, and any frame the agent played nothing in
ACTIVE_DB = -45.0  # the agent is sounding in a frame at least this loud
RANGE_DB = 30.0  # contours are compared over their loudest this many dB


def log_energy(audio: np.ndarray) -> np.ndarray:
    """dB of each whole 20 ms hop of float audio in [-1, 1], at least FLOOR_DB."""
    n = len(audio) // HOP
    frames = np.asarray(audio[: n * HOP], np.float64).reshape(n, HOP)
    return np.maximum(10 * np.log10(np.mean(frames**2, axis=1) + 1e-12), FLOOR_DB)


class EchoCheck:
    def __init__(
        self,
        *,
        max_delay_s: float = 1.0,
        min_r: float = 0.8,
        min_active: float = 0.6,
        min_s: float = 0.4,
        keep_s: float = 60.0,
    ) -> None:
        self.max_lag = round(max_delay_s * 50)
        self.min_r, self.min_active, self.min_hops = min_r, min_active, round(min_s * 50)
        self._env = np.full(round(keep_s * 50), FLOOR_DB)  # a ring: hop h at h % len
        self._newest = -1  # the latest hop written

    def agent(self, audio: np.ndarray, start_s: float) -> None:
        """The agent's float audio, played from `start_s` on the caller's clock."""
        env = log_energy(audio)
        first = round(start_s * 50)
        for i, value in enumerate(env):
            h = first + i
            if h > self._newest:  # hops skipped since (nothing played) are silence
                for gap in range(self._newest + 1, h):
                    self._env[gap % len(self._env)] = FLOOR_DB
                self._newest = h
            self._env[h % len(self._env)] = value

    def _agent_env(self, first: int, n: int) -> np.ndarray:
        out = np.full(n, FLOOR_DB)
        for i in range(n):
            h = first + i
            if 0 <= h <= self._newest and self._newest - h < len(self._env):
                out[i] = self._env[h % len(self._env)]
        return out

    def is_echo(self, audio: np.ndarray, start_s: float) -> bool:
        """Whether caller `audio` (float, starting at `start_s` on the caller's clock) is only
        the agent's echo."""
        env = log_energy(audio)
        if len(env) < self.min_hops or np.std(env) < 1e-6:
            return False
        first = round(start_s * 50)
        for lag in range(self.max_lag + 1):
            agent = self._agent_env(first - lag, len(env))
            if np.mean(agent > ACTIVE_DB) < self.min_active or np.std(agent) < 1e-6:
                continue
            if np.corrcoef(_top(env), _top(agent))[0, 1] >= self.min_r:
                return True
        return False


def _top(env: np.ndarray) -> np.ndarray:
    """A contour's top RANGE_DB: below that, line noise and the echo's own attenuation decide."""
    return np.maximum(env, env.max() - RANGE_DB)
