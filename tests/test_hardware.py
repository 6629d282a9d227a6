"""The default dtype follows the hardware: bf16 only where the CPU has bf16 instructions (or on CUDA).

On an AVX2-only CPU, emulated bf16 ran 40-57x slower than fp32 (``streamavatar/hardware.py``), so ``auto`` (the
default of the engine, the CLI, the server and the trainers) must resolve to fp32 there and to bf16 on CPUs with
AVX512-BF16 or AMX. Tested with the CPU flags replaced, on whatever machine runs the suite.
"""

from __future__ import annotations

import pytest
import torch

from streamavatar import hardware
from streamavatar.errors import UserInputError

AVX2_ONLY = frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"})
SAPPHIRE_RAPIDS = AVX2_ONLY | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse4_2 avx avx2 fma

processor\t: 1
flags\t\t: fpu avx512_bf16
"""


def _flags(monkeypatch, flags: frozenset[str]) -> None:
    monkeypatch.setattr(hardware, "cpu_flags", lambda cpuinfo=None: flags)


def test_cpu_flags_reads_the_first_cpu():
    assert hardware.cpu_flags(CPUINFO) == AVX2_ONLY
    assert hardware.cpu_flags("model name\t: something\n") == frozenset()


def test_native_bf16_needs_bf16_instructions():
    assert not hardware.cpu_has_native_bf16(AVX2_ONLY)
    assert not hardware.cpu_has_native_bf16(AVX2_ONLY | {"avx512f", "avx512_vnni"})  # AVX-512 alone emulates
    assert hardware.cpu_has_native_bf16(AVX2_ONLY | {"avx512_bf16"})
    assert hardware.cpu_has_native_bf16(AVX2_ONLY | {"amx_bf16"})


@pytest.mark.parametrize("flags,want", [(AVX2_ONLY, "fp32"), (SAPPHIRE_RAPIDS, "bf16")])
def test_auto_resolves_per_cpu(monkeypatch, flags, want):
    _flags(monkeypatch, flags)
    assert hardware.resolve_dtype_name("auto") == want
    assert hardware.resolve_dtype_name("auto", "cpu", "cuda:0") == want  # a CPU stage decides for both
    assert hardware.resolve_dtype_name("auto", "cuda:0") == "bf16"
    assert hardware.resolve_dtype_name("bf16") == "bf16" and hardware.resolve_dtype_name("fp32") == "fp32"
    assert (hardware.emulated_bf16_warning("cpu") is None) == (want == "bf16")


def test_engine_defaults_to_fp32_on_a_cpu_without_bf16(monkeypatch, capfd):
    from streamavatar.streaming.pipeline import load

    monkeypatch.setenv("STREAMAVATAR_NUMERICS_CHECK", "1")
    _flags(monkeypatch, AVX2_ONLY)
    pipe = load("default", warmup=False)
    assert pipe.dtype == torch.float32 and pipe.model.dtype == torch.float32 and pipe.vae.dtype == torch.float32
    assert pipe.numerics is None and pipe.dtype_asked == "auto"  # nothing in bf16: no self-check to run
    assert "emulated" not in capfd.readouterr().err
    # Asking for bf16 explicitly is honoured, with one line saying what it costs here.
    monkeypatch.setenv("STREAMAVATAR_NUMERICS_CHECK", "0")
    forced = load("default", warmup=False, dtype="bf16")
    assert forced.dtype == torch.bfloat16
    assert [ln for ln in capfd.readouterr().err.splitlines() if "emulated" in ln] != []
    with pytest.raises(UserInputError, match="unknown dtype"):
        load("default", warmup=False, dtype="fp16")


def test_engine_defaults_to_bf16_on_a_cpu_with_bf16(monkeypatch, capfd):
    from streamavatar.streaming.pipeline import load

    monkeypatch.setenv("STREAMAVATAR_NUMERICS_CHECK", "0")
    _flags(monkeypatch, SAPPHIRE_RAPIDS)
    pipe = load("default", warmup=False)
    assert pipe.dtype == torch.bfloat16 and pipe.model.dtype == torch.bfloat16
    assert "emulated" not in capfd.readouterr().err


@pytest.mark.parametrize("flags,want", [(AVX2_ONLY, "fp32"), (SAPPHIRE_RAPIDS, "bf16")])
def test_trainer_autocast_auto_follows_the_cpu(monkeypatch, flags, want):
    from streamavatar.models.vae import load_vae
    from streamavatar.training.trainer import TrainerConfig

    _flags(monkeypatch, flags)
    cfg = TrainerConfig(steps=1, max_minutes=1.0)
    assert cfg.autocast == want
    assert TrainerConfig(steps=1, max_minutes=1.0, autocast="bf16").autocast == "bf16"
    with pytest.raises(UserInputError, match="autocast must be one of"):
        TrainerConfig(steps=1, max_minutes=1.0, autocast="int8")
    assert load_vae("tiny48").dtype == {"fp32": torch.float32, "bf16": torch.bfloat16}[want]
