"""Bit-packed GF(2)[t] polynomial multiplication: Karatsuba over 64-bit words, carry-less base.

A polynomial is a ``uint64`` array, coefficient ``i`` at bit ``i % 64`` of word ``i // 64``.
The base case multiplies words with the x86 ``PCLMULQDQ`` instruction, reached from numba
through an LLVM intrinsic; on CPUs without it (e.g. the ARM PYNQ board) a portable shift-and-add
carry-less multiply takes its place, with the same results, much slower.

Karatsuba over GF(2) needs no subtraction: with ``a = a0 + a1 t^h`` and ``b = b0 + b1 t^h``,
``ab = p0 + (p0 + p1 + p2) t^h + p2 t^(2h)`` where ``p0 = a0 b0``, ``p2 = a1 b1``,
``p1 = (a0 + a1)(b0 + b1)``, all sums being XOR.
"""

from __future__ import annotations

import platform

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["HAVE_PCLMUL", "pack", "unpack", "multiply", "multiply_bits", "extract_bits"]


def _host_has_pclmul() -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        return "+pclmul" in llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # pragma: no cover - features unknown
        return False


HAVE_PCLMUL = _host_has_pclmul()


@intrinsic
def _clmul_hw(typingctx, a, b):  # pragma: no cover - compiled
    signature = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64)

    def codegen(context, builder, sig, args):
        word = ir.IntType(64)
        vector = ir.VectorType(word, 2)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector, [vector, vector, ir.IntType(8)]),
            "llvm.x86.pclmulqdq")
        zero = ir.Constant(ir.IntType(32), 0)
        one = ir.Constant(ir.IntType(32), 1)
        va = builder.insert_element(ir.Constant(vector, None), args[0], zero)
        vb = builder.insert_element(ir.Constant(vector, None), args[1], zero)
        product = builder.call(function, [va, vb, ir.Constant(ir.IntType(8), 0)])
        low = builder.extract_element(product, zero)
        high = builder.extract_element(product, one)
        return context.make_tuple(builder, sig.return_type, [low, high])

    return signature, codegen


@numba.njit(cache=True, nogil=True)
def _clmul_sw(a: np.uint64, b: np.uint64) -> tuple[np.uint64, np.uint64]:  # pragma: no cover
    low = np.uint64(0)
    high = np.uint64(0)
    for i in range(64):
        if (b >> np.uint64(i)) & np.uint64(1):
            low ^= a << np.uint64(i)
            if i:
                high ^= a >> np.uint64(64 - i)
    return low, high


_clmul = _clmul_hw if HAVE_PCLMUL else _clmul_sw
_BASE_WORDS = 32


@numba.njit(cache=True, nogil=True)
def _schoolbook(a, ao, b, bo, n, out, oo):  # pragma: no cover - compiled
    # Product scanning: output word k collects the low halves of a_i b_(k-i) and the high
    # halves of a_i b_(k-1-i) in registers, so the inner loop stores nothing.
    carry = np.uint64(0)
    for k in range(2 * n - 1):
        low_sum = carry
        high_sum = np.uint64(0)
        for i in range(max(0, k - n + 1), min(k, n - 1) + 1):
            low, high = _clmul(a[ao + i], b[bo + k - i])
            low_sum ^= low
            high_sum ^= high
        out[oo + k] = low_sum
        carry = high_sum
    out[oo + 2 * n - 1] = carry


