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
