"""The reference image a session starts from: a path, a PIL image or an ``H×W×3`` uint8 array → model size.

Files are checked from their header before any pixel is decoded (a 20000×20000 PNG is refused in
milliseconds, PIL's decompression-bomb guard included); grayscale, palette and 16-bit images are converted to
RGB; transparency is composited over white. The picture is centre-cropped to a square and resized with
Lanczos filtering, the way training reference frames were made square.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from streamavatar.errors import UserInputError

#: Largest reference image accepted (width × height), the server's limit too.
MAX_IMAGE_PIXELS = 4096 * 4096
#: Smallest side accepted.
MIN_IMAGE_SIDE = 32


def _check_size(width: int, height: int, what: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise UserInputError(f"{what} is {width}x{height} pixels; expected at most {MAX_IMAGE_PIXELS} pixels "
                             "(e.g. 4096x4096): resize it first")
    if min(width, height) < MIN_IMAGE_SIDE:
        raise UserInputError(f"{what} is {width}x{height} pixels; expected at least "
                             f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}")


def open_image(path: str | Path) -> Image.Image:
    """Open and decode an image file after checking its size from the header; errors are one line."""
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"reference image {p} does not exist")
    if not p.is_file():
        raise UserInputError(f"reference image {p} is not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(p)
            _check_size(img.width, img.height, f"reference image {p}")
            img.load()
    except UserInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UserInputError(f"reference image {p} is too large to decode safely ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure (corrupt, truncated, not an image) is one message
        reason = str(exc).split("\n")[0] or type(exc).__name__
        raise UserInputError(f"cannot read reference image {p}: {reason}") from None
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB version of any PIL mode; transparent pixels become white."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size and arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr * (255.0 / hi), 0, 255).astype(np.uint8)).convert("RGB")
    return img.convert("RGB")


def from_array(arr: np.ndarray) -> Image.Image:
    """A PIL image from ``H×W×3`` (or ``×4``, or ``H×W`` gray) uint8 array."""
    a = np.asarray(arr)
    if a.dtype != np.uint8:
        raise UserInputError(f"reference image array must be uint8 (0..255), got dtype {a.dtype}")
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))):
        raise UserInputError(f"reference image array must be HxWx3 (or HxWx4, HxW), got shape {a.shape}")
    _check_size(a.shape[1], a.shape[0], "reference image array")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(a))


def load_reference(image, size: int) -> np.ndarray:
    """``image`` (path, PIL image or uint8 array) → ``size×size×3`` uint8, centre-cropped and resized."""
    if isinstance(image, str | Path):
        img = open_image(image)
    elif isinstance(image, Image.Image):
        _check_size(image.width, image.height, "reference image")
        img = image
    elif isinstance(image, np.ndarray):
        img = from_array(image)
    else:
        raise UserInputError(f"reference image must be a path, a PIL image or a uint8 array, got {type(image)}")
    img = to_rgb(img)
    s = min(img.size)
    left, top = (img.width - s) // 2, (img.height - s) // 2
    img = img.crop((left, top, left + s, top + s))
    if s != size:
        img = img.resize((size, size), Image.LANCZOS)
    return np.asarray(img, dtype=np.uint8).copy()
