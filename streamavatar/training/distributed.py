"""Training under ``torchrun``: the process group, FSDP2 sharding, global-batch sharding and full checkpoints.

The :class:`~streamavatar.training.trainer.Trainer` uses this module; objectives see only a few helpers on the
trainer (``trainer.shards``, ``trainer.sum_across_ranks``). Conventions (docs/distributed.md):

* **One process = many processes.** ``batch`` is the *global* batch of one optimiser step. Every rank draws the
  same global batch indices and the same noise from the objective's generator (seeded identically on every
  rank and checkpointed), then keeps its own disjoint part, split again into ``grad_accum`` micro-batches
  (:func:`shard_slices`). FSDP averages gradients over ranks, so a micro-batch's loss is its share of the
  global loss times the world size; summed over micro-batches and averaged over ranks the gradient is the
  one-process gradient of the global batch.
* **FSDP2** (:func:`torch.distributed.fsdp.fully_shard`): each DiT block (a module's ``blocks`` list) is its own
  unit, then the module as the root; parameters are ``DTensor`` shards, the optimiser is rebuilt onto them.
  bf16 parameters with fp32 gradient reduction on CUDA when the run's autocast is bf16; fp32 otherwise.
* **Checkpoints** hold FULL (unsharded) state dicts (``get_model_state_dict`` / ``get_optimizer_state_dict``
  with ``full_state_dict=True, cpu_offload=True``) in the one-process layout, written by rank 0 only, so a
  checkpoint loads in one process and resumes under ``torchrun`` with any world size that divides the batch.
* **Restarts**: under ``torchrun --max-restarts N`` a restarted worker group resumes from the run's
  checkpoint by itself (``TORCHELASTIC_RESTART_COUNT > 0``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.checkpoint import checkpoint

from streamavatar.errors import UserInputError

#: Test-only fault injection: the rank named by :data:`TEST_KILL_RANK_ENV` (default 0) SIGKILLs itself right
#: after counting this step, in the first attempt of a ``torchrun`` worker group only (never set it in a run).
TEST_KILL_AT_STEP_ENV = "STREAMAVATAR_TEST_KILL_AT_STEP"
TEST_KILL_RANK_ENV = "STREAMAVATAR_TEST_KILL_RANK"


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a ``torchrun`` job (world 1: a plain single process)."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0
    #: How many times torchrun has restarted the worker group (``TORCHELASTIC_RESTART_COUNT``).
    restart: int = 0
    #: Started by torchrun (then FSDP runs even on one process: the multi-GPU code path on one GPU).
    launched: bool = False

    @property
    def enabled(self) -> bool:
        return self.world > 1 or self.launched

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    @contextlib.contextmanager
    def main_first(self):
        """Rank 0 runs the body first (e.g. builds a shared cache on disk), then the other ranks."""
        if not self.is_main:
            self.barrier()
        try:
            yield
        finally:
            if self.is_main:
                self.barrier()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over ranks (float64 on CPU for gloo/NCCL alike; a copy, the input is kept)."""
        out = values.detach().to(torch.float64).clone()
        if self.enabled:
            backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
            out = out.to(backend_device)
            dist.all_reduce(out)
        return out.cpu()

    def any(self, flags: list[bool]) -> list[bool]:
        """Element-wise OR of ``flags`` over ranks (so every rank takes the same decision)."""
        if not self.enabled:
            return list(flags)
        return [bool(v > 0) for v in self.sum(torch.tensor([float(f) for f in flags])).tolist()]

    def gather_objects(self, obj) -> list:
        """``obj`` of every rank, in rank order."""
        if not self.enabled:
            return [obj]
        out: list = [None] * self.world
        dist.all_gather_object(out, obj)
        return out


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise UserInputError(f"environment variable {name} must be an integer, got {os.environ[name]!r}") from None


def dist_env(device: str = "cpu") -> DistEnv:
    """This process's place in a ``torchrun`` job; initialises the process group on first use when started by
    torchrun or ``WORLD_SIZE > 1`` (NCCL for a CUDA ``device``, gloo otherwise)."""
    world = _env_int("WORLD_SIZE", 1)
    env = DistEnv(world=world, rank=_env_int("RANK", 0), local_rank=_env_int("LOCAL_RANK", 0),
                  restart=_env_int("TORCHELASTIC_RESTART_COUNT", 0), launched="TORCHELASTIC_RUN_ID" in os.environ)
    if env.enabled and not dist.is_initialized():
        cuda = torch.device(device).type == "cuda"
        if cuda:
            torch.cuda.set_device(env.local_rank)
        # A worker group that torchrun restarted meets in the same store as the failed one: without a prefix
        # per attempt, gloo/NCCL would read the dead workers' addresses and fail to connect.
        store, rank, world = next(dist.rendezvous("env://"))
        dist.init_process_group("nccl" if cuda else "gloo", store=dist.PrefixStore(f"attempt{env.restart}/", store),
                                rank=rank, world_size=world)
    return env