@numba.njit(cache=True, nogil=True)
def _karatsuba(w, ao, bo, n, oo, to):  # pragma: no cover - compiled
    """w[oo:oo+2n] = w[ao:ao+n] * w[bo:bo+n], scratch w[to:to+4n+128]; iterative (cacheable)."""
    stack = np.empty((128, 6), dtype=np.int64)
    stack[0, 0] = ao
    stack[0, 1] = bo
    stack[0, 2] = n
    stack[0, 3] = oo
    stack[0, 4] = to
    stack[0, 5] = 0
    top = 1
    while top:
        frame = stack[top - 1]
        ao, bo, n, oo, to, stage = frame[0], frame[1], frame[2], frame[3], frame[4], frame[5]
        h = n // 2
        r = n - h
        if n <= _BASE_WORDS:
            _schoolbook(w, ao, w, bo, n, w, oo)
            top -= 1
            continue
        frame[5] = stage + 1
        child = stack[top]
        if stage == 0:    # p0 = a0 b0 into out[0:2h]
            child[0], child[1], child[2], child[3], child[4] = ao, bo, h, oo, to
        elif stage == 1:  # p2 = a1 b1 into out[2h:2n]
            child[0], child[1], child[2], child[3], child[4] = ao + h, bo + h, r, oo + 2 * h, to
        elif stage == 2:  # p1 = (a0 + a1)(b0 + b1) into tmp[2r:4r]
            for k in range(r):
                w[to + k] = w[ao + h + k]
                w[to + r + k] = w[bo + h + k]
            for k in range(h):
                w[to + k] ^= w[ao + k]
                w[to + r + k] ^= w[bo + k]
            child[0], child[1], child[2], child[3], child[4] = to, to + r, r, to + 2 * r, to + 4 * r
        else:             # combine: out[h:h+2r] ^= p0 + p1 + p2
            p1 = to + 2 * r
            if h == r:
                for k in range(h):
                    shared = w[oo + h + k] ^ w[oo + 2 * h + k]
                    w[oo + h + k] = shared ^ w[oo + k] ^ w[p1 + k]
                    w[oo + 2 * h + k] = shared ^ w[oo + 3 * h + k] ^ w[p1 + h + k]
            else:
                for k in range(2 * h):
                    w[p1 + k] ^= w[oo + k]
                for k in range(2 * r):
                    w[p1 + k] ^= w[oo + 2 * h + k]
                for k in range(2 * r):
                    w[oo + h + k] ^= w[p1 + k]
            top -= 1
            continue
        child[5] = 0
        top += 1


def _multiply_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out ^= a * b for any lengths (len(out) >= len(a) + len(b)), by balanced chunks."""
    na = a.shape[0]
    nb = b.shape[0]
    if na < nb:
        a, b = b, a
        na, nb = nb, na
    while nb > 0:
        # One workspace: chunk of a, b, the 2nb-word product, then scratch.
        w = np.zeros(8 * nb + 256, dtype=np.uint64)
        w[nb:2 * nb] = b
        start = 0
        while start + nb <= na:
            w[0:nb] = a[start:start + nb]
            _karatsuba(w, 0, nb, nb, 2 * nb, 4 * nb)
            out[start:start + 2 * nb] ^= w[2 * nb:4 * nb]
            start += nb
        # The remainder of a (shorter than b) times b: swap roles and go on.
        rest = na - start
        a, b, out = b, a[start:], out[start:]
        na, nb = nb, rest


def pack(bits: np.ndarray) -> np.ndarray:
    """0/1 array -> little-endian bit-packed ``uint64`` words (coefficient i at bit i)."""
    packed = np.packbits(np.asarray(bits, dtype=np.uint8), bitorder="little")
    words = np.zeros(-(-packed.size // 8) * 8, dtype=np.uint8)
    words[:packed.size] = packed
    return words.view("<u8").astype(np.uint64, copy=False)


def unpack(words: np.ndarray, count: int) -> np.ndarray:
    """Inverse of :func:`pack`: the first ``count`` coefficients as a ``uint8`` 0/1 array."""
    raw = np.ascontiguousarray(words, dtype="<u8").view(np.uint8)
    return np.unpackbits(raw, count=count, bitorder="little")


def multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Product of two packed polynomials (``len(a) + len(b)`` words)."""
    a = np.ascontiguousarray(a, dtype=np.uint64)
    b = np.ascontiguousarray(b, dtype=np.uint64)
    out = np.zeros(a.size + b.size, dtype=np.uint64)
    _multiply_into(a, b, out)
    return out


def multiply_bits(a_bits: np.ndarray, b_bits: np.ndarray) -> np.ndarray:
    """Packed product of two polynomials given as 0/1 coefficient arrays."""
    return multiply(pack(a_bits), pack(b_bits))


def extract_bits(words: np.ndarray, start: int, count: int) -> np.ndarray:
    """Coefficients ``start .. start + count - 1`` of a packed polynomial as 0/1 ``uint8``."""
    first = start // 64
    last = -(-(start + count) // 64)
    bits = unpack(words[first:last], (last - first) * 64)
    offset = start - 64 * first
    return bits[offset:offset + count].copy()
