"""Real synthetic speech from espeak-ng: voices, speeds, pitches and a built-in sentence vocabulary.

Speech is produced by the ``espeak-ng`` program (formant synthesis, deterministic for a given text and voice),
resampled to 16 kHz mono float32 and trimmed of its leading and trailing silence.
"""

from __future__ import annotations

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

INSTALL_HINT = ("espeak-ng is not installed or not on PATH; the synthetic corpus needs it for speech. "
                "Install it with 'sudo apt-get install espeak-ng' (Debian/Ubuntu), 'brew install espeak-ng' (macOS) "
                "or 'dnf install espeak-ng' (Fedora)")

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


def espeak_path() -> str:
    """The espeak-ng executable; raises :class:`UserInputError` with install instructions when it is missing."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise UserInputError(INSTALL_HINT)
    return exe


def trim_silence(audio: np.ndarray, threshold: float = 0.01, pad_s: float = 0.02) -> np.ndarray:
    """Cut leading and trailing samples quieter than ``threshold`` (keeping ``pad_s`` of margin)."""
    loud = np.flatnonzero(np.abs(audio) > threshold)
    if loud.size == 0:
        return audio[:0]
    pad = int(pad_s * SAMPLE_RATE)
    return audio[max(0, loud[0] - pad): loud[-1] + pad + 1]


def synthesize(text: str, voice: Voice, *, exe: str | None = None) -> np.ndarray:
    """Speak ``text`` with ``voice``: float32 mono at :data:`SAMPLE_RATE`, silence trimmed, peak ~0.9."""
    exe = exe or espeak_path()
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
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    g = np.gcd(int(rate), SAMPLE_RATE)
    audio = resample_poly(audio, SAMPLE_RATE // g, int(rate) // g).astype(np.float32)
    audio = trim_silence(audio)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 0:
        audio = audio * (0.9 / peak)
    return audio.astype(np.float32)
