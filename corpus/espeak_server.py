"""libespeak-ng behind a fork-per-utterance server: ctypes bindings to the C API and the serve loop.

`corpus.tts.Espeak` starts this file as a script (`python espeak_server.py LIBRARY DATA_DIR`) and
talks to it over stdin/stdout with length-prefixed JSON messages (`encode_message`, `read_message`,
also imported by the client; the messages: `serve`). Standard library only.
Why fork per utterance: libespeak-ng keeps synthesis state in C statics that survive from one
utterance to the next (pitch-flutter and waveform phase, echo buffer, Klatt resonators), so the same
text twice in one process gives different samples (up to ~13% of full scale apart), and
espeak_Terminate + espeak_Initialize does not reset them. This process initialises the library once
and never synthesises; each request runs in a forked child from that same state, so the output
depends only on the request. A crash or hang kills only the child: the server answers with an
error and keeps serving, one request at a time.

What it does not know: voice-name resolution, float audio, resampling (see `corpus.tts`).
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import struct
import sys
import traceback
from typing import BinaryIO

_LENGTH = struct.Struct(">I")
MAX_HEADER_BYTES = 64 << 20

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of exit(1) when the data is missing
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_RAND_SEED = 0
_PRELOADED_VOICE = b"gmw/en-US"


# ---- framing (shared with the client) ---------------------------------------------------------


def encode_message(header: dict, payload: bytes = b"") -> bytes:
    """One frame: 4-byte big-endian header length, JSON header (with payload_bytes), payload."""
    body = json.dumps(dict(header, payload_bytes=len(payload)), separators=(",", ":")).encode()
    return _LENGTH.pack(len(body)) + body + payload


def decode_message(frame: bytes) -> tuple[dict, bytes]:
    """Inverse of `encode_message` for one complete frame; ValueError if it is not exactly one."""
    if len(frame) < _LENGTH.size:
        raise ValueError("truncated frame")
    (n,) = _LENGTH.unpack_from(frame)
    header = json.loads(frame[_LENGTH.size : _LENGTH.size + n])
    payload = frame[_LENGTH.size + n :]
    if len(payload) != header.get("payload_bytes", -1):
        raise ValueError("frame length does not match its header")
    return header, payload


def read_message(stream: BinaryIO) -> tuple[dict, bytes] | None:
    """Read one frame from a blocking binary stream; None on a clean end of stream."""
    head = stream.read(_LENGTH.size)
    if not head:
        return None
    if len(head) != _LENGTH.size:
        raise EOFError("stream ended inside a frame")
    (n,) = _LENGTH.unpack(head)
    if n > MAX_HEADER_BYTES:
        raise ValueError(f"frame header of {n} bytes")
    body = stream.read(n)
    if len(body) != n:
        raise EOFError("stream ended inside a frame")
    header = json.loads(body)
    payload = stream.read(header["payload_bytes"]) if header["payload_bytes"] else b""
    if len(payload) != header["payload_bytes"]:
        raise EOFError("stream ended inside a frame")
    return header, payload


# ---- ctypes bindings --------------------------------------------------------------------------


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms from the start of this synthesis
        ("sample", ctypes.c_int),  # samples from the start of this synthesis
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):  # espeak_VOICE
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, NUL-terminated tag)*, then a 0 byte
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),  # 0 unknown, 1 male, 2 female
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


def _bind(library_path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(library_path)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.argtypes = []
    lib.espeak_Synchronize.restype = ctypes.c_int
    if hasattr(lib, "espeak_ng_SetRandSeed"):  # 1.52+: seeds the noise of the Klatt voices
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
    return lib


def _languages(address: int) -> list[list]:
    """Decode espeak_VOICE.languages into [[priority, tag], ...] (lower priority = preferred)."""
    out: list[list] = []
    while (priority := ctypes.string_at(address, 1)[0]) != 0:
        tag = ctypes.string_at(address + 1)
        out.append([priority, tag.decode("utf-8", "replace")])
        address += 2 + len(tag)
    return out


def _list_voices(lib: ctypes.CDLL, spec: _Voice | None) -> list[dict]:
    table = lib.espeak_ListVoices(ctypes.byref(spec) if spec is not None else None)
    voices = []
    i = 0
    while table[i]:
        v = table[i].contents
        voices.append(
            {
                "name": v.name.decode("utf-8", "replace"),
                "identifier": v.identifier.decode("utf-8", "replace"),
                "languages": _languages(v.languages),
                "gender": int(v.gender),
            }
        )
        i += 1
    return voices


# ---- capture and the per-request child --------------------------------------------------------


class _Capture:
    """What the synth callback collects during one synthesis (only ever filled in a child)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.words: list[list] = []
        self.phonemes: list[list] = []
        self.error: str | None = None

    def callback(self, wav, n_samples: int, events) -> int:
        try:
            if wav and n_samples > 0:
                self.chunks.append(ctypes.string_at(wav, 2 * n_samples))
            i = 0
            while (event := events[i]).type != _EVENT_LIST_TERMINATED:
                if event.type == _EVENT_WORD:
                    self.words.append([event.audio_position, event.sample, event.text_position, event.length])
                elif event.type == _EVENT_PHONEME:
                    ipa = event.id.string.decode("utf-8", "replace")
                    if ipa:  # pauses come as empty names
                        self.phonemes.append([event.audio_position, event.sample, ipa])
                i += 1
            return 0
        except BaseException as exc:  # an exception must not unwind through C: abort synthesis
            self.error = f"synth callback failed: {exc!r}"
            return 1


