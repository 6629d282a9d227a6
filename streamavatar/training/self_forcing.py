"""Self-forcing rollouts: the student generates a clip chunk after chunk exactly as it does at inference.

A rollout is :class:`~streamavatar.diffusion.chunk_sampler.ChunkSampler` itself — ``start`` writes the reference
into the Reference Sink, ``denoise_chunk`` runs the N steps of each chunk against the KV cache (rolling window,
RAPR, last-step cache reuse) — so training sees the positions, cache contents and noise levels of inference.
Gradient truncation follows Self-Forcing (paper.md §9.1): one exit step ``s`` is drawn per rollout (the same for
every chunk); the forward of step ``s`` of every chunk carries gradients and its x0 prediction is that chunk's
training sample; all other steps, and every key/value that later chunks read from the cache, are detached.
The remaining steps still run (without gradients), so the cache holds exactly what inference writes.

A rollout must be long enough for the RAPR layout to freeze (the first chunk generated after an eviction),
otherwise training never sees the position layout that every chunk of a long stream uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from streamavatar.config import StreamConfig
from streamavatar.diffusion.chunk_sampler import ChunkSampler, NoiseFn
from streamavatar.errors import UserInputError
from streamavatar.models.dit import AvatarDiT


def min_rollout_chunks(stream: StreamConfig) -> int:
    """Chunks a rollout needs so that its last chunk is generated after the cache's first eviction.

    From that chunk on the RAPR layout is frozen (``[sink][window][current]`` at indices ``0…D``); with the
    defaults (sink 4, window 3, C = 3) that is chunk 4."""
    # Chunk k comes after 1 + C·(k − 1) committed frames; the first eviction precedes the first k for which
    # that exceeds the cache's capacity.
    return (stream.cached_frames - 1) // stream.chunk_frames + 2


def check_rollout_length(chunks: int, stream: StreamConfig) -> None:
    """Refuse rollouts too short to contain the frozen RAPR layout."""
    need = min_rollout_chunks(stream)
    if chunks < need:
        raise UserInputError(
            f"rollouts of {chunks} chunks never reach the frozen RAPR layout: with a cache of "
            f"{stream.cached_frames} frames (sink {stream.sink_frames}, window {stream.window_frames}) and "
            f"chunks of {stream.chunk_frames}, the first chunk after an eviction is chunk {need}; "
            f"use --rollout-chunks {need} or more")


def teacher_window(teacher_info: dict, stream: StreamConfig, chunks: int) -> int:
    """The latent frames of the teacher's training window (what it scores at once), checked to be whole chunks
    that fit a rollout of ``chunks`` chunks."""
    window = int(teacher_info.get("train", {}).get("frames", 3 * stream.chunk_frames))
    if window % stream.chunk_frames or window > chunks * stream.chunk_frames:
        raise UserInputError(f"the teacher's window of {window} frames does not fit rollouts of "
                             f"{chunks} chunks of {stream.chunk_frames}")
    return window


@dataclass
class Rollout:
    """One rollout's outputs: ``final`` chunks as inference returns them, and the exit-step samples."""

    final: list[torch.Tensor]
    samples: list[torch.Tensor]
    exit_step: int | None

    def clip(self, use_samples: bool = True) -> torch.Tensor:
        """The generated latent frames ``[B, C, chunks·C, h, w]`` (exit-step samples or final outputs)."""
        return torch.cat(self.samples if use_samples and self.exit_step is not None else self.final, dim=2)


def self_forcing_rollout(student: AvatarDiT, stream: StreamConfig, reference: torch.Tensor, chunks: int, *,
                         talk: torch.Tensor | None, listen: torch.Tensor | None, exit_step: int | None,
                         noise: NoiseFn | None = None, generator: torch.Generator | None = None,
                         context: torch.Tensor | None = None, check_length: bool = True) -> Rollout:
    """Generate ``chunks`` chunks after ``reference [B, C, 1, h, w]`` with the streaming sampler.

    ``talk``/``listen`` are the student's audio tokens for all generated frames ``[B, chunks·C, n, d]``. With
    ``exit_step = None`` nothing carries gradients (and the result equals :class:`ChunkSampler` exactly)."""
    if check_length:
        check_rollout_length(chunks, stream)
    c = stream.chunk_frames
    for name, a in (("talk", talk), ("listen", listen)):
        if a is not None and a.shape[1] != chunks * c:
            raise UserInputError(f"{name} tokens cover {a.shape[1]} frames, a rollout of {chunks} chunks needs "
                                 f"{chunks * c}")
    sampler = ChunkSampler(student, stream)
    state = sampler.start(reference, context)
    final, samples = [], []
    for k in range(chunks):
        sl = slice(k * c, (k + 1) * c)
        x0, x0_grad = sampler.denoise_chunk(
            state, talk_audio=None if talk is None else talk[:, sl],
            listen_audio=None if listen is None else listen[:, sl], noise=noise, generator=generator,
            grad_step=exit_step)
        final.append(x0)
        if x0_grad is not None:
            samples.append(x0_grad)
    return Rollout(final=final, samples=samples, exit_step=exit_step)


def random_exit_step(stream: StreamConfig, generator: torch.Generator) -> int:
    """The step whose forward carries gradients in this rollout (uniform over the N steps)."""
    return int(torch.randint(stream.num_steps, (1,), generator=generator))

