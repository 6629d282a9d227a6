"""Audio encoder backends: ``whisper-tiny`` (pretrained), ``wav2vec2`` (local directory) and ``mel`` (no weights).

Every backend maps a batch of 16 kHz windows ``[B, N]`` to native-rate features ``[B, T, L, D]`` (``L`` hidden
states of width ``D``) and states where native frame ``j`` sits in the window: its centre is at sample
``center_offset + hop · j``. That timing is all :mod:`streamavatar.audio.windows` needs to pool the features
onto 25 fps video frames. The encoders are frozen feature extractors (eval mode, no gradients).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from streamavatar.audio.config import AudioConfig
from streamavatar.audio.mel import HOP, N_MELS, plain_log_mel, whisper_log_mel
from streamavatar.errors import UserInputError


class AudioEncoder(nn.Module):
    """Base class: frozen encoder from 16 kHz windows to ``[B, T, L, D]`` features (see the module docstring)."""

    name: str = ""
    #: Samples (at 16 kHz) between consecutive native frames.
    hop: int = 320
    #: Centre of native frame 0, in samples from the window start.
    center_offset: float = 0.0
    #: Hidden states returned per frame (``L``) and their width (``D``).
    num_layers: int = 1
    feature_dim: int = 1
    #: Shortest window the backend accepts, in samples.
    min_window: int = 400
    #: Whether the weights are pretrained (the mel backend and a random wav2vec2 are not).
    pretrained: bool = False

    def _select_layers(self, total: int, layers: tuple[int, ...] | None) -> list[int]:
        if layers is None:
            return list(range(total))
        picked = []
        for i in layers:
            if not -total <= i < total:
                raise UserInputError(f"{self.name}: layer index {i} out of range; this encoder has {total} hidden "
                                     f"states (0 = embeddings … {total - 1} = last layer)")
            picked.append(i % total)
        if not picked:
            raise UserInputError(f"{self.name}: layers must name at least one hidden state")
        return picked

    def encode(self, wave: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim != 2 or wave.shape[1] < self.min_window:
            raise UserInputError(f"{self.name}: expected windows [B, N >= {self.min_window}] of 16 kHz audio, got "
                                 f"{tuple(wave.shape)}")
        return self.encode(wave.float()).float()

    def describe(self) -> dict:
        return {"backend": self.name, "layers": self.num_layers, "dim": self.feature_dim, "hop": self.hop,
                "pretrained": self.pretrained}


class MelEncoder(AudioEncoder):
    """80-band log-mel at 100 Hz with a fixed floor: no weights, one "layer"."""

    name = "mel"
    hop = HOP
    center_offset = 0.0
    num_layers = 1
    feature_dim = N_MELS

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        return plain_log_mel(wave).transpose(1, 2).unsqueeze(2)


class WhisperTinyEncoder(AudioEncoder):
    """Whisper tiny.en's encoder (pretrained, MIT) on short windows; returns embeddings + the 4 layers.

    Whisper was trained on 30 s windows; here it runs on ``context_s`` of audio with the first positional
    embeddings (the window's own frames), which keeps a chunk at a few milliseconds. Hidden states follow
    transformers' ``output_hidden_states``: ``[embeddings, layer 1, layer 2, layer 3, LayerNorm(layer 4)]``.
    """

    name = "whisper-tiny"
    hop = 2 * HOP  # conv2 has stride 2 over the 100 Hz mel frames
    center_offset = 0.0
    pretrained = True

    def __init__(self, layers: tuple[int, ...] | None = None, cache_dir: str | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        from streamavatar.audio.whisper_weights import load_whisper_tiny_encoder

        self.model = load_whisper_tiny_encoder(cache_dir).to(dtype).requires_grad_(False)
        self.compute_dtype = dtype
        self.max_frames = self.model.config.max_source_positions
        total = self.model.config.encoder_layers + 1
        self.layer_ids = self._select_layers(total, layers)
        self.num_layers = len(self.layer_ids)
        self.feature_dim = self.model.config.d_model
        self.min_window = 2 * HOP

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        m = self.model
        mel = whisper_log_mel(wave)
        if mel.shape[-1] > 2 * self.max_frames:
            raise UserInputError(f"whisper-tiny sees at most 30 s per window, got {wave.shape[1] / 16000:.1f} s")
        h = nn.functional.gelu(m.conv1(mel.to(self.compute_dtype)))
        h = nn.functional.gelu(m.conv2(h)).transpose(1, 2)
        h = h + m.embed_positions.weight[: h.shape[1]]
        states = [h]
        for layer in m.layers:
            h = layer(h, attention_mask=None)
            h = h[0] if isinstance(h, tuple) else h
            states.append(h)
        states[-1] = m.layer_norm(h)
        return torch.stack([states[i] for i in self.layer_ids], dim=2)


def _conv_geometry(kernels, strides) -> tuple[int, int]:
    """Receptive field and total stride of wav2vec 2.0's convolutional feature encoder."""
    field, jump = 1, 1
    for k, s in zip(kernels, strides, strict=True):
        field += (k - 1) * jump
        jump *= s
    return field, jump


class Wav2Vec2Encoder(AudioEncoder):
    """A transformers ``Wav2Vec2Model`` loaded from a local directory (never from the hub).

    Returns the feature projection + every transformer layer (``output_hidden_states``). Input windows are
    normalised to zero mean and unit variance when the directory's ``preprocessor_config.json`` says
    ``do_normalize`` (the default when the file is absent).
    """

    name = "wav2vec2"
    pretrained = True

    def __init__(self, directory: str | Path, layers: tuple[int, ...] | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        from transformers import Wav2Vec2Model

        path = Path(directory).expanduser()
        if not path.is_dir():
            raise UserInputError(f"wav2vec2 model directory {str(path)!r} does not exist; expected a local "
                                 "directory saved with Wav2Vec2Model.save_pretrained (no downloads are made)")
        if not (path / "config.json").is_file():
            raise UserInputError(f"{path} has no config.json; expected a directory saved with "
                                 "Wav2Vec2Model.save_pretrained")
        try:
            self.model = Wav2Vec2Model.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise UserInputError(f"cannot load a Wav2Vec2Model from {path}: {exc}") from None
        self.model = self.model.to(dtype).eval().requires_grad_(False)
        self.compute_dtype = dtype
        cfg = self.model.config
        field, jump = _conv_geometry(cfg.conv_kernel, cfg.conv_stride)
        self.hop, self.center_offset, self.min_window = jump, (field - 1) / 2.0, field
        self.layer_ids = self._select_layers(cfg.num_hidden_layers + 1, layers)
        self.num_layers, self.feature_dim = len(self.layer_ids), cfg.hidden_size
        self.normalize = True
        pre = path / "preprocessor_config.json"
        if pre.is_file():
            self.normalize = bool(json.loads(pre.read_text()).get("do_normalize", True))

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            mean = wave.mean(dim=1, keepdim=True)
            var = wave.var(dim=1, keepdim=True, unbiased=False)
            wave = (wave - mean) / torch.sqrt(var + 1e-7)
        out = self.model(wave.to(self.compute_dtype), output_hidden_states=True)
        return torch.stack([out.hidden_states[i] for i in self.layer_ids], dim=2)


def build_encoder(cfg: AudioConfig) -> AudioEncoder:
    """The encoder named by ``cfg.backend`` (weights loaded from disk only)."""
    dtype = torch.bfloat16 if cfg.dtype == "bfloat16" else torch.float32
    if cfg.backend == "mel":
        enc: AudioEncoder = MelEncoder()
        if cfg.layers not in (None, (0,), (-1,)):
            raise UserInputError(f"the mel backend has a single feature layer; got layers {cfg.layers}")
    elif cfg.backend == "whisper-tiny":
        enc = WhisperTinyEncoder(cfg.layers, cfg.cache_dir, dtype)
    elif cfg.backend == "wav2vec2":
        enc = Wav2Vec2Encoder(cfg.wav2vec2_dir, cfg.layers, dtype)
    else:  # AudioConfig validates the name; this guards direct misuse
        raise UserInputError(f"unknown audio backend {cfg.backend!r}")
    return enc.eval()


def native_frame_times(encoder: AudioEncoder, num_frames: int) -> np.ndarray:
    """Centre of each native frame in samples from the window start."""
    return encoder.center_offset + encoder.hop * np.arange(num_frames, dtype=np.float64)
