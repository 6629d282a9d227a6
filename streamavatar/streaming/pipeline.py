"""``streamavatar.load``: a streaming model (DiT + audio projector), the VAE and the audio front-end, ready to
make :class:`~streamavatar.streaming.session.Session` streams.

Devices and precision: everything runs in bf16 on the CPU by default (fp32 3D/2D convolutions are many times
slower on CPU, see ``docs/engine.md``); ``dit_device`` and ``vae_device`` put the DiT (+ audio) and the VAE on
separate devices (two GPUs, or GPU + CPU).

Threads: a session runs the DiT on the calling thread and the VAE decode on a worker thread, each using
torch's intra-op pool. ``load(threads=N)`` sets that pool's size for the whole process
(``torch.set_num_threads``); the default on the CPU is 1, so the two stages together use two cores — on this
project's 2-core machine two OpenMP threads per op were measured several times slower than one under load
(numbers in ``docs/engine.md``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from streamavatar import constants as K
from streamavatar.errors import UserInputError
from streamavatar.hardware import DTYPE_CHOICES, emulated_bf16_warning, resolve_dtype_name
from streamavatar.streaming.model_folder import ModelFolder, resolve_model
from streamavatar.streaming.numerics_check import NumericsReport, cached_check, check_enabled, file_fingerprint

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
#: Rate of the audio returned in chunks (the encoders' rate; a multiple of 25 so each frame owns 640 samples).
OUTPUT_SAMPLE_RATE = 16000
#: The resolution the bundled models were trained at (the synthetic corpus).
DEFAULT_RESOLUTION = 128


def frames_to_uint8(video: torch.Tensor) -> np.ndarray:
    """VAE output ``[1, 3, T, H, W]`` in [-1, 1] → uint8 ``[T, H, W, 3]``."""
    unit = video[0].float().clamp(-1, 1).permute(1, 2, 3, 0)
    return ((unit + 1) * K.PIXEL_HALF_RANGE).round().to(torch.uint8).numpy()


def _device(spec: str) -> torch.device:
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError) as exc:
        raise UserInputError(f"unknown device {spec!r} ({exc}); expected e.g. 'cpu' or 'cuda:0'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"device {spec!r} asked for, but CUDA is not available on this machine")
    return dev


class Pipeline:
    """A loaded streaming model. Satisfies the server's ``AvatarPipeline`` protocol (``name``, ``frame_size``,
    ``sample_rate``, ``session``)."""

    def __init__(self, folder: ModelFolder, *, resolution: int | None = None, dtype: str = "auto",
                 dit_device: str = "cpu", vae_device: str = "cpu", overlap: bool = True,
                 audio_dtype: str | None = None, numerics_check: bool | None = None,
                 compile: str | None = None) -> None:
        from streamavatar.audio import AudioConfig, AudioFrontend
        from streamavatar.config import DEFAULT_VAE, ModelConfig
        from streamavatar.diffusion.chunk_sampler import ChunkSampler
        from streamavatar.models.avatar_model import AvatarModel
        from streamavatar.models.vae import load_vae

        if dtype not in DTYPE_CHOICES:
            raise UserInputError(f"unknown dtype {dtype!r}; expected one of {list(DTYPE_CHOICES)}")
        t0 = time.perf_counter()
        self.folder = folder
        self.info = folder.info
        self.dit_device, self.vae_device = _device(dit_device), _device(vae_device)
        devices = (str(self.dit_device), str(self.vae_device))
        #: What the caller asked for (``auto`` resolves per machine: :mod:`streamavatar.hardware`).
        self.dtype_asked = dtype
        if dtype == "bf16" and (warning := emulated_bf16_warning(*devices)):
            sys.stderr.write(warning + "\n")
        self.dtype = DTYPES[resolve_dtype_name(dtype, *devices)]
        self.overlap = overlap
        mc = ModelConfig.from_dict(folder.info["model"])
        self.model_config = mc
        stride = mc.vae_spatial_stride * mc.dit.patch_size[1]
        res = int(resolution or folder.manifest.get("resolution") or folder.info.get("resolution")
                  or DEFAULT_RESOLUTION)
        if res <= 0 or res % stride:
            raise UserInputError(f"resolution {res} must be a positive multiple of {stride}")
        self.resolution = res
        bundle = AvatarModel.from_files(folder.files)  # float32: the bf16 self-check compares against it
        train = folder.info.get("train", {})
        vae_spec = train.get("vae", DEFAULT_VAE)
        vae = load_vae(vae_spec, dtype=torch.float32).eval()
        self.numerics: NumericsReport | None = None
        if numerics_check is None:
            numerics_check = check_enabled()
        if numerics_check and self.dtype == torch.bfloat16 and "cpu" in (self.dit_device.type, self.vae_device.type):
            self.numerics = self._check_bf16(bundle.dit, mc, vae, vae_spec)
            if not self.numerics.ok:
                sys.stderr.write(f"streamavatar: warning: bf16 gives wrong results on this CPU "
                                 f"({self.numerics.reason}); running in fp32 instead (slower). "
                                 f"`streamavatar doctor` shows the machine\n")
                self.dtype = torch.float32
        self.bundle = bundle.to(self.dit_device, self.dtype)
        self.model = bundle.dit
        self.projector = bundle.projector
        self.compile = compile
        stream = mc.stream
        if compile:
            # static shapes: the ring cache keeps every chunk step's keys the same size (no recompiles)
            stream = replace(stream, ring_cache=True)
            self.model.compile_blocks(backend=compile)
        self.sampler = ChunkSampler(self.model, stream)
        self.vae = vae.to(self.vae_device, self.dtype)
        a = folder.info.get("audio", {})
        adtype = audio_dtype or ("bfloat16" if self.dtype == torch.bfloat16 else "float32")
        acfg = AudioConfig(backend=a.get("backend", train.get("audio_backend", K.DEFAULT_AUDIO_BACKEND)),
                           context_s=a.get("context_s", 2.0),
                           lookahead_ms=a.get("lookahead_ms", K.AUDIO_WINDOW_RADIUS_FRAMES * 1000 / K.VIDEO_FPS),
                           window_radius=a.get("window_radius", K.AUDIO_WINDOW_RADIUS_FRAMES),
                           chunk_latent_frames=mc.stream.chunk_frames, vad=a.get("vad", "energy"), dtype=adtype)
        self.frontend = AudioFrontend(acfg)
        self.frontend.to(self.dit_device)
        pc = self.projector.talk.cfg
        got = (self.frontend.window_size, self.frontend.num_layers, self.frontend.feature_dim)
        if (pc.window, pc.num_layers, pc.feature_dim) != got:
            raise UserInputError(f"{folder.config_path}: the projector expects audio windows "
                                 f"{(pc.window, pc.num_layers, pc.feature_dim)} but the {acfg.backend} front-end "
                                 f"gives {got}")
        self.name = self._name()
        self.frame_size = (res, res)
        self.sample_rate = OUTPUT_SAMPLE_RATE
        #: Agent audio a step peeks beyond its chunk (the encoder's look-ahead; samples at the output rate, which
        #: is the encoders' rate), read by the server so it can push that much ahead.
        self.lookahead_samples = int(self.frontend.geometry.lookahead)
        self.load_s = time.perf_counter() - t0
        self.warmup_s = 0.0
        self.warmed_up = False

    def _check_bf16(self, model, mc, vae, vae_spec: str) -> NumericsReport:
        """The bf16-vs-fp32 self-check on the bundled reference image (cached per machine and weights)."""
        from streamavatar.reference_image import load_reference
        from streamavatar.streaming.default_assets import bundled_inputs

        image = load_reference(bundled_inputs()[0], self.resolution)
        vae_path = Path(vae_spec)
        extra = [vae_path] if vae_path.exists() else []
        fingerprint = f"{file_fingerprint(self.folder.weights_path, *extra)}|{vae_spec}|{self.resolution}"
        return cached_check(model, mc.stream, vae, image, model_fingerprint=fingerprint)

    def _name(self) -> str:
        f = self.folder
        label = "default" if f.spec == "default" else f.folder.name
        if f.distilled:
            return f"{label} (distilled student)"
        steps = self.model_config.stream.num_steps
        return f"{label} (teacher weights, not distilled: run block-causally in {steps} steps)"

    def describe(self) -> dict:
        """What was loaded (for JSON output and model cards)."""
        mc = self.model_config
        return {
            "name": self.name, "kind": self.folder.kind, "distilled": self.folder.distilled,
            "weights": str(self.folder.weights_path), "resolution": [self.resolution, self.resolution],
            "fps": K.VIDEO_FPS, "dtype": str(self.dtype).removeprefix("torch."),
            "dit_device": str(self.dit_device), "vae_device": str(self.vae_device),
            "dit_parameters": self.model.num_parameters(), "steps": mc.stream.num_steps,
            "chunk_latent_frames": mc.stream.chunk_frames, "audio": self.frontend.config.backend,
            "overlap": self.overlap, "threads": torch.get_num_threads(), "compile": self.compile,
            "numerics_check": self.numerics.to_dict() if self.numerics else None,
        }

    @torch.no_grad()
    def encode_reference(self, image_uint8: np.ndarray) -> torch.Tensor:
        """``res×res×3`` uint8 → normalised reference latent ``[1, z, 1, h, w]`` (float32, on the DiT device)."""
        x = torch.from_numpy(image_uint8).float().div(K.PIXEL_HALF_RANGE).sub(1.0).permute(2, 0, 1)[None, :, None]
        z = self.vae.encode(x.to(self.vae_device, self.vae.dtype))
        return z.float().to(self.dit_device)

    # --- the three steps of a chunk, and the per-stream state they work on --------------------------------
    def audio_stream(self, listen_backlog_s: float | None = 2.0):
        """A stream's talk/listen audio queues (:class:`~streamavatar.audio.streaming.ChunkAudioEncoder`)."""
        from streamavatar.audio.streaming import ChunkAudioEncoder

        return ChunkAudioEncoder(self.frontend, listen_backlog_s)

    def generator(self, seed: int) -> torch.Generator:
        """The noise generator of a stream (on the DiT device)."""
        return torch.Generator(device=self.dit_device).manual_seed(int(seed))

    @torch.no_grad()
    def start(self, reference_latent: torch.Tensor):
        """A stream's sampler state (KV cache with the Reference Sink filled by the reference latent)."""
        context = self.bundle.text_context  # the fixed prompt, if the model has one (else the zero prompt)
        return self.sampler.start(reference_latent, context=context)

    def decoder(self):
        """A stream's causal VAE decoder."""
        return self.vae.streaming_decoder()

    @torch.no_grad()
    def condition(self, audio) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk's talk/listen windows (:class:`~streamavatar.audio.streaming.ChunkAudio`) → the DiT's
        audio tokens."""
        dev, dt = self.dit_device, self.dtype
        return self.projector(audio.talk.windows[None].to(dev, dt), audio.listen.windows[None].to(dev, dt))

    @torch.no_grad()
    def denoise(self, state, tokens: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """Generate the next chunk's latents from the stream's sampler ``state`` (few-step, KV cache)."""
        talk, listen = tokens
        return self.sampler.next_chunk(state, talk_audio=talk, listen_audio=listen, generator=generator)

    @torch.no_grad()
    def decode(self, decoder, latents: torch.Tensor) -> np.ndarray:
        """Latents → uint8 frames ``[T, H, W, 3]`` through the stream's causal ``decoder``."""
        return frames_to_uint8(decoder.decode(latents.to(self.vae_device, self.vae.dtype)))

    def warmup(self) -> float:
        """Run one throwaway chunk (first calls of the encoder, DiT and VAE pay one-off costs); returns seconds.
        Once per pipeline: a second call (the server's, on a pipeline ``load`` warmed up already) does nothing."""
        if self.warmed_up:
            return 0.0
        t0 = time.perf_counter()
        gray = np.full((self.resolution, self.resolution, 3), 128, np.uint8)
        with self.session(gray) as s:
            s.step()
        self.warmup_s, self.warmed_up = time.perf_counter() - t0, True
        return self.warmup_s

    def session(self, reference_image, *, seed: int = 0, listen_backlog_s: float | None = 2.0,
                keep_latents: bool = False):
        """Start a stream for ``reference_image`` (a path, a PIL image or an ``H×W×3`` uint8 array)."""
        from streamavatar.streaming.session import Session

        return Session(self, reference_image, seed=seed, listen_backlog_s=listen_backlog_s,
                       keep_latents=keep_latents)


