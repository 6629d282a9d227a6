"""Real synthetic speech from espeak-ng: voices, speeds, pitches and a built-in sentence vocabulary.

Speech is produced by eSpeak NG (formant synthesis, deterministic for a given text, voice and eSpeak NG version),
resampled to 16 kHz mono float32 and trimmed of its leading and trailing silence.

Two engines give the same speech: by default the ``libespeak-ng`` shared library and voice data that the
``espeakng-loader`` wheel bundles (a pip dependency, so a fresh machine needs no system package), called through
ctypes; or a system ``espeak-ng`` program (``STREAMAVATAR_ESPEAK=system``, or ``synthesize(..., exe=PATH)``).
The two may differ slightly when their eSpeak NG versions differ (the wheel has 1.52, Debian 12 has 1.51).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from streamavatar.errors import UserInputError

#: Sample rate of every waveform in the corpus (the rate speech encoders such as Wav2Vec/Whisper expect).
SAMPLE_RATE = 16000
#: espeak-ng English voices (all ship with the espeak-ng Debian package, no mbrola needed).
ESPEAK_VOICES: tuple[str, ...] = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
                                  "en-gb-x-gbclan", "en-gb-x-gbcwmd")
#: espeak-ng voice variants (timbre): male and female formant settings.
ESPEAK_VARIANTS: tuple[str, ...] = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")

INSTALL_HINT = ("espeak-ng is not installed or not on PATH (STREAMAVATAR_ESPEAK=system asks for it); install it "
                "with 'sudo apt-get install espeak-ng', or unset STREAMAVATAR_ESPEAK to use the bundled library of "
                "the espeakng-loader package")
LIBRARY_HINT = ("the eSpeak NG library of the espeakng-loader package cannot be loaded ({why}); reinstall it with "
                "'pip install --force-reinstall espeakng-loader', or install the espeak-ng program and set "
                "STREAMAVATAR_ESPEAK=system")
#: Environment variable that picks the engine: ``library`` (default, the bundled wheel) or ``system``.
ENGINE_ENV = "STREAMAVATAR_ESPEAK"

_SUBJECTS = ("I", "we", "you", "my friend", "the team", "our neighbour", "the teacher", "my sister", "the doctor",
             "everyone", "the children", "my brother", "the manager", "nobody", "the old man", "a student")
_VERBS = ("really like", "often visit", "never forget", "want to see", "talked about", "are planning",
          "quickly finished", "carefully read", "just found", "will bring", "remember", "could not find",
          "will paint", "used to love", "have to fix", "almost missed")
_OBJECTS = ("the little red house", "a long walk by the river", "that strange old book", "the new coffee shop",
            "the mountains in winter", "a quiet afternoon", "the big yellow bus", "our garden", "the last train",
            "a bowl of warm soup", "the morning news", "the blue bicycle", "a song about summer",
            "the museum downtown", "a box of chocolates", "the football match")
_TAILS = ("", " yesterday", " every weekend", " after lunch", " next week", " this morning", " again",
          " before dinner", " with great care", " on Sunday")
_SHORT = ("Yes, exactly.", "Oh really?", "That sounds great.", "I see what you mean.", "Hmm, let me think.",
          "No way!", "Absolutely.", "Well, maybe.", "Thank you so much.", "Right, of course.",
          "Could you say that again?", "What do you think?", "That is amazing!", "I am not so sure.",
          "Good morning!", "See you later.")


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: language voice, variant, words per minute and pitch (0-99)."""

    name: str
    variant: str
    speed_wpm: int
    pitch: int

    @property
    def espeak_voice(self) -> str:
        """The ``-v`` argument of espeak-ng."""
        return f"{self.name}+{self.variant}"


def sentence_vocabulary() -> tuple[str, ...]:
    """The built-in sentences: 16 short replies plus every subject-verb-object-tail combination (40 960)."""
    out = list(_SHORT)
    for s in _SUBJECTS:
        for v in _VERBS:
            for o in _OBJECTS:
                for t in _TAILS:
                    text = f"{s} {v} {o}{t}."
                    out.append(text[0].upper() + text[1:])
    return tuple(out)


def draw_sentence(rng: np.random.Generator) -> str:
    """One sentence from the vocabulary: a short reply one time in four, otherwise a composed statement."""
    if rng.uniform() < 0.25:
        return _SHORT[int(rng.integers(len(_SHORT)))]
    parts = [p[int(rng.integers(len(p)))] for p in (_SUBJECTS, _VERBS, _OBJECTS, _TAILS)]
    text = f"{parts[0]} {parts[1]} {parts[2]}{parts[3]}."
    return text[0].upper() + text[1:]


def engine_name() -> str:
    """``"library"`` (the bundled libespeak-ng, default) or ``"system"`` (the espeak-ng program), from
    ``$STREAMAVATAR_ESPEAK``."""
    name = os.environ.get(ENGINE_ENV, "library").strip().lower() or "library"
    if name not in ("library", "system"):
        raise UserInputError(f"{ENGINE_ENV}={name!r} is not an eSpeak NG engine; use 'library' or 'system'")
    return name


