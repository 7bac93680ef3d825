"""SQLite key store (WAL): distilled keys with IDs, sizes, timestamps and a hand-out state.

A key enters in one transaction together with its block number (unique), so a crash at any
point of a block leaves either the whole key or nothing, and storing the same block twice is
refused. :meth:`KeyStore.take` moves one key from ``available`` to ``delivered`` and returns it
in one ``BEGIN IMMEDIATE`` transaction, so each key is handed out once, also across processes.
The database file and its WAL/SHM companions are created readable by the owner only (0600).
Key material never appears in logs, ``repr``/``str`` or exception messages.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["KeyStoreError", "DuplicateBlockError", "NoKeyAvailableError", "SecretKey",
           "KeyInfo", "KeyStore"]

_logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key_id     TEXT PRIMARY KEY,
    block_id   INTEGER NOT NULL UNIQUE,
    size_bits  INTEGER NOT NULL CHECK (size_bits > 0),
    created    REAL NOT NULL,
    delivered  REAL,
    state      TEXT NOT NULL CHECK (state IN ('available', 'delivered')),
    material   BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS keys_state ON keys (state, created);
"""


def _log(level: int, message: str, *args: object) -> None:
    _logger.log(level, message, *args)


class KeyStoreError(Exception):
    """A key-store operation failed (the message never contains key material)."""


class DuplicateBlockError(KeyStoreError):
    """A key for this block is already stored."""


class NoKeyAvailableError(KeyStoreError):
    """No undelivered key is left."""


@dataclass(frozen=True)
class SecretKey:
    """A distilled key. ``repr``/``str`` show the ID and size only, never the bits."""

    key_id: str
    block_id: int
    size_bits: int
    bits: np.ndarray = field(repr=False, compare=False)

    def __repr__(self) -> str:
        return f"SecretKey(key_id={self.key_id!r}, block_id={self.block_id}, " \
               f"size_bits={self.size_bits})"

    __str__ = __repr__

    def to_bytes(self) -> bytes:
        """The key bits packed MSB-first (the last byte zero-padded)."""
        return np.packbits(self.bits).tobytes()


@dataclass(frozen=True)
class KeyInfo:
    """Metadata of a stored key (no material)."""

    key_id: str
    block_id: int
    size_bits: int
    created: float
    state: str


class KeyStore:
    """Distilled keys in an SQLite database in WAL mode.

    Raises
    ------
    KeyStoreError
        If the database cannot be opened.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self._path = Path(path)
        try:
            # Create the file 0600 before SQLite opens it; SQLite gives its -wal and -shm
            # files the permissions of the database file.
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            os.chmod(self._path, 0o600)
            self._db = sqlite3.connect(self._path, isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA secure_delete=ON")  # overwrite freed pages with zeros
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise KeyStoreError(f"cannot open key store {self._path}: "
                                f"{type(error).__name__}") from None

    def __repr__(self) -> str:
        return f"KeyStore({str(self._path)!r})"

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self):
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def store(self, block_id: int, bits: np.ndarray) -> str:
        """Store a block's key atomically; return its key ID.

        Raises
        ------
        DuplicateBlockError
            If this block already has a key (e.g. a retry after a crash).
        KeyStoreError
            If the key is empty or the database fails.
        """
        bits = np.asarray(bits, dtype=np.uint8)
        if bits.size == 0:
            raise KeyStoreError(f"block {block_id}: refusing to store an empty key")
        key_id = uuid.uuid4().hex
        try:
            with self._transaction():
                self._db.execute(
                    "INSERT INTO keys (key_id, block_id, size_bits, created, state, material)"
                    " VALUES (?, ?, ?, ?, 'available', ?)",
                    (key_id, block_id, int(bits.size), time.time(),
                     np.packbits(bits).tobytes()))
        except sqlite3.IntegrityError:
            raise DuplicateBlockError(f"block {block_id} already has a stored key") from None
        except sqlite3.Error as error:
            raise KeyStoreError(f"block {block_id}: store failed "
                                f"({type(error).__name__})") from None
        _log(logging.INFO, "stored key %s of block %d: %d bits", key_id, block_id, bits.size)
        return key_id

    def take(self) -> SecretKey:
        """Hand out the oldest available key once (it becomes ``delivered``).

        Raises
        ------
        NoKeyAvailableError
            If every stored key has been delivered.
        """
        with self._transaction():
            row = self._db.execute(
                "SELECT key_id, block_id, size_bits, material FROM keys"
                " WHERE state = 'available' ORDER BY created, block_id LIMIT 1").fetchone()
            if row is None:
                raise NoKeyAvailableError("no undelivered key in the store")
            key_id, block_id, size_bits, material = row
            self._db.execute("UPDATE keys SET state = 'delivered', delivered = ?,"
                             " material = zeroblob(length(material)) WHERE key_id = ?",
                             (time.time(), key_id))
        bits = np.unpackbits(np.frombuffer(material, dtype=np.uint8), count=size_bits)
        _log(logging.INFO, "delivered key %s (%d bits)", key_id, size_bits)
        return SecretKey(key_id, block_id, size_bits, bits)

    def list_keys(self) -> list[KeyInfo]:
        """Metadata of every stored key, oldest first."""
        rows = self._db.execute("SELECT key_id, block_id, size_bits, created, state FROM keys"
                                " ORDER BY created, block_id").fetchall()
        return [KeyInfo(*row) for row in rows]

    def available_bits(self) -> int:
        """Total size of the keys not yet delivered."""
        (total,) = self._db.execute("SELECT COALESCE(SUM(size_bits), 0) FROM keys"
                                    " WHERE state = 'available'").fetchone()
        return int(total)

    def has_block(self, block_id: int) -> bool:
        """True if a key of this block is stored (delivered or not)."""
        return self._db.execute("SELECT 1 FROM keys WHERE block_id = ?",
                                (block_id,)).fetchone() is not None
