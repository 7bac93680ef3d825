"""SQLite key store: atomic, each key once, owner-only file, no key material in text."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from tbqkd.host.keystore import DuplicateBlockError, KeyStore, KeyStoreError, NoKeyAvailableError

KEY = np.random.default_rng(6).integers(0, 2, 1000, dtype=np.uint8)


def _bit_strings(bits: np.ndarray) -> list[str]:
    text = "".join(map(str, bits[:64]))
    return [text, np.packbits(bits).tobytes()[:8].hex(), str(list(bits[:32]))]


def test_store_take_each_key_once(tmp_path):
    with KeyStore(tmp_path / "keys.db") as store:
        store.store(1, KEY)
        store.store(2, KEY[:500])
        assert store.available_bits() == 1500
        first, second = store.take(), store.take()
        assert (first.block_id, second.block_id) == (1, 2)
        assert np.array_equal(first.bits, KEY) and first.size_bits == 1000
        with pytest.raises(NoKeyAvailableError):
            store.take()
        assert [info.state for info in store.list_keys()] == ["delivered", "delivered"]


def test_two_connections_never_hand_out_the_same_key(tmp_path):
    path = tmp_path / "keys.db"
    with KeyStore(path) as one, KeyStore(path) as two:
        for block in range(10):
            one.store(block, KEY)
        taken = [store.take().key_id for _ in range(5) for store in (one, two)]
        assert len(set(taken)) == 10


def test_duplicate_block_is_refused(tmp_path):
    with KeyStore(tmp_path / "keys.db") as store:
        store.store(7, KEY)
        with pytest.raises(DuplicateBlockError):
            store.store(7, KEY)
        assert len(store.list_keys()) == 1
        with pytest.raises(KeyStoreError):
            store.store(8, KEY[:0])


def test_files_are_owner_only(tmp_path):
    path = tmp_path / "keys.db"
    with KeyStore(path) as store:
        store.store(1, KEY)
        for file in (path, path.with_name("keys.db-wal"), path.with_name("keys.db-shm")):
            if file.exists():
                assert stat.S_IMODE(os.stat(file).st_mode) == 0o600, file


def test_no_key_material_in_text(tmp_path):
    with KeyStore(tmp_path / "keys.db") as store:
        store.store(1, KEY)
        key = store.take()
        with pytest.raises(DuplicateBlockError) as duplicate:
            store.store(1, KEY)
        texts = [repr(key), str(key), repr(store), str(duplicate.value)]
        for text in texts:
            for needle in _bit_strings(KEY):
                assert needle not in text
        assert key.key_id in repr(key)


def test_crash_inside_a_store_leaves_nothing(tmp_path):
    path = tmp_path / "keys.db"
    with KeyStore(path) as store:
        store.store(1, KEY)
    # A process dies between the INSERT and the COMMIT of block 2.
    script = textwrap.dedent(f"""
        import os, numpy as np
        from tbqkd.host.keystore import KeyStore
        store = KeyStore({str(path)!r})
        def die():
            os._exit(3)
        original = store._db.execute
        def execute(sql, *args):
            if sql == "COMMIT":
                die()
            return original(sql, *args)
        class Proxy:
            def __getattr__(self, name):
                return execute if name == "execute" else getattr(store._db, name)
        store._db = Proxy()
        store.store(2, np.ones(64, dtype=np.uint8))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == 3, result.stderr
    with KeyStore(path) as store:
        assert [info.block_id for info in store.list_keys()] == [1]
        store.store(2, KEY)  # the block can be stored after the crash, once
        assert [info.block_id for info in store.list_keys()] == [1, 2]