def espeak_path() -> str:
    """The espeak-ng executable; raises :class:`UserInputError` with install instructions when it is missing."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise UserInputError(INSTALL_HINT)
    return exe


def check_speech_engine() -> str:
    """Fail early (:class:`UserInputError`) when the selected engine cannot speak; returns a description."""
    if engine_name() == "system":
        return f"espeak-ng program {espeak_path()}"
    with _PrivateEspeak() as lib:
        return f"libespeak-ng {lib.version()} (espeakng-loader)"


# The eSpeak NG C API (speak_lib.h): output mode, parameter ids and text flags used here.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_RATE, _ESPEAK_PITCH = 1, 3
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_EE_OK = 0
#: Voice names the library spells differently: eSpeak NG 1.52's British English voice file is ``en``, which the
#: 1.51 program also accepts as ``en-gb`` (its language code).
_LIBRARY_VOICE_NAMES = {"en-gb": "en"}
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def _library_files() -> tuple[str, str]:
    """Paths of the bundled libespeak-ng and of the folder that holds its ``espeak-ng-data``."""
    try:
        import espeakng_loader
    except ImportError as exc:
        raise UserInputError(LIBRARY_HINT.format(why=exc)) from None
    lib, data = str(espeakng_loader.get_library_path()), str(espeakng_loader.get_data_path())
    if not (os.path.isfile(lib) and os.path.isdir(data)):
        raise UserInputError(LIBRARY_HINT.format(why=f"missing {lib} or {data}"))
    return lib, os.path.dirname(data)


class _PrivateEspeak:
    """A private copy of libespeak-ng, loaded for one utterance and unloaded after it.

    The library keeps synthesis state in C statics (e.g. the pitch-flutter phase in ``AdvanceParameters``) that
    no API call resets, so in one loaded copy an utterance depends on every utterance spoken before it. The
    espeak-ng program is deterministic because each run is a new process; loading a fresh copy of the library
    (a new file: the dynamic loader shares one copy per file) gives the same guarantee for ~10 ms.
    """

    def __init__(self) -> None:
        src, self.data_parent = _library_files()
        self._tmp = tempfile.TemporaryDirectory(prefix="sa_espeak_")
        path = os.path.join(self._tmp.name, "libespeak-ng.so")
        shutil.copyfile(src, path)
        try:
            self.lib = ctypes.CDLL(path)
        except OSError as exc:
            self._tmp.cleanup()
            raise UserInputError(LIBRARY_HINT.format(why=exc)) from None
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        self.sample_rate = int(lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data_parent.encode(), 0))
        self._pieces: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept alive while the library may call it
        if self.sample_rate <= 0:
            self.close()
            raise UserInputError(LIBRARY_HINT.format(why=f"espeak_Initialize returned {self.sample_rate}"))
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n: int, _events) -> int:
        if n > 0 and wav:
            self._pieces.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def version(self) -> str:
        return (self.lib.espeak_Info(None) or b"?").decode(errors="replace")

    def speak(self, text: str, voice: Voice) -> tuple[np.ndarray, int]:
        """float32 samples (int16 scale / 32768) and their rate for ``text`` spoken by ``voice``."""
        name = f"{_LIBRARY_VOICE_NAMES.get(voice.name, voice.name)}+{voice.variant}"
        if self.lib.espeak_SetVoiceByName(name.encode()) != _EE_OK:
            raise UserInputError(f"eSpeak NG has no voice {voice.espeak_voice!r}")
        self.lib.espeak_SetParameter(_ESPEAK_RATE, int(voice.speed_wpm), 0)
        self.lib.espeak_SetParameter(_ESPEAK_PITCH, int(voice.pitch), 0)
        data = text.encode("utf-8") + b"\0"
        err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        if err != _EE_OK:
            raise UserInputError(f"eSpeak NG failed (error {err}) for voice {voice.espeak_voice!r}")
        audio = np.concatenate(self._pieces) if self._pieces else np.zeros(0, np.int16)
        return audio.astype(np.float32) / 32768.0, self.sample_rate

    def close(self) -> None:
        import _ctypes

        self.lib.espeak_Terminate()
        _ctypes.dlclose(self.lib._handle)
        self._tmp.cleanup()

    def __enter__(self) -> _PrivateEspeak:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _speak_with_program(text: str, voice: Voice, exe: str) -> tuple[np.ndarray, int]:
    with tempfile.TemporaryDirectory(prefix="sa_espeak_") as tmp:
        wav = Path(tmp) / "s.wav"
        cmd = [exe, "-v", voice.espeak_voice, "-s", str(voice.speed_wpm), "-p", str(voice.pitch),
               "-w", str(wav), text]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        except FileNotFoundError as exc:
            raise UserInputError(INSTALL_HINT) from exc
        except subprocess.CalledProcessError as exc:
            msg = exc.stderr.decode(errors="replace").strip().splitlines()
            raise UserInputError(f"espeak-ng failed for voice {voice.espeak_voice!r}: "
                                 f"{msg[-1] if msg else exc.returncode}") from exc
        audio, rate = sf.read(str(wav), dtype="float32", always_2d=False)
    return audio, int(rate)


def trim_silence(audio: np.ndarray, threshold: float = 0.01, pad_s: float = 0.02) -> np.ndarray:
    """Cut leading and trailing samples quieter than ``threshold`` (keeping ``pad_s`` of margin)."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if loud.size == 0:
        return audio[:0]
    pad = int(pad_s * SAMPLE_RATE)
    return audio[max(0, loud[0] - pad): loud[-1] + pad + 1]


def synthesize(text: str, voice: Voice, *, exe: str | None = None) -> np.ndarray:
    """Speak ``text`` with ``voice``: float32 mono at :data:`SAMPLE_RATE`, silence trimmed, peak ~0.9.

    ``exe`` (a path to an espeak-ng program) overrides the engine chosen by ``$STREAMAVATAR_ESPEAK``."""
    if exe is not None or engine_name() == "system":
        audio, rate = _speak_with_program(text, voice, exe or espeak_path())
    else:
        with _PrivateEspeak() as lib:
            audio, rate = lib.speak(text, voice)
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    g = np.gcd(int(rate), SAMPLE_RATE)
    audio = resample_poly(audio, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)
    audio = trim_silence(audio)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 0:
        audio = audio * (0.9 / peak)
    return audio.astype(np.float32)
