"""Alice's state per slot: computed on demand from a counter-based generator, or read from a file.

:class:`CounterAlice` evaluates ``state(slot)`` for any slot, in any order, without
materialising the slots in between: the uniform variate of slot ``k`` is the ``k``-th output of
a SplitMix64 stream keyed by the seed (``mix64(key + (k + 1) * golden)``, where ``mix64`` is
SplitMix64's finaliser). It is compared with the cumulative state probabilities.

:class:`FileAlice` reads Alice's random choices from a file (random access, memory-mapped) and
:class:`StreamAlice` from a binary stream read forward chunk by chunk. Both accept two formats:

``"states-u8"``
    one byte per slot holding the :class:`~tbqkd.sim.twin.params.State` code (0..3).
``"uniform-u16"``
    two bytes per slot, little-endian: a uniform variate ``u / 65536`` compared with the
    cumulative state probabilities (e.g. raw QRNG output).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO

import numba
import numpy as np

from .params import AliceParams, ScenarioError

__all__ = ["AliceSource", "CounterAlice", "FileAlice", "StreamAlice", "counter_uniform",
           "stream_key", "FORMATS"]

FORMATS = {"states-u8": np.dtype(np.uint8), "uniform-u16": np.dtype("<u2")}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1   = np.uint64(0xBF58476D1CE4E5B9)
_MIX2   = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 1.0 / 2 ** 53


def _mix64(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x ^= x >> np.uint64(30)
    x *= _MIX1
    x ^= x >> np.uint64(27)
    x *= _MIX2
    x ^= x >> np.uint64(31)
    return x


def stream_key(seed: int, stream: int) -> int:
    """A 64-bit key for the independent counter stream ``stream`` of ``seed``."""
    words = np.array([(seed * 0x2545F4914F6CDD1D + stream) % 2 ** 64], dtype=np.uint64)
    return int(_mix64(_mix64(words))[0])


@numba.njit(inline="always", cache=True)
def next_u64_of(state):
    z = state + _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@numba.njit(inline="always", cache=True)
def counter_uniform_one(key, slot):
    """Uniform variate of one slot of the counter stream ``key`` (for numba kernels)."""
    state = np.uint64(key) + np.uint64(slot) * _GOLDEN  # next_u64_of adds one more golden
    return np.float64(next_u64_of(state) >> _S11) * _TO_UNIT


@numba.njit(cache=True)
def _counter_uniform(key, slots):
    out = np.empty(slots.size, np.float64)
    for i in range(slots.size):
        out[i] = counter_uniform_one(key, slots[i])
    return out


def counter_uniform(key: int, slots: np.ndarray) -> np.ndarray:
    """Uniform variates in [0, 1) for ``slots`` of the counter stream ``key`` (float64).

    Slot ``k`` gets the ``k``-th output of SplitMix64 started at ``key``:
    ``mix64(key + (k + 1) * golden)``.
    """
    return _counter_uniform(np.uint64(key), np.ascontiguousarray(slots, dtype=np.int64))


def _state_edges(params: AliceParams) -> np.ndarray:
    edges = np.cumsum(params.state_probabilities())[:-1]
    return np.ascontiguousarray(edges[edges < 1.0], dtype=np.float64)


def _states_from_uniform(uniform: np.ndarray, params: AliceParams) -> np.ndarray:
    states = np.zeros(uniform.size, np.int8)
    for edge in _state_edges(params):
        states += uniform >= edge
    return states


@numba.njit(inline="always", cache=True)
def counter_state_one(key, slot, edges):
    """State code of one slot of the counter stream ``key`` (for numba kernels; ``edges`` are
    the cumulative state probabilities below 1, see :attr:`CounterAlice.edges`)."""
    u = counter_uniform_one(key, slot)
    code = 0
    for edge in edges:
        code += u >= edge
    return code


@numba.njit(cache=True)
def _counter_states(key, slots, edges):
    # _states_from_uniform(counter_uniform(key, slots)) in one pass.
    out = np.empty(slots.size, np.int8)
    for i in range(slots.size):
        out[i] = counter_state_one(key, slots[i], edges)
    return out


class AliceSource(ABC):
    """Where Alice's states come from."""

    @abstractmethod
    def states(self, slots: np.ndarray, first_slot: int, end_slot: int) -> np.ndarray:
        """State codes (int8) of ``slots``, sorted, all within ``[first_slot, end_slot)``.

        Successive calls cover consecutive, increasing slot ranges.

        Raises
        ------
        ScenarioError
            If the source cannot provide those slots.
        """


