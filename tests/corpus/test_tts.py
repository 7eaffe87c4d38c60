"""Tests for corpus.tts: real libespeak-ng through its fork-per-utterance helper."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")

from corpus.tts import Espeak, EspeakError, SynthResult  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SENTENCE = "Hello world, this is a test."


@pytest.fixture(scope="module")
def tts() -> Espeak:
    return Espeak.instance()


def median_f0(result: SynthResult) -> float:
    """Median autocorrelation pitch (60-400 Hz) over the loud 40 ms frames."""
    x, sr = result.audio.astype(np.float64), result.sample_rate
    n = int(0.04 * sr)
    lo, hi = sr // 400, sr // 60
    f0 = []
    for start in range(0, len(x) - n, n):
        frame = x[start : start + n] - x[start : start + n].mean()
        if np.sqrt(np.mean(frame**2)) < 0.05:
            continue
        ac = np.correlate(frame, frame, "full")[n - 1 :]
        f0.append(sr / (lo + int(np.argmax(ac[lo:hi]))))
    assert len(f0) >= 5
    return float(np.median(f0))


def test_audio_is_speech_and_duration_grows_with_text(tts: Espeak) -> None:
    texts = [
        "Yes.",
        "Yes, I would like to book a table.",
        "Yes, I would like to book a table for four people on Friday evening at eight, please.",
    ]
    results = [tts.synthesize(t) for t in texts]
    for r in results:
        assert r.sample_rate == 22050
        assert r.audio.dtype == np.float32 and r.audio.ndim == 1
        assert np.sqrt(np.mean(r.audio**2)) > 0.02
        assert 0.2 < np.abs(r.audio).max() <= 1.0
    durations = [r.duration_s for r in results]
    assert durations[0] < durations[1] < durations[2], durations
    assert 0.2 < durations[0] < 1.5 and durations[2] > 3.0


def test_speaking_rate_changes_duration(tts: Espeak) -> None:
    slow = tts.synthesize(SENTENCE, rate_wpm=120).duration_s
    fast = tts.synthesize(SENTENCE, rate_wpm=300).duration_s
    assert fast < 0.7 * slow


def test_same_call_gives_identical_samples_even_after_other_calls(tts: Espeak) -> None:
    first = tts.synthesize(SENTENCE, voice="en-us+f3")
    tts.synthesize("Something else entirely, said in between?", voice="es")
    tts.synthesize("And a third one.", voice="en-us+klatt")
    again = tts.synthesize(SENTENCE, voice="en-us+f3")
    assert np.array_equal(first.audio, again.audio)
    assert first.words == again.words and first.phonemes == again.phonemes


def test_a_second_helper_process_gives_identical_samples(tts: Espeak) -> None:
    reference = tts.synthesize(SENTENCE, voice="en-us+klatt")  # Klatt voices use random noise
    with Espeak() as other:
        assert np.array_equal(other.synthesize(SENTENCE, voice="en-us+klatt").audio, reference.audio)


def test_voices_and_pitch_change_the_audio(tts: Espeak) -> None:
    base = tts.synthesize(SENTENCE)
    for other in (
        tts.synthesize(SENTENCE, voice="en-us+f3"),
        tts.synthesize(SENTENCE, voice="en-gb"),
        tts.synthesize(SENTENCE, pitch=80),
        tts.synthesize(SENTENCE, pitch_range=0),
    ):
        assert len(other.audio) != len(base.audio) or not np.array_equal(other.audio, base.audio)
    low, high = tts.synthesize(SENTENCE, pitch=10), tts.synthesize(SENTENCE, pitch=90)
    assert median_f0(high) > 1.3 * median_f0(low)
    loud, quiet = tts.synthesize(SENTENCE, volume=100), tts.synthesize(SENTENCE, volume=30)
    assert np.sqrt(np.mean(quiet.audio**2)) < 0.5 * np.sqrt(np.mean(loud.audio**2))


def test_spanish_voice(tts: Espeak) -> None:
    text = "¿Dónde está el baño?"
    result = tts.synthesize(text, voice="es")
    assert np.sqrt(np.mean(result.audio**2)) > 0.02
    assert [text[w.text_offset : w.text_offset + w.length] for w in result.words] == [
        "Dónde",
        "está",
        "el",
        "baño",
    ]
    english = tts.synthesize(text, voice="en-us")
    assert not np.array_equal(result.audio[:1000], english.audio[:1000])


def test_voice_listing_and_resolution(tts: Espeak) -> None:
    voices = tts.voices()
    assert len(voices) > 100
    assert {v.gender for v in voices} <= {"male", "female", "unknown"}
    english = tts.voices("en")
    assert "gmw/en-US" in {v.identifier for v in english}
    assert all(any(t == "en" or t.startswith("en-") for t in v.languages) for v in english)
    assert {v.identifier for v in tts.voices("es")} >= {"roa/es", "roa/es-419"}
    assert tts.voices("xx-nothing") == []
    assert tts.resolve_voice("en-us") == "gmw/en-US"
    assert tts.resolve_voice("EN-US+F3") == "gmw/en-US+f3"
    assert tts.resolve_voice("English (America)") == "gmw/en-US"
    assert tts.resolve_voice("es") == "roa/es"


@pytest.mark.parametrize("voice", ["xx-nonsense", "", "en-us+nonsense", "en-us+../../../../etc/x", "+f3"])
def test_unknown_voice_is_a_value_error(tts: Espeak, voice: str) -> None:
    with pytest.raises(ValueError, match="voice"):
        tts.synthesize(SENTENCE, voice=voice)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"text": ""}, "empty"),
        ({"text": "  \n"}, "empty"),
        ({"text": "a\0b"}, "NUL"),
        ({"text": "\ud800"}, "Unicode"),
        ({"rate_wpm": 10}, "rate_wpm"),
        ({"pitch": 101}, "pitch"),
        ({"pitch_range": -1}, "pitch_range"),
        ({"volume": 500}, "volume"),
        ({"pitch": 50.5}, "pitch"),
    ],
)
def test_bad_arguments_are_value_errors(tts: Espeak, kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        tts.synthesize(**{"text": SENTENCE, **kwargs})


def test_16k_has_the_right_length_and_rescaled_events(tts: Espeak) -> None:
    native = tts.synthesize(SENTENCE)
    resampled = tts.synthesize_16k(SENTENCE)
    assert resampled.sample_rate == 16000 and resampled.audio.dtype == np.float32
    assert abs(len(resampled.audio) - len(native.audio) * 16000 / 22050) <= 1
    assert abs(resampled.duration_s - native.duration_s) < 1e-3
    for w16, w22 in zip(resampled.words, native.words, strict=True):
        assert w16.start_ms == w22.start_ms and w16.text_offset == w22.text_offset
        assert abs(w16.start_sample - w22.start_sample * 16000 / 22050) <= 0.5
    rms = lambda r: np.sqrt(np.mean(r.audio.astype(np.float64) ** 2))  # noqa: E731
    assert abs(rms(resampled) / rms(native) - 1.0) < 0.05


def test_word_and_phoneme_events_are_ordered_and_inside_the_audio(tts: Espeak) -> None:
    result = tts.synthesize(SENTENCE)
    assert [SENTENCE[w.text_offset : w.text_offset + w.length] for w in result.words] == [
        "Hello",
        "world",
        "this",
        "is",
        "a",
        "test",
    ]
    starts = [w.start_sample for w in result.words]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert 0 <= starts[0] and starts[-1] < len(result.audio)
    for w in result.words:
        assert abs(w.start_sample / result.sample_rate * 1000 - w.start_ms) <= 1.0
    phoneme_starts = [p.start_sample for p in result.phonemes]
    assert phoneme_starts == sorted(phoneme_starts) and phoneme_starts[-1] < len(result.audio)
    assert result.phonemes[0].phoneme == "h" and all(p.phoneme for p in result.phonemes)
    # Words spoken as several (numbers) share a text position; times still never go back.
    numbers = tts.synthesize("Order 123 ships today.")
    assert [w.start_sample for w in numbers.words] == sorted(w.start_sample for w in numbers.words)


def test_threads_share_one_instance_safely(tts: Espeak) -> None:
    requests = [
        ("Thread one speaking.", "en-us"),
        ("Hilo dos hablando.", "es"),
        ("Thread three speaking.", "en-us+f3"),
    ]
    expected = [tts.synthesize(t, voice=v).audio for t, v in requests]
    failures: list[str] = []

    def worker() -> None:
        for _ in range(3):
            for (t, v), want in zip(requests, expected):
                if not np.array_equal(tts.synthesize(t, voice=v).audio, want):
                    failures.append(t)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []


def test_a_crash_inside_the_library_is_an_error_not_a_dead_process(tts: Espeak) -> None:
    # An overlong variant path overflows a buffer in libespeak-ng (glibc aborts the process).
    # resolve_voice never sends such a name; go around it to make the library crash for real.
    request = {
        "text": SENTENCE,
        "voice": "gmw/en-US+" + "../" * 40 + "x",
        "rate": 170,
        "pitch": 50,
        "range": 50,
        "volume": 100,
        "timeout_s": 10.0,
    }
    with pytest.raises(EspeakError, match="killed by SIGABRT"):
        tts._request(request)
    assert tts.synthesize(SENTENCE).duration_s > 1.0  # the helper keeps serving


def test_timeout_kills_only_the_synthesis() -> None:
    with Espeak(timeout_s=0.05) as impatient:
        with pytest.raises(EspeakError, match="timed out"):
            impatient.synthesize("The quick brown fox jumps over the lazy dog. " * 3000)
        assert impatient.synthesize("Still here.").duration_s > 0.3


def test_forked_child_gets_its_own_helper() -> None:
    script = textwrap.dedent("""
        import os, sys
        import numpy as np
        from corpus.tts import Espeak
        reference = Espeak.instance().synthesize("Forked.").audio
        pid = os.fork()
        if pid == 0:
            ok = np.array_equal(Espeak.instance().synthesize("Forked.").audio, reference)
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        same_again = np.array_equal(Espeak.instance().synthesize("Forked.").audio, reference)
        sys.exit(os.waitstatus_to_exitcode(status) or (0 if same_again else 4))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, timeout=60, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_cli_writes_pcm16_wav(tmp_path: Path) -> None:
    out = tmp_path / "caller.wav"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "corpus.tts",
            "--text",
            SENTENCE,
            "--voice",
            "en-us",
            "--out",
            str(out),
            "--rate",
            "16000",
        ],
        cwd=REPO,
        timeout=60,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    with wave.open(str(out), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    assert 1.0 < len(pcm) / 16000 < 3.0 and np.abs(pcm).max() > 3000
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "corpus.tts",
            "--text",
            "x",
            "--voice",
            "xx-nonsense",
            "--out",
            str(tmp_path / "bad.wav"),
        ],
        cwd=REPO,
        timeout=60,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "unknown espeak-ng voice" in bad.stderr
    assert not (tmp_path / "bad.wav").exists()


def test_speed_benchmark(tts: Espeak, capsys: pytest.CaptureFixture) -> None:
    sentences = [
        f"Thank you for calling. Your order number {i} will arrive on Tuesday afternoon." for i in range(40)
    ]
    for method in (tts.synthesize, tts.synthesize_16k):
        start = time.perf_counter()
        audio_s = sum(method(s).duration_s for s in sentences)
        elapsed = time.perf_counter() - start
        with capsys.disabled():
            print(
                f"\n[bench] espeak-ng {tts.version} {method.__name__}: {audio_s:.1f} s of audio in "
                f"{elapsed * 1000:.0f} ms = {audio_s / elapsed:.0f}x real time, "
                f"{elapsed / len(sentences) * 1000:.1f} ms per utterance"
            )
        assert audio_s > 0
