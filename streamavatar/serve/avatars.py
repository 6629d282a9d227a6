"""Reference images: validated on upload, cached by content hash, reused across sessions (``avatar_id``)."""

from __future__ import annotations

import hashlib
import io
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image

from streamavatar.errors import UserInputError

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
MIN_SIDE = 32


@dataclass(frozen=True)
class Avatar:
    """A decoded reference image and its id (first 16 hex digits of the SHA-256 of the RGB pixels)."""

    id: str
    image: np.ndarray

    def info(self) -> dict:
        """JSON description."""
        h, w = self.image.shape[:2]
        return {"avatar_id": self.id, "width": w, "height": h}


def decode_reference(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Decode an uploaded image to HxWx3 uint8, refusing oversized, tiny or non-image uploads."""
    if not data:
        raise UserInputError("the reference image upload is empty")
    if len(data) > max_bytes:
        raise UserInputError(f"the reference image is {len(data)} bytes, more than max_upload_bytes={max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format
            w, h = img.size
            if fmt not in ACCEPTED_FORMATS:
                raise UserInputError(f"the reference image must be one of {ACCEPTED_FORMATS}, got {fmt}")
            if w * h > max_pixels:
                raise UserInputError(f"the reference image is {w}x{h} = {w * h} pixels, more than "
                                     f"max_image_pixels={max_pixels}")
            if min(w, h) < MIN_SIDE:
                raise UserInputError(f"the reference image must be at least {MIN_SIDE}x{MIN_SIDE}, got {w}x{h}")
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except UserInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UserInputError(f"the reference image is too large to decode safely: {exc}") from None
    except Exception as exc:  # PIL raises many types for corrupt data
        raise UserInputError(f"the upload is not a readable image ({type(exc).__name__})") from None
    return rgb


class AvatarStore:
    """LRU cache of decoded reference images keyed by content hash."""

    def __init__(self, max_avatars: int) -> None:
        self.max_avatars = max_avatars
        self._items: OrderedDict[str, Avatar] = OrderedDict()

    def add(self, image: np.ndarray) -> Avatar:
        """Cache an image (a second upload of the same pixels returns the cached entry)."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        aid = hashlib.sha256(image.tobytes() + str(image.shape).encode()).hexdigest()[:16]
        if aid in self._items:
            self._items.move_to_end(aid)
            return self._items[aid]
        avatar = Avatar(aid, image)
        self._items[aid] = avatar
        while len(self._items) > self.max_avatars:
            self._items.popitem(last=False)
        return avatar

    def get(self, avatar_id: str) -> Avatar:
        """A cached avatar, or UserInputError naming the unknown id."""
        avatar = self._items.get(avatar_id)
        if avatar is None:
            raise KeyError(avatar_id)
        self._items.move_to_end(avatar_id)
        return avatar

    def delete(self, avatar_id: str) -> bool:
        """Forget an avatar; returns whether it existed."""
        return self._items.pop(avatar_id, None) is not None

    def list(self) -> list[dict]:
        """Descriptions of all cached avatars."""
        return [a.info() for a in self._items.values()]