class CounterAlice(AliceSource):
    """States from the seeded counter-based generator (the default)."""

    def __init__(self, params: AliceParams, seed: int) -> None:
        self._params = params
        self._key    = stream_key(seed, 1)
        self._edges  = _state_edges(params)

    @property
    def key(self) -> int:
        """Key of the counter stream (uint64 value)."""
        return self._key

    @property
    def edges(self) -> np.ndarray:
        """Cumulative state probabilities below 1: the state is the number of them <= u."""
        return self._edges

    def states(self, slots: np.ndarray, first_slot: int = 0, end_slot: int = 0) -> np.ndarray:
        """State codes of ``slots`` (any order; the range arguments are not needed)."""
        return _counter_states(np.uint64(self._key), np.ascontiguousarray(slots, dtype=np.int64),
                               self._edges)


def _decode(raw: np.ndarray, fmt: str, params: AliceParams) -> np.ndarray:
    if fmt == "states-u8":
        states = raw.astype(np.int8)
        allowed = 4 if params.protocol == "four-state" else 3
        if states.size and (states.min() < 0 or states.max() >= allowed):
            raise ScenarioError(f"Alice file holds state codes outside 0..{allowed - 1}")
        return states
    return _states_from_uniform(raw.astype(np.float64) / 65536.0, params)


def _check_format(fmt: str) -> np.dtype:
    if fmt not in FORMATS:
        raise ScenarioError(f"unknown Alice file format {fmt!r} (known: {', '.join(FORMATS)})")
    return FORMATS[fmt]


class FileAlice(AliceSource):
    """States read from a file with random access (memory-mapped)."""

    def __init__(self, params: AliceParams, path: str | Path, fmt: str = "states-u8") -> None:
        dtype = _check_format(fmt)
        self._params = params
        self._format = fmt
        self._data   = np.memmap(path, dtype=dtype, mode="r")

    def __len__(self) -> int:
        return int(self._data.size)

    def states(self, slots: np.ndarray, first_slot: int = 0, end_slot: int = 0) -> np.ndarray:
        """State codes of ``slots``.

        Raises
        ------
        ScenarioError
            If a slot lies beyond the end of the file.
        """
        slots = np.asarray(slots, dtype=np.int64)
        if slots.size and slots.max() >= self._data.size:
            raise ScenarioError(f"Alice file holds {self._data.size} slots; slot "
                                f"{int(slots.max())} requested (run shorter or give more bits)")
        return _decode(np.asarray(self._data[slots]), self._format, self._params)


class StreamAlice(AliceSource):
    """States read forward from a binary stream (a pipe, a socket file, a QRNG device)."""

    def __init__(self, params: AliceParams, stream: BinaryIO, fmt: str = "states-u8") -> None:
        self._dtype    = _check_format(fmt)
        self._params   = params
        self._format   = fmt
        self._stream   = stream
        self._position = 0

    def states(self, slots: np.ndarray, first_slot: int, end_slot: int) -> np.ndarray:
        """Read slots ``[first_slot, end_slot)`` from the stream and return those of ``slots``.

        Raises
        ------
        ScenarioError
            If the range does not continue the previous one or the stream ends early.
        """
        if first_slot != self._position:
            raise ScenarioError(f"stream Alice at slot {self._position}, asked from {first_slot}")
        count = end_slot - first_slot
        raw = self._stream.read(count * self._dtype.itemsize)
        if len(raw) != count * self._dtype.itemsize:
            ended = first_slot + len(raw) // self._dtype.itemsize
            raise ScenarioError(f"Alice stream ended at slot {ended}")
        self._position = end_slot
        data = np.frombuffer(raw, dtype=self._dtype)
        return _decode(data[np.asarray(slots, dtype=np.int64) - first_slot], self._format,
                       self._params)
