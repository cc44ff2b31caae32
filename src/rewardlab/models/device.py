"""Device and dtype choice shared by every command: ``--device auto`` and ``--dtype auto`` do what a GPU user expects.

- device ``auto``: ``cuda`` when a CUDA device is present, else ``mps`` when present, else ``cpu``.
- dtype ``auto``: bf16 on a CUDA device that supports it, fp16 on other CUDA devices, fp32 elsewhere (CPU fp16 is
  slow and bf16 matmuls on most CPUs are emulated). ``bf16``/``fp16``/``fp32`` force a dtype.

torch is imported only inside the functions, so CLI modules can import the help texts at module level and
``rewardlab --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rewardlab.errors import UserError

if TYPE_CHECKING:
    import torch

DTYPE_NAMES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
               "fp16": "float16", "float16": "float16"}
DEVICE_HELP = "auto (CUDA when present, else MPS, else CPU), cpu, cuda, cuda:N or mps."
DTYPE_HELP = "auto (bf16 on a CUDA GPU that supports it, fp16 on an older one, else fp32), bf16, fp16 or fp32."


def device_option(note: str = "") -> Any:
    """The ``--device`` option of every command that runs a model: one name, one default, one help (``note``
    adds what the command does with it). typer is imported here, not at module level: the library never needs it."""
    import typer

    return typer.Option("auto", "--device", help=DEVICE_HELP + (" " + note if note else ""))


def dtype_option(note: str = "") -> Any:
    """The ``--dtype`` option of every command that runs a model (see :func:`device_option`)."""
    import typer

    return typer.Option("auto", "--dtype", help=DTYPE_HELP + (" " + note if note else ""))


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The torch device named by ``spec`` (``None`` and ``"auto"`` pick the best available)."""
    import torch

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
    import torch

    if isinstance(spec, torch.dtype):
        return spec
    if spec in (None, "", "auto"):
        device = resolve_device(device)
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if spec not in DTYPE_NAMES:
        raise UserError(f"--dtype {spec!r}: choose from {DTYPE_HELP}")
    return getattr(torch, DTYPE_NAMES[spec])

CHAT_TEMPLATE_HELP = "Jinja chat template file used instead of the model's (recorded in rewardlab.json by train)."
ATTN_HELP = "transformers attention implementation: eager, sdpa, flash_attention_2, ... (default: transformers')."


def read_chat_template(path) -> str | None:
    """The text of a ``--chat-template`` file (None passes through); UserError when it cannot be read."""
    if path is None:
        return None
    try:
        text = open(path, encoding="utf-8").read()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--chat-template {path}: cannot read it ({e})") from None
    if not text.strip():
        raise UserError(f"--chat-template {path}:1: the template is empty")
    return text