def rank_device(device: str, env: DistEnv) -> str:
    """The device this rank trains on: ``cuda`` (any index) becomes ``cuda:LOCAL_RANK`` under torchrun."""
    if env.enabled and torch.device(device).type == "cuda":
        return f"cuda:{env.local_rank}"
    return device


def resuming(resume: bool, env: DistEnv, checkpoint: Path) -> bool:
    """``--resume``, or a worker group that torchrun restarted after a failure once ``checkpoint`` exists (it
    continues the run; restarted before the first checkpoint, it starts afresh)."""
    return resume or (env.restart > 0 and checkpoint.is_file())


def shard_slices(batch: int, env: DistEnv, grad_accum: int) -> list[slice]:
    """This rank's micro-batches of a global batch of ``batch`` items: piece ``rank · grad_accum + m`` of
    ``world · grad_accum`` equal pieces, for micro-batch ``m``."""
    parts = env.world * grad_accum
    if batch % parts:
        raise UserInputError(f"the global batch {batch} does not split into {env.world} ranks x {grad_accum} "
                             f"micro-batches; pick a batch that is a multiple of {parts}")
    size = batch // parts
    first = env.rank * grad_accum
    return [slice((first + m) * size, (first + m + 1) * size) for m in range(grad_accum)]


class GlobalBatches:
    """The global batch of each optimiser step, a deterministic function of the step: epoch ``e`` is a
    permutation of the ``n`` items drawn from ``seed + e``, cut into ``n // batch`` batches (the rest dropped,
    like ``DataLoader(shuffle=True, drop_last=True)``). Every rank computes the same batches, so resuming at
    step ``s`` under any world size draws what an uninterrupted run draws."""

    def __init__(self, n: int, batch: int, seed: int) -> None:
        if n < batch:
            raise UserInputError(f"the batch {batch} is larger than the {n} training windows")
        self.n, self.batch, self.seed = n, batch, seed
        self.per_epoch = n // batch
        self._epoch: tuple[int, torch.Tensor] | None = None

    def __call__(self, index: int) -> torch.Tensor:
        """Item indices of global batch ``index`` (0-based)."""
        epoch, k = divmod(index, self.per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch)))
        return self._epoch[1][k * self.batch:(k + 1) * self.batch]


# --- modules ------------------------------------------------------------------------------------------------
def _checkpointed_forward(forward, *args, **kwargs):
    return checkpoint(forward, *args, use_reentrant=False, **kwargs)


