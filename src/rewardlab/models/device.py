"""Device and dtype choice shared by every command: ``--device auto`` and ``--dtype auto`` do what a GPU user expects.

- device ``auto``: ``cuda`` when a CUDA device is present, else ``mps`` when present, else ``cpu``.
- dtype ``auto``: bf16 on a CUDA device that supports it, fp16 on other CUDA devices, fp32 elsewhere (CPU fp16 is
  slow and bf16 matmuls on most CPUs are emulated). ``bf16``/``fp16``/``fp32`` force a dtype.

Only torch is imported here, so the CLI modules can use these names cheaply inside their commands.
"""

from __future__ import annotations

import torch

from rewardlab.errors import UserError

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}
DEVICE_HELP = "auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps."
DTYPE_HELP = "auto (bf16 on GPUs that support it, else fp32), bf16, fp16 or fp32."


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The torch device named by ``spec`` (``None`` and ``"auto"`` pick the best available)."""
    if isinstance(spec, torch.device):
        return spec
    if spec in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {spec!r}: not a device ({DEVICE_HELP})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {spec}: no CUDA device is available on this machine (use --device cpu)")
    return device


def resolve_dtype(spec: str | torch.dtype | None, device: torch.device | str | None = None) -> torch.dtype:
    """The torch dtype named by ``spec`` for ``device`` (``None``/``"auto"``: see the module docstring)."""
    if isinstance(spec, torch.dtype):
        return spec
    if spec in (None, "", "auto"):
        device = resolve_device(device)
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if spec not in DTYPES:
        raise UserError(f"--dtype {spec!r}: choose from {DTYPE_HELP}")
    return DTYPES[spec]
