"""Reference images: validated on upload, stored at the model's frame size, cached by content hash (``avatar_id``).

An upload is decoded once (size checked from the header first, decompression bombs refused), centre-cropped to
the model's aspect and resized to its frame size, exactly as the engine would prepare it; only that small image
is kept. So the cache costs at most ``max_avatars × H × W × 3`` bytes (32 × 128 × 128 × 3 = 1.6 MB for the
default model), whatever was uploaded. Decoding and hashing are CPU work: the server runs
:func:`prepare_avatar` in a worker thread, never on the event loop.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image

from streamavatar.errors import UserInputError
from streamavatar.reference_image import to_rgb

#: Container formats accepted (MPO is the multi-picture JPEG of phone cameras; its first picture is used).
ACCEPTED_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "BMP")
MIN_SIDE = 32


#: Pillow allocates image memory in blocks of at most this many bytes (its default is 16 MiB).
PIL_BLOCK_BYTES = 64 * 1024 * 1024


def return_big_buffers_to_the_os() -> bool:
    """Let Pillow allocate a decoded picture in blocks of up to :data:`PIL_BLOCK_BYTES` (process-wide; False if
    this Pillow has no such setting).

    With Pillow's 16 MiB blocks, glibc serves them from a worker thread's heap once its dynamic mmap threshold
    has risen (it follows the largest block freed, up to 32 MiB), and keeps them after they are freed: after
    the first 4096² upload the server's RSS then sits ~100 MB higher per decoding thread. A 4096² picture in
    one 48-64 MiB block is always above that threshold, so it gets its own mapping and goes back to the OS when
    freed. (Smaller pictures use blocks of their own size, so nothing is over-allocated. ``malloc_trim`` after
    each decode would also return the memory, but it holds the allocator's locks long enough to make the event
    loop late; a fixed 4 MiB glibc threshold would too, but it made the real engine's steps 8-15 % slower.)"""
    try:
        Image.core.set_block_size(PIL_BLOCK_BYTES)
    except (AttributeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Avatar:
    """A reference image at the model's frame size, its id (16 hex digits of a SHA-256 of those pixels and the
    upload's size) and the size of the uploaded picture."""

    id: str
    image: np.ndarray
    source_size: tuple[int, int]

    def info(self) -> dict:
        """JSON description: the id and the uploaded picture's width and height."""
        w, h = self.source_size
        return {"avatar_id": self.id, "width": w, "height": h}

    @property
    def nbytes(self) -> int:
        """Bytes of pixels held."""
        return int(self.image.nbytes)


def open_upload(data: bytes, max_bytes: int, max_pixels: int) -> Image.Image:
    """Open an uploaded image (decoded, RGB), refusing oversized, tiny or non-image uploads."""
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
            img.load()
            return to_rgb(img)
    except UserInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UserInputError(f"the reference image is too large to decode safely: {exc}") from None
    except Exception as exc:  # PIL raises many types for corrupt data
        raise UserInputError(f"the upload is not a readable image ({type(exc).__name__})") from None


def decode_reference(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Decode an uploaded image to HxWx3 uint8 at its own size (see :func:`open_upload` for what is refused)."""
    return np.asarray(open_upload(data, max_bytes, max_pixels), dtype=np.uint8)


def fit_to_frame(img: Image.Image, frame_size: tuple[int, int]) -> np.ndarray:
    """Centre-crop ``img`` to the aspect of ``frame_size`` (H, W) and resize it there (Lanczos), like the engine's
    :func:`~streamavatar.reference_image.load_reference` does for square models."""
    h, w = frame_size
    sw, sh = img.size
    if sw * h > sh * w:  # too wide
        cw, ch = max(1, round(sh * w / h)), sh
    else:
        cw, ch = sw, max(1, round(sw * h / w))
    left, top = (sw - cw) // 2, (sh - ch) // 2
    img = img.crop((left, top, left + cw, top + ch))
    if img.size != (w, h):
        img = img.resize((w, h), Image.LANCZOS, reducing_gap=3.0)
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def prepare_avatar(data: bytes, max_bytes: int, max_pixels: int, frame_size: tuple[int, int]) -> Avatar:
    """Upload bytes → an :class:`Avatar` at ``frame_size``; UserInputError for a bad upload (CPU-heavy: run it in
    a worker thread). The decoded full-size picture is freed before this returns."""
    img = open_upload(data, max_bytes, max_pixels)
    source_size = img.size
    image = fit_to_frame(img, frame_size)
    del img
    digest = hashlib.sha256(image.tobytes() + f"{image.shape}{source_size}".encode()).hexdigest()[:16]
    return Avatar(digest, image, source_size)


class AvatarStore:
    """LRU cache of prepared reference images keyed by content hash (at most ``max_avatars``)."""

    def __init__(self, max_avatars: int) -> None:
        self.max_avatars = max_avatars
        self._items: OrderedDict[str, Avatar] = OrderedDict()
        #: Avatars evicted to stay within ``max_avatars`` (exported at /metrics).
        self.evicted = 0

    def add(self, avatar: Avatar) -> Avatar:
        """Cache an avatar (a second upload of the same picture returns the cached entry); the least recently
        used is evicted beyond ``max_avatars``."""
        if avatar.id in self._items:
            self._items.move_to_end(avatar.id)
            return self._items[avatar.id]
        self._items[avatar.id] = avatar
        while len(self._items) > self.max_avatars:
            self._items.popitem(last=False)
            self.evicted += 1
        return avatar

    def get(self, avatar_id: str) -> Avatar:
        """A cached avatar, or KeyError naming the unknown id."""
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

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes of pixels held by the cache."""
        return sum(a.nbytes for a in self._items.values())
