"""The bundled demo inputs are what the regeneration script makes from its seed."""

from __future__ import annotations

import numpy as np
import soundfile as sf
from PIL import Image

from streamavatar.streaming.default_assets import bundled_inputs, render_assets


def test_bundled_inputs_regenerate(tmp_path):
    img, wav = render_assets(tmp_path)
    bundled_img, bundled_wav = bundled_inputs()
    np.testing.assert_array_equal(np.asarray(Image.open(img)), np.asarray(Image.open(bundled_img)))
    a, sr = sf.read(str(wav))
    b, sr_b = sf.read(str(bundled_wav))
    assert sr == sr_b == 16000 and abs(a.size - b.size) <= 0.1 * b.size  # espeak-ng versions may differ slightly
    assert np.asarray(Image.open(bundled_img)).shape == (128, 128, 3)
