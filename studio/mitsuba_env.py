"""Loading Mitsuba 3 and Open Image Denoise for the path tracer, with the LLVM Mitsuba's CPU needs.

Mitsuba's CPU variant (``llvm_ad_rgb``) compiles its kernels with the system's libLLVM, found by
Dr.Jit at import time. Debian's LLVM 15 aborts the process in that compiler ("Cannot select
fminimum"), so before the first import this module points ``DRJIT_LIBLLVM_PATH`` at an LLVM 19 it
finds in the usual places (unless the variable is already set), and refuses to go on without one:
an abort cannot be caught. A CUDA GPU, where there is one, is used instead (``cuda_ad_rgb``).
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import logging
import os
import sys
from typing import Any, Literal

from edge.errors import MissingDependencyError

log = logging.getLogger(__name__)

LLVM_ENV = "DRJIT_LIBLLVM_PATH"
_LLVM_GLOBS = (
    "/usr/lib/*-linux-gnu/libLLVM-19.so*",
    "/usr/lib/*-linux-gnu/libLLVM.so.19*",
    "/usr/lib/llvm-19/lib/libLLVM*.so*",
    "/usr/lib64/libLLVM-19.so*",
    "/usr/lib64/libLLVM.so.19*",
    "/usr/local/lib/libLLVM-19.so*",
)
Variant = Literal["auto", "cuda", "llvm"]


class PathTracerUnavailable(MissingDependencyError):
    """Mitsuba, the denoiser or the LLVM that Mitsuba's CPU variant needs is missing."""

    def __init__(self, message: str, package: str = "mitsuba") -> None:
        ImportError.__init__(self, message)
        self.package = package
        self.extra = "studio"


def find_llvm() -> str | None:
    """Path of an LLVM 19 shared library in the usual Debian/Ubuntu/Fedora places, or None."""
    for pattern in _LLVM_GLOBS:
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


def _point_drjit_at_llvm() -> None:
    """Set ``DRJIT_LIBLLVM_PATH`` before Dr.Jit loads (it reads the variable once, at import)."""
    if os.environ.get(LLVM_ENV):
        return
    path = find_llvm()
    if path is None:
        raise PathTracerUnavailable(
            "the path tracer's CPU variant needs LLVM 19 (the LLVM 15 Debian ships aborts in Mitsuba): "
            f"apt-get install libllvm19, or set {LLVM_ENV} to a libLLVM-19 .so",
            package="libllvm19",
        )
    if "drjit" in sys.modules:
        raise PathTracerUnavailable(
            f"drjit was imported before {LLVM_ENV} was set, so it may have loaded an LLVM that aborts; "
            f"import studio.pathtrace first, or set {LLVM_ENV}={path}"
        )
    os.environ[LLVM_ENV] = path


@functools.cache
def load_mitsuba(variant: Variant = "auto") -> tuple[Any, Any]:
    """``(mitsuba, drjit)`` with a variant set: CUDA where ``variant`` allows it and a GPU works,
    else the LLVM CPU variant. Raises :class:`PathTracerUnavailable` with the fix."""
    if variant not in ("auto", "cuda", "llvm"):
        raise ValueError(f"variant={variant!r} must be 'auto', 'cuda' or 'llvm'")
    if variant != "cuda":
        _point_drjit_at_llvm()
    try:
        import drjit as dr
        import mitsuba as mi
    except ImportError as exc:
        raise PathTracerUnavailable(
            f"the path tracer needs Mitsuba 3 ({exc}): pip install 'lego-edge[studio]'"
        ) from None
    if variant in ("auto", "cuda") and dr.has_backend(dr.JitBackend.CUDA):
        try:
            mi.set_variant("cuda_ad_rgb")
            dr.eval(mi.Float(1.0) + 1.0)  # a GPU that is listed but unusable fails here
            return mi, dr
        except Exception as exc:
            if variant == "cuda":
                raise PathTracerUnavailable(f"Mitsuba's CUDA variant failed: {exc}") from None
            log.warning("Mitsuba's CUDA variant failed (%s); falling back to the CPU (LLVM)", exc)
    elif variant == "cuda":
        raise PathTracerUnavailable("variant 'cuda' was asked for but Dr.Jit finds no CUDA GPU")
    if not dr.has_backend(dr.JitBackend.LLVM):
        raise PathTracerUnavailable(
            f"Dr.Jit could not load LLVM from {os.environ.get(LLVM_ENV)!r}: apt-get install libllvm19"
        )
    mi.set_variant("llvm_ad_rgb")
    return mi, dr


@functools.cache
def load_denoiser() -> Any:
    """The ``pyoidn`` module (Intel Open Image Denoise). Raises :class:`PathTracerUnavailable`."""
    try:
        import pyoidn
    except ImportError as exc:
        raise PathTracerUnavailable(
            f"denoising needs pyoidn ({exc}): pip install 'lego-edge[studio]'", package="pyoidn"
        ) from None
    return pyoidn


def unavailable_reason(variant: Variant = "auto", denoise: bool = True, *, load: bool = True) -> str | None:
    """Why the path tracer cannot run here (a message with the fix), or None when it can.

    With ``load=False`` only looks for the packages and LLVM without importing them: Dr.Jit starts
    threads when it loads, so a process that will fork workers should not load it first.
    """
    if not load:
        for module, package in (("mitsuba", "mitsuba"), ("drjit", "mitsuba"), ("pyoidn", "pyoidn")):
            if (module != "pyoidn" or denoise) and importlib.util.find_spec(module) is None:
                return f"{package} is not installed: pip install 'lego-edge[studio]'"
        if variant != "cuda" and not os.environ.get(LLVM_ENV) and find_llvm() is None:
            return "LLVM 19 is missing (Mitsuba's CPU variant aborts with LLVM 15): apt-get install libllvm19"
        return None
    try:
        load_mitsuba(variant)
        if denoise:
            load_denoiser()
    except PathTracerUnavailable as exc:
        return str(exc)
    return None
