"""Compilation of the week loops (numba): one typed version of each loop, cached on disk by source.

- **One version per loop.** Every loop the engines call has one explicit signature
  with layout-agnostic arrays (``float64[:, :]`` accepts C-ordered, Fortran-ordered and
  strided arrays alike), so the Mesa agents' single rows and the vectorized engine's
  blocks run the same machine code, and an argument of the wrong dtype or a read-only
  array is refused (``TypeError``) instead of silently compiling another version.
  A loop is compiled for its signature (or loaded from the cache) when it is first
  called, not at import (:func:`typed_loop`): a program compiles only the loops it uses.
- **C order where the engine's hot loop can rely on it.** ``kernel._trade_rows`` (the
  vectorized engine's week pass) is compiled for C-ordered arrays only (:func:`c_ordered`):
  with the strides known, the compiler computes addresses without the runtime strides it
  otherwise keeps on the stack, and this loop ran about 20% faster with the same bits.
  The loops of the investigations and of the intelligence term are compiled the same
  way. Their callers pass the arguments through :func:`c_args`, which makes the arrays
  a loop only reads C-ordered (no copy when they are) and refuses arrays it updates in
  place that are not. The blocks of uniforms keep any strides (``strided``): a week's
  block is a view into a block of several weeks, read where it lies rather than copied.
- **A cache that follows the source.** numba checks a cached function only against
  its own file, not against the files of the functions it calls (the equations of
  ``mechanics.py`` are compiled into the loops of ``kernel.py``). The cache therefore
  lives in a directory named after a hash of every compiled module, so any edit to
  one of them compiles afresh. It is ``$NUMBA_CACHE_DIR/displacement-sim-<hash>``
  when that variable is set, else ``__pycache__/numba-<hash>`` beside this module
  when writable, else ``~/.cache/displacement-sim/numba-<hash>``; when none is
  writable the loops are compiled in memory on each start (``CACHE`` is False).
- **IEEE division in the hot loops.** The loops of ``kernel`` and ``mechanics`` are
  compiled with ``error_model="numpy"``: a float division is the machine's, without the
  zero test numba adds to raise ``ZeroDivisionError`` (about 2% of a week step). Every
  divisor there is positive by construction (``beta / lambda`` with ``lambda > 0`` by the
  schema, sums of exponentials whose largest term is 1, the shipping total where it is
  tested positive, the Poisson term's index, active networks of at least 1), so the
  numbers are the same; the tests' checks for NaN and infinity would catch a zero that
  slipped through. (The numba ufuncs of ``mechanics``, such as the perceived risk's
  ``(a0 + S) / (b0 + E)``, are compiled by ``vectorize``, which has no such option.)
- **glibc's current ``exp``.** numba's Linux wheels are built against an old glibc
  (manylinux2014), so the ``exp`` they hand to compiled code is glibc's compatibility
  version ``exp@GLIBC_2.2.5``: a wrapper that calls the same ``__exp``, then checks the
  result for System V error handling. On glibc 2.29 and later, :func:`bind_libm` binds
  the current version ``exp@@GLIBC_2.29`` instead: the same function without the
  wrapper, so the same bits for every argument (overflow, underflow and NaN included;
  tested), about 2.5% of ``trade``, which calls ``exp`` about 20 times per network-week.
  ``log`` keeps numba's binding (its wrapper returns a NaN of the other sign for a
  negative argument, and the loops call it only a few times per network), as does
  every other function.
  Elsewhere (not glibc, or older) numba's binding stays.
- **No stale caches beside the package.** When a new version is cached in
  ``__pycache__``, the caches of earlier sources there are removed (they can only be
  reused if an edit is reverted, which then compiles once more). Caches under
  ``$NUMBA_CACHE_DIR`` or ``~/.cache`` may be shared by several installs and are left alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import shutil
import sys
from pathlib import Path

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import boolean, float64, int64, uint64

__all__ = [
    "B1", "B2", "B3", "CACHE", "F1", "F2", "F3", "F4", "I1", "I2", "I3", "LIBM_BOUND", "U2", "TypedLoop",
    "bind_libm", "c_args", "c_ordered", "cache_dir", "remove_stale_caches", "restore_cache_setting", "typed_loop",
]  # fmt: skip

_HERE = Path(__file__).resolve().parent
_SOURCES = ("_jit.py", "mechanics.py", "kernel.py", "cooperation.py", "pcg64.py")


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        return False
    return True


def _source_digest() -> str | None:
    try:
        return hashlib.sha256(b"".join((_HERE / name).read_bytes() for name in _SOURCES)).hexdigest()[:16]
    except OSError:  # no source files beside the package (a frozen install): nothing to key a cache on
        return None


def cache_dir() -> Path | None:
    """Where the compiled loops are cached (None: nowhere writable, compile in memory)."""
    digest = _source_digest()
    if digest is None:
        return None
    candidates = []
    if os.environ.get("NUMBA_CACHE_DIR"):
        candidates.append(Path(os.environ["NUMBA_CACHE_DIR"]) / f"displacement-sim-{digest}")
    beside = _HERE / "__pycache__" / f"numba-{digest}"
    candidates.append(beside)
    with contextlib.suppress(RuntimeError):  # no home directory: no such candidate
        candidates.append(Path.home() / ".cache" / "displacement-sim" / f"numba-{digest}")
    for path in candidates:
        new = not path.exists()
        if _writable(path):
            if new and path == beside:
                remove_stale_caches(path)
            return path
    return None


def remove_stale_caches(current: Path) -> list[Path]:
    """Remove the other ``numba-*`` caches beside ``current`` (earlier sources); returns them."""
    stale = [p for p in current.parent.glob("numba-*") if p.is_dir() and p.name != current.name]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)  # another process may be removing it too
    return stale


_DIR = cache_dir()
CACHE = _DIR is not None
_PREVIOUS = numba.config.CACHE_DIR
if CACHE:  # read when each decorator runs (at import): the package's __init__ restores it afterwards
    numba.config.CACHE_DIR = str(_DIR)


def restore_cache_setting() -> None:
    """Give numba back the user's cache setting once the package's loops are decorated."""
    numba.config.CACHE_DIR = _PREVIOUS


LIBM_FUNCTIONS = ("exp",)  # the functions bind_libm binds (see the module docstring for log and pow)
_LIBM_VERSION = b"GLIBC_2.29"  # the version of glibc's exp without the System V wrapper


def libm_version(name: str, version: bytes) -> int | None:
    """Address of glibc's ``name@version`` in libm, or None (not Linux, not glibc, or no such version)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        dlvsym = ctypes.CDLL(None).dlvsym
        libm = ctypes.CDLL("libm.so.6")  # glibc's libm (the versions looked up exist only there)
    except (OSError, AttributeError):  # no glibc libm, or a C library without dlvsym (musl)
        return None
    dlvsym.restype, dlvsym.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    return dlvsym(libm._handle, name.encode(), version) or None


