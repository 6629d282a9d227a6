"""Every constant taken from the StreamAvatar paper or from Wan, named once with its source.

Sources (see ``../shared/research/paper.md`` and ``anchors-models.md`` for the full trail):

* [paper §3.1] StreamAvatar, arXiv 2512.22065: block-causal DiT with block size C = 3, N = 3 steps.
* [paper §3.2, S5] four-frame reference sink (the reference latent + the first generated chunk).
* [paper §3.3] RAPR distance cap D = 9 latent frames.
* [project page, S1] 25 fps streaming, 0.48 s input chunks.
* [Wan2.1 / Wan2.2 configs, anchors-models §15] VAE strides, latent widths, RoPE split, time embedding width.
"""

from __future__ import annotations

# --- StreamAvatar (paper) -------------------------------------------------------------------------------
#: Latent frames per generation chunk ("block-causal DiT with block size C = 3", paper Fig. 2 / §3.1).
CHUNK_LATENT_FRAMES = 3
#: Denoising steps per chunk for the streaming student (paper §3.1).
STUDENT_DENOISING_STEPS = 3
#: Reference sink size in latent frames: reference latent + first generated chunk (paper §3.2, S5).
REFERENCE_SINK_FRAMES = 4
#: Rolling-window size in latent frames. The paper's secondary source reports a six-frame rolling cache (S5);
#: our design (ARCHITECTURE.md §3) keeps the previous chunk only (3 frames) so that the RAPR cap below is
#: exactly ``sink + window + C - 1``. Both are configurable.
ROLLING_WINDOW_FRAMES = 3
#: RAPR: the largest temporal distance from the reference to the current chunk (paper §3.3: D = 9).
RAPR_MAX_DISTANCE = 9
#: Video frame rate of the stream (project page: 25 FPS).
VIDEO_FPS = 25
#: Audio context of a video frame t: the encoder features of frames t−2 … t+2 are concatenated (paper §3, S4:
#: f'_t = concat(f_{t−2}, …, f_{t+2})); a latent frame's window is its 4 video frames widened by this radius.
AUDIO_WINDOW_RADIUS_FRAMES = 2
#: The prompt StreamAvatar fixes for every experiment (paper §1).
FIXED_PROMPT = "a person is speaking and listening."

# --- Wan VAE geometry (anchors-models §15.5, §15.6) ------------------------------------------------------
#: Temporal stride of the causal Wan VAEs: frame 0 alone, then groups of 4 video frames per latent frame.
VAE_TEMPORAL_STRIDE = 4
#: Wan2.1 VAE spatial stride and latent channels.
WAN21_VAE_SPATIAL_STRIDE = 8
WAN21_VAE_LATENT_CHANNELS = 16
#: Wan2.2 VAE spatial stride and latent channels (the paper's base, Wan2.2-TI2V-5B).
WAN22_VAE_SPATIAL_STRIDE = 16
WAN22_VAE_LATENT_CHANNELS = 48

#: Per-channel latent statistics of the Wan2.1 VAE (``WanVAE.__init__`` in Wan2.1 ``wan/modules/vae.py``; the same
#: values are diffusers' ``AutoencoderKLWan`` defaults). Latents are normalised as ``(mu - mean) / std``.
WAN21_VAE_LATENT_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                         0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
WAN21_VAE_LATENT_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                        3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)
#: Per-channel latent statistics of the Wan2.2 VAE (``Wan2_2_VAE.__init__`` in Wan2.2 ``wan/modules/vae2_2.py``).
WAN22_VAE_LATENT_MEAN = (-0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557,
                         -0.1382, 0.0542, 0.2813, 0.0891, 0.1570, -0.0098, 0.0375, -0.1825,
                         -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
                         -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230,
                         -0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748,
                         0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667)
WAN22_VAE_LATENT_STD = (0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013,
                        0.8158, 1.0344, 0.5894, 1.0901, 0.6885, 0.6165, 0.8454, 0.4978,
                        0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
                        0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093,
                        0.5709, 0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887,
                        0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744)
#: Wan VAE widths (``_video_vae`` / ``WanVAE_`` defaults): Wan2.1 base 96 (decoder 96), Wan2.2 base 160 with a
#: 256-wide decoder and 2x2 pixel patchify on input (12 channels) and output.
WAN21_VAE_BASE_DIM = 96
WAN22_VAE_BASE_DIM = 160
WAN22_VAE_DECODER_BASE_DIM = 256
WAN22_VAE_PATCH_SIZE = 2

# --- Wan DiT conventions (anchors-models §15.1–15.3) -----------------------------------------------------
#: Diffusion timesteps are in [0, NUM_TRAIN_TIMESTEPS]; sigma = t / NUM_TRAIN_TIMESTEPS.
NUM_TRAIN_TIMESTEPS = 1000
#: Width of the sinusoidal timestep embedding (cos first).
TIME_FREQ_DIM = 256
#: RoPE base frequency.
ROPE_THETA = 10000.0
#: Positions per axis in Wan's precomputed RoPE tables (a soft limit: we compute RoPE on the fly).
WAN_ROPE_TABLE_POSITIONS = 1024
#: Text context length and width of umT5-XXL embeddings.
WAN_TEXT_LEN = 512
WAN_TEXT_DIM = 4096
#: Flow-matching sigma shift of Wan2.2-TI2V-5B sampling (anchors-models §15.6; paper §2).
WAN22_SAMPLE_SHIFT = 5.0

# --- derived --------------------------------------------------------------------------------------------
#: Video frames per chunk (12) and chunk duration in seconds (0.48 s, matching the paper's input chunk).
CHUNK_VIDEO_FRAMES = CHUNK_LATENT_FRAMES * VAE_TEMPORAL_STRIDE
CHUNK_SECONDS = CHUNK_VIDEO_FRAMES / VIDEO_FPS

assert REFERENCE_SINK_FRAMES + ROLLING_WINDOW_FRAMES + CHUNK_LATENT_FRAMES - 1 == RAPR_MAX_DISTANCE

# --- pixels and audio ---------------------------------------------------------------------------------------
#: uint8 pixels ↔ [-1, 1]: ``x / PIXEL_HALF_RANGE - 1`` and back ``(x + 1) * PIXEL_HALF_RANGE`` (255 / 2).
PIXEL_HALF_RANGE = 127.5
#: Rate of the audio encoders' input (Whisper, wav2vec2, log-mel) and of the agent audio returned with chunks.
AUDIO_SAMPLE_RATE = 16000
#: The default audio encoder backend (Whisper tiny.en, docs/audio.md).
DEFAULT_AUDIO_BACKEND = "whisper-tiny"
