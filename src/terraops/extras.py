"""Optional parts of terraops (pip extras) and the one clear error when one is missing.

Why this exists: the U-Net stack (PyTorch, ONNX, ONNX Runtime) is about a
gigabyte and only segmentation needs it, so it is the ``segment`` extra, not a
core dependency. The core install trains and serves the tabular services; a
segmentation command or ``POST /v1/segment`` on it must say which extra to
install (an :class:`~terraops.errors.ExtraNotInstalledError`: 503 in the API,
a one-line error in the CLI) instead of dying on an ``ImportError`` deep
inside a pipeline. Only ``importlib.util.find_spec`` is used: checking costs
no import of torch.
"""

from __future__ import annotations

import importlib.util

from terraops.errors import ExtraNotInstalledError

SEGMENT = "segment"
"""The extra of U-Net segmentation (training, inference, ONNX export, INT8)."""

#: extra -> the top-level modules it provides (what the code imports).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    SEGMENT: ("torch", "onnx", "onnxruntime", "onnxscript"),
}

#: extra -> what it is for, in the words of the error message.
EXTRA_PURPOSE: dict[str, str] = {
    SEGMENT: "U-Net segmentation",
}


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here (empty when it is installed)."""
    return [name for name in EXTRA_MODULES[extra] if importlib.util.find_spec(name) is None]


def install_hint(extra: str) -> str:
    """The command that installs ``extra``, for a wheel install and for a checkout."""
    return (
        f"install the {extra} extra: pip install 'terraops[{extra}]' "
        f"(in a checkout: pip install -c constraints.txt -e '.[{extra}]', or make install)"
    )


def require_extra(extra: str) -> None:
    """Raise :class:`ExtraNotInstalledError` unless every module of ``extra`` imports."""
    missing = missing_modules(extra)
    if missing:
        raise ExtraNotInstalledError(
            f"{EXTRA_PURPOSE[extra]} is not installed here (missing: {', '.join(missing)})",
            hint=install_hint(extra),
        )


__all__ = [
    "EXTRA_MODULES",
    "SEGMENT",
    "install_hint",
    "missing_modules",
    "require_extra",
]
