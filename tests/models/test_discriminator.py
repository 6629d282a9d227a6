"""D_CA and the plain discriminator: backbone copied from the teacher, heads, shapes, what each logit reads."""

from __future__ import annotations

import pytest
import torch

from streamavatar.errors import UserInputError
from streamavatar.models.discriminator import (
    ConsistencyAwareDiscriminator,
    DiscriminatorConfig,
    default_head_layers,
)
from tests.models.dit_helpers import make_model, small_dit_config

FRAMES = 6


def _teacher():
    return make_model(small_dit_config(prediction="x0", num_layers=4), seed=7)


def _inputs(cfg, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.latent_channels, 1 + FRAMES, 8, 8, generator=g)
    t = torch.cat([torch.zeros(batch, 1), torch.full((batch, FRAMES), 500.0)], dim=1)
    talk = torch.randn(batch, FRAMES, cfg.audio_tokens_per_frame, cfg.audio_dim, generator=g)
    listen = torch.randn(batch, FRAMES, cfg.audio_tokens_per_frame, cfg.audio_dim, generator=g)
    return x, t, talk, listen


def test_head_layers_follow_self_forcing_depths():
    assert default_head_layers(30) == (13, 21, 29)
    assert default_head_layers(6) == (2, 3, 5)
    assert default_head_layers(4) == (1, 2, 3)
    with pytest.raises(UserInputError):
        default_head_layers(2)


def test_backbone_is_a_copy_of_the_teacher():
    teacher = _teacher().requires_grad_(False)  # frozen, as in training
    d = ConsistencyAwareDiscriminator.from_teacher(teacher)
    assert all(p.requires_grad for p in d.backbone.parameters())
    t_state = teacher.state_dict()
    for k, v in d.backbone.state_dict().items():
        assert torch.equal(v, t_state[k]), k
    with torch.no_grad():
        next(d.backbone.parameters()).add_(1.0)
    assert not torch.equal(next(d.backbone.parameters()), next(teacher.parameters()))  # a copy, not a view
    assert all(not p.requires_grad for p in teacher.parameters())  # the teacher is left frozen


def test_shapes_of_both_variants_and_their_heads():
    teacher = _teacher()
    x, t, talk, listen = _inputs(teacher.cfg)
    full = ConsistencyAwareDiscriminator.from_teacher(teacher)
    out = full(x, t, talk_audio=talk, listen_audio=listen, reference=x[:, :, :1])
    assert out.local.shape == (2, FRAMES) and out.global_.shape == (2,)
    assert out.flat().shape == (2, FRAMES + 1)
    assert full.layers == (1, 2, 3) and len(full.query_heads) == 3
    plain = ConsistencyAwareDiscriminator.from_teacher(teacher, DiscriminatorConfig(consistency=False))
    out = plain(x, t, talk_audio=talk, listen_audio=listen, reference=x[:, :, :1])
    assert out.local.shape == (2, FRAMES) and out.global_ is None and out.flat().shape == (2, FRAMES)
    names = {n for n, _ in plain.named_parameters()}
    assert not any(n.startswith(("consistency_attn", "global_head")) for n in names)
    assert any(n.startswith("global_head") for n, _ in full.named_parameters())


def test_samples_are_judged_independently_and_every_head_gets_gradients():
    teacher = _teacher()
    d = ConsistencyAwareDiscriminator.from_teacher(teacher)
    x, t, talk, listen = _inputs(teacher.cfg)
    out = d(x, t, talk_audio=talk, listen_audio=listen, reference=x[:, :, :1])
    one = d(x[1:], t[1:], talk_audio=talk[1:], listen_audio=listen[1:], reference=x[1:, :, :1])
    torch.testing.assert_close(one.local, out.local[1:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(one.global_, out.global_[1:], atol=1e-5, rtol=1e-5)
    (out.local.sum() + out.global_.sum()).backward()
    for name in ("queries", "query_heads.0.q.weight", "query_heads.2.o.weight", "merge.1.weight",
                 "local_head.3.weight", "consistency_attn.q.weight", "global_head.3.weight",
                 "backbone.blocks.0.self_attn.q.weight"):
        p = dict(d.named_parameters())[name]
        assert p.grad is not None and float(p.grad.abs().max()) > 0, name
    # blocks after the last read one and the output head are not run
    assert all(p.grad is None for p in d.backbone.head.parameters())


def test_the_consistency_logit_reads_the_reference_frame():
    teacher = _teacher()
    d = ConsistencyAwareDiscriminator.from_teacher(teacher).eval()
    x, t, talk, listen = _inputs(teacher.cfg, batch=1)
    with torch.no_grad():
        base = d(x, t, talk_audio=talk, listen_audio=listen, reference=x[:, :, :1])
        other = x.clone()
        other[:, :, :1] = torch.randn(other[:, :, :1].shape, generator=torch.Generator().manual_seed(9))
        moved = d(other, t, talk_audio=talk, listen_audio=listen, reference=other[:, :, :1])
    assert abs(float(moved.global_ - base.global_)) > 1e-4


def test_bad_configurations_are_refused():
    teacher = _teacher()
    with pytest.raises(UserInputError, match="three distinct"):
        ConsistencyAwareDiscriminator.from_teacher(teacher, DiscriminatorConfig(layers=(0, 1, 1)))
    with pytest.raises(UserInputError, match="three distinct"):
        ConsistencyAwareDiscriminator.from_teacher(teacher, DiscriminatorConfig(layers=(0, 1, 4)))
    d = ConsistencyAwareDiscriminator.from_teacher(teacher)
    x, t, _, _ = _inputs(teacher.cfg)
    with pytest.raises(UserInputError, match="reference"):
        d(x, t, reference=x[:, :, :1], reference_frames=0)