def apply_activation_checkpointing(module: nn.Module) -> int:
    """Recompute each block of ``module.blocks`` in the backward pass instead of keeping its activations
    (``torch.utils.checkpoint``, non-reentrant). State-dict keys are unchanged. Returns the blocks wrapped."""
    blocks = getattr(module, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        return 0
    for blk in blocks:
        if not getattr(blk, "_activation_checkpointed", False):
            blk.forward = functools.partial(_checkpointed_forward, blk.forward)
            blk._activation_checkpointed = True
    return len(blocks)


def fsdp_policy(device: torch.device, autocast: str):
    """bf16 parameters with fp32 gradient reduction on CUDA for bf16 runs; fp32 everywhere else (the CPU
    tests compare with a one-process fp32 run)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if device.type == "cuda" and autocast == "bf16":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


#: Block parts whose layers run outside the block's own forward: the DiT computes every block's text K/V
#: (``cross_attn.context_kv``) before the block loop, so each of those layers is an FSDP unit of its own.
CALLED_OUTSIDE_BLOCK = ("cross_attn",)


def shard_module(module: nn.Module, policy) -> None:
    """FSDP2: each block of ``module.blocks`` (if any) its own unit (its :data:`CALLED_OUTSIDE_BLOCK` layers
    units of their own inside it), then ``module`` as the root."""
    from torch.distributed.fsdp import fully_shard

    for blk in getattr(module, "blocks", []):
        for part in CALLED_OUTSIDE_BLOCK:
            for layer in getattr(blk, part).children() if hasattr(blk, part) else ():
                if any(True for _ in layer.parameters()):
                    fully_shard(layer, mp_policy=policy)
        fully_shard(blk, mp_policy=policy)
    fully_shard(module, mp_policy=policy)


def rebind_optimizer(opt: torch.optim.Optimizer, before: dict[int, str], after: dict[str, nn.Parameter]) -> None:
    """Point a fresh optimiser's parameter groups at the sharded parameters that replaced the originals
    (``before``: id of an original parameter → its name; ``after``: name → sharded parameter)."""
    if opt.state:
        raise RuntimeError("the optimiser already has state; shard the modules before the first step")
    for group in opt.param_groups:
        group["params"] = [after[before[id(p)]] for p in group["params"]]


def set_gradient_sync(modules: list[nn.Module], sync: bool) -> None:
    """Whether the next backward reduces gradients across ranks (off for all but the last micro-batch)."""
    for m in modules:
        m.set_requires_gradient_sync(sync)


def is_dtensor(x) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(x, DTensor)


def full_tensors(state: dict[str, torch.Tensor], main: bool) -> dict[str, torch.Tensor]:
    """Unsharded CPU copies of a dict of (possibly sharded) tensors — a collective: every rank calls it;
    only rank 0 (``main``) keeps the result, the others get ``{}``."""
    out = {}
    for k, v in state.items():
        full = v.full_tensor() if is_dtensor(v) else v
        if main:
            out[k] = full.detach().cpu().clone()
    return out


def shard_like(full: dict[str, torch.Tensor], like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``full`` tensors sharded the way the tensors of ``like`` (same keys) are; plain where ``like`` is."""
    from torch.distributed.tensor import distribute_tensor

    out = {}
    for k, v in full.items():
        ref = like[k]
        if is_dtensor(ref):
            out[k] = distribute_tensor(v.to(ref.device, ref.dtype), ref.device_mesh, ref.placements)
        else:
            out[k] = v.to(ref.device).clone()
    return out


STATE_OPTIONS_FULL = {"full_state_dict": True, "cpu_offload": True}


def full_model_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The full state dict of a sharded module on rank 0 (CPU), ``{}`` elsewhere — a collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(module, options=StateDictOptions(**STATE_OPTIONS_FULL))


def load_full_model_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a full state dict (every rank holds it) into a sharded module."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(module, state, options=StateDictOptions(full_state_dict=True))


def _param_names(opt: torch.optim.Optimizer, root: nn.Module) -> list[str]:
    names = {id(p): n for n, p in root.named_parameters()}
    return [names[id(p)] for g in opt.param_groups for p in g["params"]]


def full_optimizer_state(root: nn.Module, opt: torch.optim.Optimizer, main: bool) -> dict:
    """The optimiser's full state in the one-process layout (parameters numbered in group order, as
    ``Optimizer.state_dict`` does) on rank 0, ``{}`` elsewhere — a collective. ``root`` holds every module
    whose parameters ``opt`` steps."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    by_name = get_optimizer_state_dict(root, opt, options=StateDictOptions(**STATE_OPTIONS_FULL))
    if not main:
        return {}
    index = {n: i for i, n in enumerate(_param_names(opt, root))}
    groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[n] for n in g["params"]]}
              for g in by_name["param_groups"]]
    return {"state": {index[n]: s for n, s in by_name["state"].items()}, "param_groups": groups}


def load_full_optimizer_state(root: nn.Module, opt: torch.optim.Optimizer, state: dict) -> None:
    """Load an optimiser state in the one-process layout (every rank holds it) into an optimiser over
    sharded parameters."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _param_names(opt, root)
    by_name = {"state": {names[i]: s for i, s in state["state"].items()},
               "param_groups": [{**{k: v for k, v in g.items() if k != "params"},
                                 "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]}
    set_optimizer_state_dict(root, opt, by_name, options=StateDictOptions(full_state_dict=True))


def maybe_test_kill(step: int, env: DistEnv) -> None:
    """The test-only fault of :data:`TEST_KILL_AT_STEP_ENV` (a no-op unless that variable is set)."""
    at = os.environ.get(TEST_KILL_AT_STEP_ENV)
    if at is None or env.restart > 0 or step != int(at):
        return
    if env.rank == _env_int(TEST_KILL_RANK_ENV, 0):
        os.kill(os.getpid(), signal.SIGKILL)


class RankBatches:
    """A ``DataLoader`` batch sampler: this rank's micro-batches (index lists) of global batches ``start``,
    ``start + 1``, … of ``batches`` (a :class:`GlobalBatches`), cut by ``slices`` (:func:`shard_slices`)."""

    def __init__(self, batches: GlobalBatches, start: int, slices: list[slice]) -> None:
        self.batches, self.start, self.slices = batches, start, slices

    def __iter__(self):
        b = self.start
        while True:
            idx = self.batches(b)
            for s in self.slices:
                yield idx[s].tolist()
            b += 1


def shutdown() -> None:
    """Leave the process group (end of a torchrun command)."""
    if dist.is_initialized():
        dist.destroy_process_group()
