"""Scenario files: loading, validation errors that name file and key, and held-out scenarios whose
annotations line up with the caller audio they describe (real espeak-ng renders)."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from evaluation.metrics import speech_intervals
from evaluation.scenarios import ScenarioError, load_scenario, load_scenarios, read_wav
from telephony.wav import write_float

SR = 16_000


def write_float32(path: Path, x: np.ndarray, rate: int) -> None:
    """An IEEE float WAV (format 3), which the wave module cannot write."""
    data = x.astype("<f4").tobytes()
    fmt = (
        (3).to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + rate.to_bytes(4, "little")
        + (rate * 4).to_bytes(4, "little")
        + (4).to_bytes(2, "little")
        + (32).to_bytes(2, "little")
    )
    body = (
        b"WAVE"
        + b"fmt "
        + len(fmt).to_bytes(4, "little")
        + fmt
        + b"data"
        + len(data).to_bytes(4, "little")
        + data
    )
    path.write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)


def tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


VALID = {
    "agent": "support",
    "annotations": {
        "turn_ends": [1.0],
        "pauses": [[0.4, 0.6]],
        "caller_speech": [[0.0, 0.4], [0.6, 1.0]],
        "tool_calls": [{"name": "lookup_order", "arguments": {"order_id": "A-1"}}],
    },
    "echo": {"delay_ms": 80, "attenuation_db": 25},
    "tool_results": [
        {
            "name": "lookup_order",
            "arguments": {"order_id": "A-1"},
            "result": {"status": "shipped"},
            "delay_s": 1.0,
        }
    ],
    "agent_lines": [{"text": "Hello.", "after_turn_end": None}, {"text": "It shipped.", "after_turn_end": 0}],
    "events": [{"t": 0.5, "kind": "dtmf", "payload": "4"}],
}


def scenario_dir(tmp_path: Path, data: dict, name: str = "call") -> Path:
    write_float(tmp_path / f"{name}.wav", tone(1.5, 8000), 8000)
    (tmp_path / f"{name}.json").write_text(json.dumps(data))
    return tmp_path / f"{name}.json"


def test_a_valid_scenario_loads_resampled_to_16k(tmp_path):
    sc = load_scenario(scenario_dir(tmp_path, VALID))
    assert sc.name == "call" and sc.agent == "support"
    assert sc.audio.dtype == np.float32 and abs(len(sc.audio) - 1.5 * SR) <= 2
    assert sc.annotations.turn_ends == [1.0] and sc.annotations.pauses == [(0.4, 0.6)]
    assert sc.annotations.tool_calls == [("lookup_order", {"order_id": "A-1"})]
    assert sc.echo.delay_ms == 80 and sc.tool_results[0].result == {"status": "shipped"}
    assert [line.after_turn_end for line in sc.agent_lines] == [None, 0]
    assert sc.events[0].kind == "dtmf" and sc.reference_audio is None
    assert [s.name for s in load_scenarios(tmp_path)] == ["call"]


def test_float_wavs_at_any_rate_are_read(tmp_path):
    x = tone(0.5, 22050)
    write_float32(tmp_path / "f.wav", x, 22050)
    y, rate = read_wav(tmp_path / "f.wav")
    assert rate == 22050 and np.array_equal(y, x)


def test_stereo_is_refused(tmp_path):
    with wave.open(str(tmp_path / "s.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0" * 400)
    with pytest.raises(ScenarioError, match="s.wav: 2 channels"):
        read_wav(tmp_path / "s.wav")


def _with(path: tuple, value) -> dict:
    data = json.loads(json.dumps(VALID))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


BAD = [
    (_with(("colour",), "blue"), r"\(top level\): unknown keys \['colour'\]"),
    (_with(("agent",), "sales"), r"agent: unknown agent 'sales'"),
    (_with(("annotations", "turn_end"), [1.0]), r"annotations: unknown keys \['turn_end'\]"),
    (_with(("annotations", "pauses"), [[0.6, 0.4]]), r"annotations.pauses\[0\]: ends before it starts"),
    (_with(("annotations", "barge_ins"), ["soon"]), r"annotations.barge_ins\[0\]: must be a number"),
    (
        _with(("annotations", "tool_calls"), [{"arguments": {}}]),
        r"annotations.tool_calls\[0\]: missing key 'name'",
    ),
    (_with(("echo",), {"delay_ms": 80}), r"echo: missing key 'attenuation_db'"),
    (
        _with(("tool_results", 0, "error"), "boom"),
        r"tool_results\[0\]: needs exactly one of 'result' and 'error'",
    ),
    (
        _with(("agent_lines", 1, "after_turn_end"), 3),
        r"agent_lines\[1\].after_turn_end: must be null or an index",
    ),
    (_with(("events", 0, "kind"), "tool_result"), r"events\[0\].kind: 'tool_result' is not one of"),
    (_with(("events", 0, "t"), -1), r"events\[0\].t: must be a number in \[0, inf\]"),
]


@pytest.mark.parametrize("data,message", BAD, ids=[m for _, m in BAD])
def test_bad_scenarios_are_refused_naming_file_and_key(tmp_path, data, message):
    path = scenario_dir(tmp_path, data)
    with pytest.raises(ScenarioError, match=message) as err:
        load_scenario(path)
    assert str(err.value).startswith(str(path))


INTERJECTION = {
    "kind": "barge_in",
    "wav": "call.int0.wav",
    "not_before": 4.0,
    "after_speech_s": 0.6,
    "not_after": 20.0,
    "text": "Wait, wait.",
}


def with_interjections(tmp_path: Path, *entries: dict) -> Path:
    write_float(tmp_path / "call.int0.wav", tone(0.5, 22050), 22050)
    return scenario_dir(tmp_path, {**VALID, "interjections": list(entries)})


def test_interjections_load_with_their_clips_and_defaults(tmp_path):
    bare = {"kind": "backchannel", "wav": "call.int0.wav"}
    sc = load_scenario(with_interjections(tmp_path, INTERJECTION, bare))
    full, bare = sc.interjections
    assert (full.kind, full.not_before, full.after_speech_s, full.not_after, full.text) == (
        "barge_in",
        4.0,
        0.6,
        20.0,
        "Wait, wait.",
    )
    assert full.audio.dtype == np.float32 and abs(len(full.audio) - SR // 2) <= 2  # resampled to 16 kHz
    assert (bare.kind, bare.not_before, bare.after_speech_s, bare.not_after) == (
        "backchannel",
        0.0,
        1.0,
        None,
    )
    assert load_scenario(scenario_dir(tmp_path, VALID)).interjections == []  # optional


BAD_INTERJECTIONS = [
    ({"interjections": {"kind": "barge_in"}}, r"interjections: must be a list"),
    (
        {**INTERJECTION, "kind": "cough"},
        r"interjections\[0\].kind: 'cough' is not one of barge_in, backchannel",
    ),
    ({**INTERJECTION, "onset": 3.0}, r"interjections\[0\]: unknown keys \['onset'\]"),
    ({"kind": "backchannel"}, r"interjections\[0\]: missing key 'wav'"),
    ({**INTERJECTION, "wav": "nope.wav"}, r"interjections\[0\].wav: nope.wav is missing"),
    ({**INTERJECTION, "wav": 3}, r"interjections\[0\].wav: must be a string"),
    ({**INTERJECTION, "not_after": 3.0}, r"interjections\[0\].not_after: must be a number in \[4, inf\]"),
    (
        {**INTERJECTION, "after_speech_s": -1},
        r"interjections\[0\].after_speech_s: must be a number in \[0, 600\]",
    ),
    ({**INTERJECTION, "not_before": "later"}, r"interjections\[0\].not_before: must be a number"),
]


@pytest.mark.parametrize("entry,message", BAD_INTERJECTIONS, ids=[m for _, m in BAD_INTERJECTIONS])
def test_bad_interjections_are_refused_naming_file_and_key(tmp_path, entry, message):
    if "interjections" in entry:
        write_float(tmp_path / "call.int0.wav", tone(0.5, 8000), 8000)
        path = scenario_dir(tmp_path, {**VALID, **entry})
    else:
        path = with_interjections(tmp_path, entry)
    with pytest.raises(ScenarioError, match=message) as err:
        load_scenario(path)
    assert str(err.value).startswith(str(path))


def test_missing_audio_and_bad_json_are_refused(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(VALID))
    with pytest.raises(ScenarioError, match=r"a.json: the caller audio a.wav is missing"):
        load_scenario(tmp_path / "a.json")
    write_float(tmp_path / "b.wav", tone(0.5, 16000), 16000)
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(ScenarioError, match=r"b.json: not valid JSON"):
        load_scenario(tmp_path / "b.json")
    with pytest.raises(ScenarioError, match="no such scenario directory"):
        load_scenarios(tmp_path / "nowhere")


# ------------------------------------------------------------------------------- held-out calls

# Seeds with a clean line (no noise, wideband) so that speech can be measured from the WAV by
# energy, covering a mid-turn pause, a barge-in, caller backchannels, echo and a tool error
# (support) and early translations with a barge-in (interpreting).
HELD_OUT = (("support", 900245), ("translate-en-es", 900116))


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> list:
    pytest.importorskip("espeakng_loader")
    from evaluation.held_out import write_held_out

    out = tmp_path_factory.mktemp("held_out")
    paths = [p for agent, seed in HELD_OUT for p in write_held_out(out, 1, agents=(agent,), seed0=seed)]
    return [(load_scenario(p), json.loads(p.read_text())) for p in paths]


def near(t: float, times: list[float], tol: float = 0.04) -> bool:
    return any(abs(t - x) <= tol for x in times)


def test_held_out_annotations_line_up_with_the_caller_audio(held_out):
    for sc, data in held_out:
        channel = data["source"]["channel"]
        assert channel["noise"] == "none" and channel["band"] == "wide"  # the seeds' premise
        speech = speech_intervals(sc.audio, SR, threshold_db=channel["caller_level_dbfs"] - 30)
        starts, ends = [s for s, _ in speech], [e for _, e in speech]
        ann = sc.annotations
        assert ann.turn_ends and all(near(t, ends) for t in ann.turn_ends), sc.name
        parts = sorted(ann.caller_speech)
        for k, (s, e) in enumerate(parts):  # edges, unless a part follows within the 150 ms merge gap
            joined_before = k > 0 and s - parts[k - 1][1] < 0.16
            joined_after = k + 1 < len(parts) and parts[k + 1][0] - e < 0.16
            assert joined_before or near(s, starts), (sc.name, s)
            assert joined_after or near(e, ends), (sc.name, e)
        assert all(near(t, starts) for t in ann.barge_ins), sc.name
        assert all(near(s, starts) for s, _ in ann.backchannels), sc.name
        for s, e in ann.pauses:  # silence inside, speech on both sides
            assert near(s, ends) and near(e, starts), sc.name
            assert not any(a < e - 0.04 and b > s + 0.04 for a, b in speech), sc.name
        for t in ann.turn_ends:  # every turn end is the end of an annotated caller turn
            assert any(abs(e - t) < 1e-3 for _, e in ann.caller_speech), sc.name


def test_held_out_scenarios_carry_what_the_call_had(held_out):
    (support, s_data), (interp, _) = held_out
    features = set(s_data["source"]["features"])
    assert {"barge_in", "mid_turn_pause", "caller_backchannel", "tool_error"} <= features
    assert support.annotations.pauses and support.annotations.barge_ins and support.annotations.backchannels
    assert [c[0] for c in support.annotations.tool_calls] == [t.name for t in support.tool_results]
    assert any(t.error for t in support.tool_results) and all(t.delay_s >= 0.5 for t in support.tool_results)
    assert support.echo is not None and support.echo.delay_ms == s_data["source"]["channel"]["echo_delay_ms"]
    assert interp.annotations.translations and not interp.annotations.pauses  # interpreters speak in pauses
    assert all(line.lang == "es" for line in interp.agent_lines if line.after_turn_end is not None)
    for sc in (support, interp):
        assert sc.reference_audio is not None and sc.reference_text
        assert len(sc.reference_audio) == len(sc.audio)
        assert all(line.text for line in sc.agent_lines)


def test_held_out_caller_audio_has_no_scripted_echo(held_out):
    """The scripted agent's voice is muted in the caller WAV: where only the agent spoke, the line
    (no noise in these seeds) is silent, although the reference agent track is loud there."""
    sc, data = held_out[0]
    caller = speech_intervals(sc.audio, SR, threshold_db=data["source"]["channel"]["caller_level_dbfs"] - 30)
    agent_only = [
        (s, e)
        for s, e in speech_intervals(sc.reference_audio, SR)
        if not any(a < e + 0.3 and b > s - 0.3 for a, b in caller)
    ]
    assert sum(e - s for s, e in agent_only) > 5.0
    for s, e in agent_only:
        part = sc.audio[int(s * SR) : int(e * SR)]
        assert np.sqrt(np.mean(part.astype(np.float64) ** 2)) < 10 ** (
            (data["source"]["channel"]["caller_level_dbfs"] - 30) / 20
        )


def test_held_out_support_calls_get_reactive_interjections(held_out, tmp_path):
    """A barge-in and a backchannel clip in the call's caller voice, after the first caller turn
    end, starting with speech; interpreting calls get none; the same seed writes the same bytes."""
    from evaluation.held_out import write_held_out

    (support, data), (interp, i_data) = held_out
    assert interp.interjections == [] and "interjections" not in i_data
    assert sorted(ij.kind for ij in support.interjections) == ["backchannel", "barge_in"]
    level = data["source"]["channel"]["caller_level_dbfs"]
    for k, (ij, raw) in enumerate(zip(support.interjections, data["interjections"])):
        assert raw["wav"] == f"{support.name}.int{k}.wav" and raw["text"]
        assert ij.not_before > support.annotations.turn_ends[0]
        assert ij.not_after > ij.not_before + 10 and ij.not_after + ij.duration_s < support.duration_s
        assert 0.5 <= ij.after_speech_s <= 1.5
        speech = speech_intervals(ij.audio, SR, threshold_db=level - 30)
        assert speech and speech[0][0] <= 0.03 and speech[-1][1] >= ij.duration_s - 0.03  # trimmed
        assert 0.2 <= ij.duration_s <= 5.0
    agent, seed = HELD_OUT[0]
    (again,) = write_held_out(tmp_path, 1, agents=(agent,), seed0=seed)
    first = support.path.parent
    for name in (again.name, f"{again.stem}.int0.wav", f"{again.stem}.int1.wav", f"{again.stem}.wav"):
        assert (tmp_path / name).read_bytes() == (first / name).read_bytes(), name


def test_perturbed_held_out_scenarios_say_how_they_were_perturbed(tmp_path):
    pytest.importorskip("espeakng_loader")
    from evaluation.held_out import write_held_out

    (path,) = write_held_out(tmp_path, 1, agents=("support",), seed0=HELD_OUT[0][1], perturb=True)
    source = json.loads(path.read_text())["source"]
    assert source["perturbation"] is not None and set(source["perturbation"]) >= {
        "speed",
        "tempo",
        "vtlp_alpha",
    }
    (plain,) = write_held_out(tmp_path / "plain", 1, agents=("support",), seed0=HELD_OUT[0][1])
    assert json.loads(plain.read_text())["source"]["perturbation"] is None
    assert path.with_suffix(".wav").read_bytes() != plain.with_suffix(".wav").read_bytes()