def _synthesize(lib: ctypes.CDLL, capture: _Capture, request: dict) -> bytes:
    """Run one request; returns the framed answer. Called only in a freshly forked child."""
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed(_RAND_SEED)
    status = lib.espeak_SetVoiceByName(request["voice"].encode())
    if status != 0:
        return encode_message({"ok": False, "error": f"espeak_SetVoiceByName failed ({status})"})
    for param, key in (
        (_PARAM_RATE, "rate"),
        (_PARAM_PITCH, "pitch"),
        (_PARAM_RANGE, "range"),
        (_PARAM_VOLUME, "volume"),
    ):
        status = lib.espeak_SetParameter(param, int(request[key]), 0)
        if status != 0:
            return encode_message({"ok": False, "error": f"espeak_SetParameter({key}) failed ({status})"})
    text = request["text"].encode("utf-8") + b"\0"
    buffer = ctypes.create_string_buffer(text, len(text))
    status = lib.espeak_Synth(buffer, len(text), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
    if status == 0:
        status = lib.espeak_Synchronize()
    if capture.error is not None:
        return encode_message({"ok": False, "error": capture.error})
    if status != 0:
        return encode_message({"ok": False, "error": f"espeak_Synth failed ({status})"})
    pcm = b"".join(capture.chunks)
    header = {"ok": True, "n_samples": len(pcm) // 2, "words": capture.words, "phonemes": capture.phonemes}
    return encode_message(header, pcm)


def _serve_one(lib: ctypes.CDLL, capture: _Capture, request: dict) -> bytes:
    """Fork a child for one request, collect its framed answer, and vouch for it."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into the serve loop
        code = 1
        try:
            os.close(read_fd)
            signal.setitimer(signal.ITIMER_REAL, float(request["timeout_s"]))  # SIGALRM kills
            answer = _synthesize(lib, capture, request)
            view = memoryview(answer)
            while view:
                view = view[os.write(write_fd, view) :]
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write_fd)
    parts = []
    while chunk := os.read(read_fd, 1 << 20):
        parts.append(chunk)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGALRM:
            error = f"synthesis timed out after {request['timeout_s']} s"
        else:
            error = f"synthesis process killed by {signal.Signals(sig).name}"
        return encode_message({"ok": False, "error": error})
    frame = b"".join(parts)
    try:
        decode_message(frame)
    except ValueError:
        return encode_message(
            {
                "ok": False,
                "error": f"synthesis process exited {os.WEXITSTATUS(status)} without a complete answer",
            }
        )
    return frame


def serve(library_path: str, data_path: str, requests: BinaryIO, answers: BinaryIO) -> int:
    """Initialise libespeak-ng, send the hello, then answer requests until `requests` ends.

    Hello: {ok, version, sample_rate, voices, variants} (or {ok: false, error}). A request
    {text, voice, rate, pitch, range, volume, timeout_s} is answered with {ok: true, n_samples,
    words: [[ms, sample, position, length]], phonemes: [[ms, sample, ipa]]} and n_samples PCM16
    little-endian samples as payload, or with {ok: false, error}. Positions are espeak's: 1-based,
    in code points of the UTF-8 text. `voice` goes to espeak_SetVoiceByName unchecked: the client
    must send only names built from the hello's lists (an overlong variant name overflows a buffer
    inside the library)."""
    lib = _bind(library_path)
    options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA | _INITIALIZE_DONT_EXIT
    sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), options)
    if sample_rate <= 0:
        answers.write(
            encode_message(
                {"ok": False, "error": f"espeak_Initialize failed ({sample_rate}) with data at {data_path}"}
            )
        )
        answers.flush()
        return 1
    capture = _Capture()
    callback = _SynthCallback(capture.callback)  # kept alive for the life of the process
    lib.espeak_SetSynthCallback(callback)
    variant_tag = ctypes.create_string_buffer(b"variant")  # ListVoices' selector for variants
    variant_spec = _Voice(languages=ctypes.cast(variant_tag, ctypes.c_void_p).value)
    hello = {
        "ok": True,
        "version": lib.espeak_Info(None).decode(),
        "sample_rate": sample_rate,
        "voices": _list_voices(lib, None),
        "variants": [v["identifier"].rpartition("/")[2] for v in _list_voices(lib, variant_spec)],
    }
    # Children inherit everything set up here; what they pay for is first use. Loading a voice
    # once here makes a child's voice switch ~0.7 ms instead of ~3 ms; frozen objects are not
    # touched by a child's garbage collector (fewer copy-on-write faults). Both are fixed steps,
    # so every child still starts from the same state.
    lib.espeak_SetVoiceByName(_PRELOADED_VOICE)
    gc.freeze()
    answers.write(encode_message(hello))
    answers.flush()
    while (message := read_message(requests)) is not None:
        answers.write(_serve_one(lib, capture, message[0]))
        answers.flush()
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: espeak_server.py LIBRARY DATA_DIR", file=sys.stderr)
        return 2
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints from C must not corrupt frames
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the client ends us by closing stdin
    return serve(argv[1], argv[2], sys.stdin.buffer, answers)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
