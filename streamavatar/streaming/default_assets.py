"""Regenerate the demo inputs bundled with the default model: a reference image and a few seconds of speech.

Both come from the synthetic corpus generator (``streamavatar.data``) with a fixed seed: the image is the
neutral pose of an identity from the corpus's held-out *test* split (seed 1 → identity 4 is a test identity of
``/work/data/corpus``), rendered at the model's 128×128 resolution; the speech is that identity's own
espeak-ng voice saying two sentences drawn from the corpus vocabulary, rendered exactly as the corpus renders
speech (16 kHz mono, silence trimmed, peak 0.9), joined by a 0.3 s pause and saved as 16-bit PCM.

    python -m streamavatar.streaming.default_assets [--seed 1] [--identity 4] [--out streamavatar/assets/default]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from streamavatar.streaming.model_folder import DEFAULT_DIR

REFERENCE_IMAGE = "reference.png"
SPEECH = "speech.wav"
#: The corpus seed and test-split identity the bundled inputs are drawn from.
DEFAULT_SEED = 1
DEFAULT_IDENTITY = 4


def bundled_inputs(folder: Path = DEFAULT_DIR) -> tuple[Path, Path]:
    """Paths of the bundled reference image and speech."""
    return folder / REFERENCE_IMAGE, folder / SPEECH


def render_assets(out: Path, seed: int = DEFAULT_SEED, identity: int = DEFAULT_IDENTITY, resolution: int = 128,
                  sentences: int = 2) -> tuple[Path, Path]:
    """Render the reference image and speech into ``out`` (see the module docstring)."""
    from streamavatar.data.avatar import sample_identity
    from streamavatar.data.render import AvatarRenderer, Pose
    from streamavatar.data.speech import SAMPLE_RATE, draw_sentence, synthesize

    ident = sample_identity(seed, identity)
    frame, _ = AvatarRenderer(ident, resolution).render(Pose())
    out.mkdir(parents=True, exist_ok=True)
    img_path, wav_path = bundled_inputs(out)
    Image.fromarray(frame).save(img_path, optimize=True)
    rng = np.random.default_rng([seed, identity, 0xDE])
    pause = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
    parts = []
    for i in range(sentences):
        parts += ([pause] if i else []) + [synthesize(draw_sentence(rng), ident.voice)]
    sf.write(str(wav_path), np.concatenate(parts), SAMPLE_RATE, subtype="PCM_16")
    return img_path, wav_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--identity", type=int, default=DEFAULT_IDENTITY)
    ap.add_argument("--out", type=Path, default=DEFAULT_DIR)
    args = ap.parse_args()
    for p in render_assets(args.out, args.seed, args.identity):
        print(p, p.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