def load(spec: str = "default", *, resolution: int | None = None, dtype: str = "auto", dit_device: str = "cpu",
         vae_device: str = "cpu", threads: int | None = None, overlap: bool = True, warmup: bool = True,
         numerics_check: bool | None = None, compile: str | None = None) -> Pipeline:
    """Load a streaming model: ``"default"`` (bundled with the package) or a model folder (see
    :mod:`streamavatar.streaming.model_folder`).

    ``threads``: torch intra-op threads for the process (default: 1 when everything runs on the CPU, since the
    DiT and the decode thread then use one core each; left alone otherwise). ``overlap``: decode on a worker
    thread so that the DiT can work on the next chunk meanwhile (see :meth:`Session.submit`). ``warmup``: run
    one throwaway chunk before returning, so that a session's first-frame delay is not the one-off start cost.
    ``dtype``: ``"auto"`` (bf16 on CUDA and on CPUs with bf16 instructions, fp32 on CPUs that would emulate it
    tens of times slower), ``"bf16"`` or ``"fp32"``.
    ``numerics_check``: in bf16 on a CPU, compare the model with fp32 once per machine and fall back to fp32 if
    bf16 is wrong (:mod:`~streamavatar.streaming.numerics_check`; default on, ``$STREAMAVATAR_NUMERICS_CHECK=0``
    turns it off). ``compile``: a ``torch.compile`` backend (``"inductor"``, ``"aot_eager"``, …) for the DiT's
    blocks (:meth:`~streamavatar.models.dit.AvatarDiT.compile_blocks`), run with the ring KV cache; the first
    chunks pay the compile time (``warmup`` absorbs it).
    """
    folder = resolve_model(spec)
    if threads is None and dit_device == "cpu" and vae_device == "cpu":
        threads = 1
    if threads is not None:
        if int(threads) <= 0:
            raise UserInputError(f"threads must be a positive integer, got {threads}")
        torch.set_num_threads(int(threads))
    pipe = Pipeline(folder, resolution=resolution, dtype=dtype, dit_device=dit_device, vae_device=vae_device,
                    overlap=overlap, numerics_check=numerics_check, compile=compile)
    if warmup:
        pipe.warmup()
    return pipe
