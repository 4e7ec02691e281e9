"""Training in several processes (``accelerate launch`` / ``torchrun``): who writes, which
device each rank trains on, and what is refused.

Under a multi-process launch every rank runs ``selfguide train``. The launcher says so in
the environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``; accelerate
adds ``ACCELERATE_USE_FSDP`` / ``ACCELERATE_USE_DEEPSPEED``), which is all this module reads
before ``transformers.TrainingArguments`` starts the process group. Rank 0 is the one
writer of the run: the job status and heartbeat, events, checkpoints' trainer state, the
adapter, ``train/metrics.json`` and the manifest; the other ranks compute and write nothing
of the run (transformers' Trainer writes their own ``rng_state_N.pth`` into checkpoints).

What is supported: DDP (``--multi_gpu``; each GPU holds a whole replica, LoRA or 4-bit
QLoRA, the 4-bit base loaded on the rank's own GPU) and FSDP for ``method=lora``/``full``.
Refused with a clear error: QLoRA under FSDP (it needs the 4-bit weights stored as bf16,
``bnb_4bit_quant_storage``, which selfguide's loader does not set), DeepSpeed, FSDP on the
CPU, several processes on Apple MPS, and more CUDA ranks on a node than visible GPUs.

What it does not do: launch processes, or decide what a rank computes. Heavy libraries
are imported inside functions.
"""

from __future__ import annotations

import os
from typing import Any

from selfguide.errors import ConfigError
from selfguide.settings.training import TrainConfig


def _env_int(*names: str, default: int) -> int:
    for name in names:
        raw = os.environ.get(name, "").strip()
        if raw:
            try:
                return int(raw)
            except ValueError as exc:
                raise ConfigError(f"${name}={raw!r} is not an integer.",
                                  hint="Launch with 'accelerate launch' or 'torchrun'.") from exc
    return default


def world_size() -> int:
    """How many processes train together (1 without a multi-process launcher)."""
    return max(1, _env_int("WORLD_SIZE", default=1))


def rank() -> int:
    """This process's global rank (0 without a launcher)."""
    return _env_int("RANK", default=0)


def local_rank() -> int:
    """This process's rank on its node: the index of the GPU it trains on."""
    return _env_int("LOCAL_RANK", default=0)


def local_world_size() -> int:
    """Processes on this node (they share its RAM)."""
    return max(1, _env_int("LOCAL_WORLD_SIZE", "WORLD_SIZE", default=1))


def is_distributed() -> bool:
    return world_size() > 1


def is_main() -> bool:
    """True in the one process that writes the run (rank 0, or a plain single process)."""
    return rank() == 0


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def strategy() -> str:
    """``single``, ``ddp``, ``fsdp`` or ``deepspeed`` (from the launcher's environment)."""
    if _flag("ACCELERATE_USE_DEEPSPEED"):
        return "deepspeed"
    if _flag("ACCELERATE_USE_FSDP"):
        return "fsdp"
    return "ddp" if is_distributed() else "single"


def check_supported(cfg: TrainConfig, device: str) -> None:
    """Refuse, before any model is loaded, a launch this trainer cannot run (``cfg``
    resolved for ``device``)."""
    kind = strategy()
    if kind == "single":
        return
    if kind == "deepspeed":
        raise ConfigError("DeepSpeed launches are not supported by 'selfguide train'.",
                          hint="Use DDP ('accelerate launch --multi_gpu --num_processes N') "
                               "or FSDP ('--use_fsdp') instead.")
    if device == "mps":
        raise ConfigError("Training in several processes is not available on Apple MPS.",
                          hint="Run 'selfguide train' as one process.")
    if kind == "fsdp" and device != "cuda":
        raise ConfigError("FSDP training needs CUDA GPUs.",
                          hint="Use DDP ('accelerate launch --multi_gpu') on the CPU.")
    if kind == "fsdp" and cfg.method == "qlora":
        raise ConfigError(
            "4-bit QLoRA under FSDP is not supported: FSDP can only shard 4-bit weights "
            "stored as bf16 (bitsandbytes' bnb_4bit_quant_storage), which selfguide's "
            "loader does not set.",
            hint="Use DDP ('accelerate launch --multi_gpu'; every GPU holds the whole 4-bit "
                 "model), or --method lora under FSDP.")
    if device == "cuda":
        import torch

        n = torch.cuda.device_count()
        if local_rank() >= n:
            raise ConfigError(f"This process has LOCAL_RANK {local_rank()} but only {n} CUDA "
                              "GPU(s) are visible.",
                              hint="Launch at most one process per GPU (--num_processes), or "
                                   "check CUDA_VISIBLE_DEVICES.")


def bind_device(device: str) -> None:
    """Make ``cuda`` mean this rank's GPU (``LOCAL_RANK``): loading, quantization, the
    memory check and NCCL then use it instead of every rank piling onto GPU 0."""
    if device == "cuda" and is_distributed():
        import torch

        torch.cuda.set_device(local_rank())


def _group_ready() -> bool:
    if not is_distributed():
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` itself without a process group)."""
    if not _group_ready():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait for every rank (nothing without a process group)."""
    if _group_ready():
        import torch.distributed as dist

        dist.barrier()


def finish() -> None:
    """Every rank waits for the others, then leaves the process group, before its process
    exits: a rank that exits holding the group can abort in the communication library's
    teardown ("terminate called without an active exception") while another still works."""
    if _group_ready():
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def final_weights(trainer: Any) -> tuple[Any, Any]:
    """The trained model to save and its state dict (None: the model's own).

    Under FSDP the parameters are sharded: the full state dict is gathered, which every
    rank must call together; only rank 0 then saves it.
    """
    if strategy() == "fsdp" and getattr(trainer, "is_fsdp_enabled", False):
        acc = trainer.accelerator
        state = acc.get_state_dict(trainer.model)
        return acc.unwrap_model(trainer.model), state
    return trainer.model, None


def wrap_policy_for_peft(trainer: Any) -> None:
    """Under FSDP, wrap trainable (LoRA) and frozen parameters separately, as peft needs
    with ``fsdp_use_orig_params=false``."""
    plugin = getattr(getattr(trainer, "accelerator", None), "state", None)
    plugin = getattr(plugin, "fsdp_plugin", None)
    if plugin is None or not hasattr(trainer.model, "peft_config"):
        return
    from peft.utils.other import fsdp_auto_wrap_policy

    plugin.auto_wrap_policy = fsdp_auto_wrap_policy(trainer.model)
