"""The tree walks of leadml.ml.compiled and leadml.ml.treeshap in C, where a compiler is.

Scoring one record against 200 trees, or walking the paths of its exact Shapley values,
is a loop over a few thousand nodes: a fraction of a millisecond in C, one to two in
numpy, whose level-by-level walk pays a dozen array operations per tree level. The C
source (`treewalk.c`, beside this module) is built once with the system compiler into a
shared library named by the source's hash and loaded through ctypes, so it needs no
Python headers and no build step at install: `scripts/run`, CI and the Dockerfile build
it ahead (`python -m leadml.ml.native`), and the first process to need it builds it
otherwise (into a temporary name, then renamed, so concurrent processes do not clash).

Where there is no compiler, the folder is read-only or `LEADML_NATIVE_TREES=0`, the numpy
walks serve (the same results; tests/ml/test_native.py holds both to that). `available()`
says which one a process uses. The leaves are the same node ids either way, so scores are
identical to the last bit; Shapley values are summed in another order, so they agree to
rounding (about 1e-15 relative).
"""
from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from leadml.ml.compiled import TreeEnsemble

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("treewalk.c")
ENV_SWITCH = "LEADML_NATIVE_TREES"
# -ffp-contract=off: no fused multiply-adds, so the arithmetic is numpy's, operation by operation.
CFLAGS = ("-O2", "-std=c99", "-fPIC", "-shared", "-ffp-contract=off")
_BUILD_LOCK = threading.Lock()

_pointer = ctypes.c_void_p
_int64 = ctypes.c_int64


def library_path() -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(CFLAGS).encode()).hexdigest()[:16]
    return SOURCE.with_name(f"_treewalk_{digest}.so")


def build() -> Path:
    """Compile the library if it is not there yet; return its path. Raises OSError on failure."""
    target = library_path()
    if target.exists():
        return target
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise OSError("no C compiler (cc or gcc) on PATH")
    with _BUILD_LOCK:
        if target.exists():  # another thread built it meanwhile
            return target
        descriptor, temporary = tempfile.mkstemp(prefix=".treewalk-", suffix=".so", dir=target.parent)
        os.close(descriptor)
        try:
            try:
                completed = subprocess.run(
                    [compiler, *CFLAGS, "-o", temporary, str(SOURCE), "-lm"], capture_output=True, text=True,
                    timeout=120,
                )
            except subprocess.SubprocessError as error:  # e.g. the timeout
                raise OSError(f"{compiler}: {error}") from error
            if completed.returncode != 0:
                raise OSError(f"{compiler} failed: {completed.stderr.strip()[:500]}")
            # mkstemp's file is private (0600) and the linker keeps its mode: readable by
            # every user, since the image builds as root and serves as another user.
            os.chmod(temporary, 0o755)
            os.replace(temporary, target)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    return target


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        library = ctypes.CDLL(str(build()))
    except OSError as error:
        logger.warning("native_trees_unavailable reason=%s (the numpy tree walks serve)", error)
        return None
    library.tw_leaves.restype = None
    library.tw_leaves.argtypes = [_pointer, _int64, _int64, *[_pointer] * 5, _pointer, _int64, _pointer]
    library.tw_shapley.restype = ctypes.c_int
    library.tw_shapley.argtypes = [
        _pointer, _int64, _int64,  # values, rows, width
        *[_pointer] * 6,  # feature, threshold, missing_left, children, is_leaf, leaf_value
        _pointer, _int64,  # roots, n_trees
        _pointer, _pointer, _int64,  # reference_right, node_bits, n_players
        _pointer, _pointer,  # weights_a, weights_b
        ctypes.c_int, ctypes.c_double, _int64,  # averaged, offset, stack_size
        _pointer, _pointer, _pointer,  # shapley, record_margins, reference_margins
    ]
    return library


def available() -> bool:
    """Whether this process walks trees in C."""
    return _library() is not None