def bind_libm() -> dict[str, int]:
    """Bind compiled code's ``exp`` to glibc's current version; returns the functions bound and their addresses.

    numba installs its own binding when its CPU target starts, so the target is started
    first; code compiled or loaded from the cache afterwards links to these addresses.
    """
    from numba.core.registry import cpu_target

    cpu_target.target_context  # noqa: B018 (starting the target installs numba's math symbols)
    bound = {}
    for name in LIBM_FUNCTIONS:
        address = libm_version(name, _LIBM_VERSION)
        if address is not None:
            llvm.add_symbol(name, address)
            bound[name] = address
    return bound


LIBM_BOUND = bind_libm()  # the functions bound here and their addresses (empty: numba's bindings kept)

# array types of the loops' signatures (layout 'A': any strides)
F1, F2, F3, F4 = float64[:], float64[:, :], float64[:, :, :], float64[:, :, :, :]
I1, I2, I3 = int64[:], int64[:, :], int64[:, :, :]
U2 = uint64[:, :]
B1, B2, B3 = boolean[:], boolean[:, :], boolean[:, :, :]


class TypedLoop:
    """A compiled loop with one signature, compiled (or loaded from the cache) when first called.

    :func:`typed_loop` makes one. The first call compiles ``signature`` and then closes
    the loop to any other (an argument of another type is refused with numba's
    ``TypeError``), so every call runs the one machine code; a program compiles only
    the loops it uses (the vectorized engine never compiles the loops only the Mesa
    agents call, such as :func:`kernel._decide_rows`).
    """

    def __init__(self, py_func, signature, options: dict) -> None:
        self.dispatcher = numba.njit(**options)(py_func)
        self.signature = signature
        self._call = self._first_call
        functools.update_wrapper(self, py_func)

    def compile(self) -> numba.core.registry.CPUDispatcher:
        """Compile the signature now (or load it from the cache); returns the closed dispatcher."""
        if not self.dispatcher.signatures:
            self.dispatcher.compile(self.signature)
            self.dispatcher.disable_compile()
        return self.dispatcher

    def _first_call(self, *args):
        self._call = self.compile()
        return self._call(*args)

    @property
    def signatures(self) -> list:
        """The signatures compiled so far: none before the first call, then the one."""
        return self.dispatcher.signatures

    def __call__(self, *args):
        return self._call(*args)


def typed_loop(signature, **options):
    """Decorator: ``numba.njit(**options)`` for one ``signature``, compiled at the first call (:class:`TypedLoop`)."""
    return lambda py_func: TypedLoop(py_func, signature, options)


def c_ordered(signature: tuple, strided: tuple[int, ...] = ()) -> tuple:
    """``signature`` with its array types C-ordered (layout 'C': the strides are known to the compiler).

    The arguments at positions ``strided`` keep their layout: the blocks of uniforms,
    read where they lie (views into a week's block, any strides) rather than copied.
    """
    return tuple(
        t.copy(layout="C") if isinstance(t, numba.types.Array) and k not in strided else t
        for k, t in enumerate(signature)
    )


def c_args(args: tuple, written: tuple = (), strided: tuple[int, ...] = ()) -> tuple:
    """``args`` for a loop compiled with :func:`c_ordered`: the arrays made C-ordered (a copy only where one is not).

    The arrays in ``written``, which the loop updates in place, must be C-ordered and
    writable already: a copy would silently lose the update. Those at positions
    ``strided`` (the same as :func:`c_ordered`'s) are passed as they are.
    """
    if not all(x.flags.c_contiguous and x.flags.writeable for x in written):
        raise ValueError("a compiled loop updates its arrays in place: they must be writable and C-ordered")
    return tuple(
        np.ascontiguousarray(x) if isinstance(x, np.ndarray) and k not in strided else x for k, x in enumerate(args)
    )