class _Arrays:
    """An ensemble's node arrays as C reads them, and their addresses (kept alive here)."""

    def __init__(self, ensemble: TreeEnsemble) -> None:
        self.feature = np.ascontiguousarray(ensemble.feature, dtype=np.int64)
        self.threshold = np.ascontiguousarray(ensemble.threshold, dtype=np.float64)
        self.missing_left = np.ascontiguousarray(ensemble.missing_left, dtype=np.uint8)
        self.children = np.ascontiguousarray(ensemble.children, dtype=np.int64)
        self.is_leaf = np.ascontiguousarray(ensemble.is_leaf, dtype=np.uint8)
        self.value = np.ascontiguousarray(ensemble.value, dtype=np.float64)
        self.roots = np.ascontiguousarray(ensemble.roots, dtype=np.int64)
        self.nodes = (
            self.feature.ctypes.data, self.threshold.ctypes.data, self.missing_left.ctypes.data,
            self.children.ctypes.data, self.is_leaf.ctypes.data,
        )
        self.value_address = self.value.ctypes.data
        self.roots_address = self.roots.ctypes.data
        self.n_trees = len(self.roots)
        self.stack_size = ensemble.depth + 2  # a depth-first walk holds at most depth + 1 entries


# Per ensemble (compiled at load, never pickled): weak keys, so unloading a model frees them.
_ARRAYS: weakref.WeakKeyDictionary[Any, _Arrays] = weakref.WeakKeyDictionary()
_ARRAYS_LOCK = threading.Lock()


def _arrays(ensemble: TreeEnsemble) -> _Arrays:
    arrays = _ARRAYS.get(ensemble)
    if arrays is None:
        with _ARRAYS_LOCK:
            arrays = _ARRAYS.get(ensemble)
            if arrays is None:
                arrays = _ARRAYS[ensemble] = _Arrays(ensemble)
    return arrays


def leaves(ensemble: TreeEnsemble, values: np.ndarray) -> np.ndarray | None:
    """(records × trees) leaf ids, as `TreeEnsemble.leaves` returns them; None without the library."""
    library = _library()
    if library is None:
        return None
    arrays = _arrays(ensemble)
    values = np.ascontiguousarray(values, dtype=np.float64)
    rows = len(values)
    reached = np.empty((rows, arrays.n_trees), dtype=np.int64)
    library.tw_leaves(
        values.ctypes.data, rows, ensemble.n_features, *arrays.nodes, arrays.roots_address, arrays.n_trees,
        reached.ctypes.data,
    )
    return reached


def shapley(
    ensemble: TreeEnsemble,
    values: np.ndarray,
    *,
    reference_right: np.ndarray,
    node_bits: np.ndarray,
    n_players: int,
    weights_a: np.ndarray,
    weights_b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(Shapley values, record margins, reference margins) as `TreeGame` defines them; None without the library.

    `values` as the trees compare them (TreeEnsemble.comparable); the per-node arrays are the game's.
    """
    library = _library()
    if library is None:
        return None
    arrays = _arrays(ensemble)
    values = np.ascontiguousarray(values, dtype=np.float64)
    reference_right = np.ascontiguousarray(reference_right, dtype=np.uint8)
    node_bits = np.ascontiguousarray(node_bits, dtype=np.int64)
    weights_a = np.ascontiguousarray(weights_a, dtype=np.float64)
    weights_b = np.ascontiguousarray(weights_b, dtype=np.float64)
    rows = len(values)
    out = np.empty((rows, n_players))
    record_margins = np.empty(rows)
    reference_margins = np.empty(rows)
    status = library.tw_shapley(
        values.ctypes.data, rows, ensemble.n_features, *arrays.nodes, arrays.value_address,
        arrays.roots_address, arrays.n_trees, reference_right.ctypes.data, node_bits.ctypes.data, n_players,
        weights_a.ctypes.data, weights_b.ctypes.data, int(ensemble.averaged),
        0.0 if ensemble.averaged else float(ensemble.offset), arrays.stack_size,
        out.ctypes.data, record_margins.ctypes.data, reference_margins.ctypes.data,
    )
    if status == -1:
        raise MemoryError("tree walk: stack allocation failed")
    if status != 0:  # deeper than the ensemble's recorded depth: the numpy walk answers
        logger.warning("native_trees_stack_exceeded depth=%s", ensemble.depth)
        return None
    return out, record_margins, reference_margins


def main(argv: list[str]) -> int:
    """`python -m leadml.ml.native`: build the library (CI, scripts/run, the Dockerfile)."""
    try:
        path = build()
        ctypes.CDLL(str(path))  # loads: what a serving process will do
    except OSError as error:
        print(f"leadml.ml.native: not built ({error}); the numpy tree walks will serve", file=sys.stderr)
        return 0 if "--optional" in argv else 1
    print(f"leadml.ml.native: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
