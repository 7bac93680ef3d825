"""Alice's transmitter from the host, against its golden model behind pynq-shaped MMIO and DMAs.

The stand-in board (:mod:`board_standin`) serves the registers and streams from
:class:`tbqkd.hdl.golden_transmitter.TransmitterModel`; the host code under test is the real
one: :class:`TransmitterDevice` on the shared AXI/DMA machinery, :class:`RandomSource`,
:class:`StateHistory`, :class:`AliceTransmitter`, and :class:`TransmitterOverlay` over a
stand-in ``pynq``.
"""

from __future__ import annotations

import logging
import secrets

import numpy as np
import pytest
from board_standin import TxModelCore, encode_states, tx_dmas
from tbqkd.hdl.golden_transmitter import random_states
from tbqkd.hdl.ip import (
    IP_VERSION,
    TX_DMA_CHANNELS,
    TX_INSTANCE_NAME,
    TX_IP_NAME,
    TX_VLNV,
    TX_VLNV_PREFIX,
    parse_vlnv,
)
from tbqkd.hdl.tx_records import STATES, STATES_PER_RECORD, TX_STREAMS
from tbqkd.hdl.tx_registers import TX_COUNTERS
from tbqkd.host.auth import AuthenticatedChannel
from tbqkd.host.device import DeviceError, DeviceMismatch
from tbqkd.host.distill import DistillConfig
from tbqkd.host.link import STATE_BASIS, AliceNode
from tbqkd.host.protocol import ProtocolError, pack_bits, unpack_bits
from tbqkd.host.slot_code import pack_slots
from tbqkd.host.transmitter import (
    OS_RANDOM_WARNING,
    AliceTransmitter,
    NotForProductionWarning,
    RandomSource,
    RandomSourceError,
    StateHistory,
    TransmitterDevice,
    TransmitterSettings,
)
from tbqkd.sim.pynq_shim import shim_allocate

DEPTH = 64


def make_tx(tmp_path, *, window_slots: int = 4096, buffer_bytes: int = 256, seed: int = 7,
            random_bytes: int = 1 << 16, fifo_words: int = 64):
    """(stand-in core, device, AliceTransmitter) with a file of seeded random bytes."""
    core = TxModelCore(DEPTH, fifo_words=fifo_words)
    device = TransmitterDevice(core, tx_dmas(core), ring_depth=DEPTH, allocate=shim_allocate,
                               buffer_bytes=buffer_bytes)
    path = tmp_path / "qrng.bin"
    path.write_bytes(np.random.default_rng(seed).bytes(random_bytes))
    alice_tx = AliceTransmitter(device, RandomSource.from_path(path), StateHistory(window_slots))
    return core, device, alice_tx


def run(core, alice_tx, steps: int, cycles: int) -> None:
    for _ in range(steps):
        core.run(cycles)
        alice_tx.service()


def sent_states(core) -> np.ndarray:
    """The model's record of every slot of the session: its state, or -1 for vacuum."""
    m = core.model
    return np.array([-1 if s is None else s for s in (m.session_state(i)
                                                      for i in range(m.slot))])


# --- identity ---------------------------------------------------------------------------------
def test_transmitter_ip_names_match_the_deploy_code_and_the_top_level():
    from amaranth.hdl import Shape
    from tbqkd.hdl import transmitter
    from tbqkd.hdl.transmitter import TransmitterTop

    # tbqkd.deploy._transmitter_core names the alice IP from these module attributes
    assert getattr(transmitter, "IP_NAME", "tbqkd_transmitter") == TX_IP_NAME
    assert getattr(transmitter, "IP_VERSION", IP_VERSION) == parse_vlnv(TX_VLNV)[3]
    assert TX_VLNV.rpartition(":")[0] == TX_VLNV_PREFIX
    assert TX_INSTANCE_NAME == "tbqkd_transmitter_0"
    members = TransmitterTop(DEPTH).signature.members
    assert [r.stream for r in TX_DMA_CHANNELS] == [p.prefix for p in TX_STREAMS]
    for route, port in zip(TX_DMA_CHANNELS, TX_STREAMS, strict=True):
        assert route.dma == f"dma_{port.prefix}"
        assert route.receives == (port.direction == "out")
        assert Shape.cast(members[f"{port.prefix}_tdata"].shape).width == 8 * route.record_bytes
        assert f"{port.prefix}_tlast" in members


# --- registers --------------------------------------------------------------------------------
def test_configure_start_stop_write_exactly_their_registers(tmp_path):
    core, device, _ = make_tx(tmp_path)
    device.check_identity()
    core.transactions()
    settings = TransmitterSettings(p_z=0.75, four_state=True, basis_bits=8, slot_divider=3,
                                   ref_divider=1024, mod_delay_cycles=1, mod_width_cycles=2,
                                   mod_fine_taps=5, frame_words=16, flush_cycles=100)
    device.configure(settings)
    reg = device.regmap
    control = reg["CONTROL"].encode(run=0, four_state=1, pattern_mode=0, state_stream=1)
    assert core.transactions() == [
        ("r", "STATUS", 0, 0),
        ("w", "SLOT_DIVIDER", 0, 3), ("w", "BASIS_BITS", 0, 8), ("w", "X_THRESHOLD", 0, 64),
        ("w", "REF_DIVIDER", 0, 1024), ("w", "MOD_DELAY", 0, 1), ("w", "MOD_WIDTH", 0, 2),
        ("w", "MOD_FINE_DELAY", 0, 5), ("w", "FRAME_WORDS", 0, 16),
        ("w", "FLUSH_CYCLES", 0, 100), ("w", "CONTROL", 0, control)]
    device.start()
    command = reg["COMMAND"].encode(restart=1, clear_counters=1, clear_error=1)
    assert core.transactions() == [("w", "COMMAND", 0, command), ("r", "CONTROL", 0, control),
                                   ("w", "CONTROL", 0, control | 1)]
    cfg = core.config()
    assert (cfg.run, cfg.four_state, cfg.slot_divider, cfg.basis_bits, cfg.x_threshold,
            cfg.ref_divider, cfg.mod_delay, cfg.mod_width) == (1, 1, 3, 8, 64, 1024, 1, 2)
    with pytest.raises(DeviceError, match="running: stop"):
        device.configure(settings)
    device.stop()
    assert core.transactions()[-1] == ("w", "CONTROL", 0, control)
    # A pattern selects pattern mode; the counters are read as 64-bit pairs, low word first.
    device.configure(TransmitterSettings(pattern=(0, 1, 2, 3, 3)))
    log = core.transactions()
    assert ("w", "PATTERN", 0, 0b11_11_10_01_00) in log and ("w", "PATTERN_LENGTH", 0, 5) in log
    assert core.config().pattern_mode == 1
    counters = device.counters()
    assert set(counters) == {*TX_COUNTERS, "slot"}
    words = [(name, w) for op, name, w, _ in core.transactions()]
    assert words[:2] == [("RANDOM_WORDS", 0), ("RANDOM_WORDS", 1)]


def test_settings_are_checked_before_anything_is_written():
    for bad in ({"p_z": 1.5}, {"basis_bits": 0}, {"slot_divider": 0}, {"mod_fine_taps": 512},
                {"pattern": (0, 4)}, {"pattern": ()}, {"frame_words": 0}):
        with pytest.raises(ValueError):
            TransmitterSettings(**bad)
    assert TransmitterSettings(p_z=0.8).x_threshold == 13107       # the core's reset value
    assert TransmitterSettings(p_z=1.0).x_threshold == 0


# --- states end to end ------------------------------------------------------------------------
@pytest.mark.parametrize("four_state", [False, True])
def test_history_answers_every_slot_exactly_as_the_model_sent_it(tmp_path, four_state):
    core, device, alice_tx = make_tx(tmp_path)
    settings = TransmitterSettings(p_z=0.6, four_state=four_state, basis_bits=4, frame_words=8,
                                   flush_cycles=16)
    alice_tx.start(settings)
    run(core, alice_tx, steps=12, cycles=120)
    sent = sent_states(core)
    assert (sent >= 0).all(), "fed in time: no slot went out empty"
    status = alice_tx.service()
    assert status.counters["random_underruns"] == 0
    complete = core.model.slot // STATES_PER_RECORD * STATES_PER_RECORD
    assert alice_tx.history.end_slot == complete >= 1400
    slots = np.arange(complete)
    got = alice_tx.states(slots)
    np.testing.assert_array_equal(got, sent[:complete])
    # ... and they are the states the random bits the host sent make (bits never reused)
    words = np.frombuffer((tmp_path / "qrng.bin").read_bytes(), "<u8")
    assert core.model.words == words[:len(core.model.words)].tolist()
    np.testing.assert_array_equal(got, random_states(words, core.config(), complete))
    assert set(np.unique(got)) == ({0, 1, 2, 3} if four_state else {0, 1, 2})
    shuffled = np.random.default_rng(1).permutation(slots)
    np.testing.assert_array_equal(alice_tx.states(shuffled), sent[shuffled])
    assert status.random_bytes_sent == alice_tx.source.bytes_read > 0


def test_a_new_session_never_answers_from_the_last_ones_states(tmp_path):
    core, device, alice_tx = make_tx(tmp_path)
    naps: list[float] = []
    alice_tx._sleep = naps.append
    settings = TransmitterSettings(basis_bits=4, frame_words=4, flush_cycles=8)
    alice_tx.start(settings)
    run(core, alice_tx, steps=3, cycles=100)
    core.run(100)                                  # records the host has not read yet
    alice_tx.stop()                                # ... taken in after the core settled
    assert naps == [alice_tx.settle_s] and not core.config().run
    first = sent_states(core)
    n = alice_tx.history.end_slot
    assert n == 400
    np.testing.assert_array_equal(alice_tx.states(np.arange(n)), first[:n])
    # Session 2 after a stop that left records behind (the host stopped the core directly).
    alice_tx.start(settings)
    run(core, alice_tx, steps=1, cycles=160)
    core.run(96)
    device.stop()
    alice_tx.start(settings)
    assert alice_tx.discarded_records == 6 and alice_tx.history.end_slot == 0
    run(core, alice_tx, steps=2, cycles=100)
    third = sent_states(core)
    n = alice_tx.history.end_slot
    assert n == 192 and alice_tx.history.malformed_records == 0
    np.testing.assert_array_equal(alice_tx.states(np.arange(n)), third[:n])
    assert not np.array_equal(third[:n], first[:n])


def test_slots_without_a_known_state_raise_and_are_counted(tmp_path, caplog):
    core, device, alice_tx = make_tx(tmp_path, window_slots=512)
    alice_tx.start(TransmitterSettings(basis_bits=4, frame_words=4, flush_cycles=8))
    run(core, alice_tx, steps=8, cycles=100)
    history = alice_tx.history
    end = history.end_slot
    assert end > 512 and history.first_slot == end - 512
    alice_tx.states(np.arange(end - 512, end))                      # the whole window: fine
    with pytest.raises(ProtocolError, match="1 of 1 slots.*1 older than the window"):
        alice_tx.states(np.array([end - 513]))
    with pytest.raises(ProtocolError, match="1 not streamed yet"):
        alice_tx.states(np.array([end]))
    core.run(32)                                   # two more records, not serviced yet
    assert alice_tx.fresh_states(np.array([end])) == sent_states(core)[end]
    # Starve the core: no random bits for a while, so slots go out empty.
    caplog.set_level(logging.WARNING, "tbqkd.host.transmitter")
    core.random.clear()
    core.run(200)
    status = alice_tx.service()
    assert status.counters["random_underruns"] > 100
    assert any("sent empty" in r.message for r in caplog.records)
    sent = sent_states(core)
    empty = np.flatnonzero(sent[:history.end_slot] < 0)
    assert empty.size > 100
    with pytest.raises(ProtocolError, match=f"{empty.size} sent empty"):
        alice_tx.states(empty)
    good = np.flatnonzero(sent[:history.end_slot] >= 0)[-50:]
    np.testing.assert_array_equal(alice_tx.states(good), sent[good])
    assert history.refused == {"old": 1, "future": 1, "vacuum": empty.size, "lost": 0}


def test_malformed_and_missing_records_are_refused_counted_and_lose_nothing_else():
    history = StateHistory(256)
    rng = np.random.default_rng(3)
    codes = 4 + rng.integers(0, 3, size=(6, STATES_PER_RECORD))
    records = [encode_states(16 * i, codes[i]) for i in range(6)]
    bad_code = bytearray(records[2])
    bad_code[STATES.offsets["codes"] // 8] = 0x42                  # code 2: never sent
    spare = bytearray(records[3])
    spare[-1] = 1                                                  # spare bits set
    # record 1 is lost (dropped by the core), 2 and 3 are malformed, 0 comes again (overlap)
    assert history.add(records[0]) == 16
    history.add(b"".join([bytes(bad_code), bytes(spare), records[4], records[0], records[5]]))
    assert history.malformed_records == 3 and history.records == 3
    assert history.gap_slots == 48 and history.end_slot == 96
    np.testing.assert_array_equal(history.states(np.arange(16)), codes[0] - 4)
    np.testing.assert_array_equal(history.states(np.arange(64, 96)), codes[4:6].ravel() - 4)
    with pytest.raises(ProtocolError, match="48 lost"):
        history.states(np.arange(16, 64))
    with pytest.raises(ValueError, match="whole number"):
        history.add(records[5][:-1])
    assert history.end_slot == 96                                   # nothing taken
    # A corrupted first_slot far ahead of the core's slot counter is refused, not followed.
    history.add(encode_states(1 << 40, codes[0]) + encode_states(96, codes[1]), slot_limit=112)
    assert history.malformed_records == 4 and history.end_slot == 112
    np.testing.assert_array_equal(history.states(np.arange(96, 112)), codes[1] - 4)


def test_only_the_codes_the_core_sends_are_taken():
    for code in range(16):
        history = StateHistory(64)
        codes = [4] * STATES_PER_RECORD
        codes[7] = code
        history.add(encode_states(0, codes))
        assert history.malformed_records == int(code not in (0, 4, 5, 6, 7)), code


def test_history_window_wraps_and_keeps_odd_aligned_records():
    history = StateHistory(40)                       # rounded up to 48 slots
    assert history.window_slots == 48
    rng = np.random.default_rng(4)
    sent = {}
    first = 5                                        # the stream was enabled at an odd slot
    for i in range(20):
        codes = 4 + rng.integers(0, 4, size=STATES_PER_RECORD)
        codes[rng.integers(0, STATES_PER_RECORD)] = 0                 # one vacuum slot
        history.add(encode_states(first + 16 * i, codes))
        sent.update(zip(range(first + 16 * i, first + 16 * (i + 1)), codes.tolist(),
                        strict=True))
    end = first + 16 * 20
    window = np.arange(end - 48, end)
    np.testing.assert_array_equal(history.codes(window), [sent[s] for s in window])
    # a fast-path batch after the wrap
    history.reset()
    batch = [encode_states(16 * i, 4 + rng.integers(0, 4, size=16)) for i in range(7)]
    history.add(b"".join(batch))
    want = np.concatenate([STATES.decode(b)["codes"] for b in batch])
    expect = [(int(want[i // 16]) >> 4 * (i % 16)) & 0xF for i in range(112 - 48, 112)]
    np.testing.assert_array_equal(history.codes(np.arange(64, 112)), expect)


def test_alice_node_refuses_a_batch_with_an_empty_slot_and_answers_a_good_one(tmp_path):
    core, _, alice_tx = make_tx(tmp_path)
    alice_tx.start(TransmitterSettings(basis_bits=4, frame_words=4, flush_cycles=8))
    run(core, alice_tx, steps=4, cycles=100)
    core.random.clear()
    core.run(64)
    run(core, alice_tx, steps=2, cycles=100)
    sent = sent_states(core)
    psk = secrets.token_bytes(4096)
    bob = AuthenticatedChannel("bob", psk)
    alice = AliceNode(AuthenticatedChannel("alice", psk), DistillConfig(), alice_tx.states,
                      sync_min_compared=20)
    z_slots = np.flatnonzero((sent == 0) | (sent == 1))
    z_slots = z_slots[z_slots >= 64][:40]
    first, packed = pack_slots(z_slots - 64)          # Bob's numbering: one divider behind
    (result,) = alice.receive(bob.seal({
        "type": "sync", "slot_offset": 0, "divider": 64, "search": 2, "qber_estimate": 0.0,
        "count": int(z_slots.size), "first_slot": first, "slots": packed,
        "bits": pack_bits(sent[z_slots].astype(np.uint8))}))
    result = bob.open(result)
    assert result["found"] and result["slot_offset"] == 64 and result["errors"] == 0

    def announce(batch: int, slots: np.ndarray) -> dict:
        first, packed = pack_slots(slots - 64)
        frame = bob.seal({"type": "announce", "batch": batch, "count": int(slots.size),
                          "first_slot": first, "slots": packed,
                          "bases": pack_bits(np.zeros(slots.size, np.uint8))}, deferred=True)
        (answer,) = alice.receive(frame)
        return bob.open(answer)

    good = np.flatnonzero(sent >= 0)
    good = good[good >= 64][:300:3]
    answer = announce(0, good)
    assert answer["count"] == good.size
    np.testing.assert_array_equal(unpack_bits(answer["bases"], good.size),
                                  STATE_BASIS[sent[good]])
    empty = int(np.flatnonzero(sent < 0)[0])
    answer = announce(1, np.array([good[-1] + 1, empty]))
    assert answer["count"] == 0 and alice.rejected_frames == 1       # refused: no basis given


# --- random bits ------------------------------------------------------------------------------
def test_random_source_from_a_path_reads_exact_bytes_and_says_when_it_runs_dry(tmp_path):
    path = tmp_path / "q.bin"
    data = np.random.default_rng(5).bytes(100)
    path.write_bytes(data)
    source = RandomSource.from_path(path)
    assert source.read(60) == data[:60] and source.read(40) == data[60:]
    with pytest.raises(RandomSourceError, match="ran dry after 100 bytes"):
        source.read(8)
    assert source.describe() == {"random_source": str(path), "production_keys": True,
                                 "random_bytes": 100}
    source.close()
    with pytest.raises(RandomSourceError, match="no-such"):
        RandomSource.from_path(tmp_path / "no-such")
    chunks = iter([b"ab", b"c", b"def"])                        # a device giving short reads
    assert RandomSource(lambda n: next(chunks), name="dev", production=True).read(6) == b"abcdef"


def test_the_os_generator_is_labelled_not_for_production(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "tbqkd.host.transmitter")
    with pytest.warns(NotForProductionWarning, match="NOT FOR PRODUCTION"):
        source = RandomSource.os_generator()
    assert OS_RANDOM_WARNING in caplog.text
    assert len(source.read(32)) == 32 and source.read(32) != source.read(32)
    info = source.describe()
    assert info["production_keys"] is False and info["warning"] == OS_RANDOM_WARNING
    core, device, _ = make_tx(tmp_path)
    alice_tx = AliceTransmitter(device, source, StateHistory(256))
    alice_tx.start(TransmitterSettings(basis_bits=4, frame_words=4))
    core.run(50)
    alice_tx.service()
    log = alice_tx.run_log()
    assert log["production_keys"] is False and log["warning"] == OS_RANDOM_WARNING
    assert log["counters"]["slot"] == core.model.slot


def test_the_random_stream_is_fed_one_transfer_at_a_time_without_waiting(tmp_path):
    core, device, alice_tx = make_tx(tmp_path, buffer_bytes=64, fifo_words=0)
    assert device.try_write_stream(bytes(64), stream="s_axis_random") == 64
    assert device.stream_in_flight("s_axis_random") == 64
    assert device.try_write_stream(bytes(8), stream="s_axis_random") == 0   # still in flight
    with pytest.raises(DeviceError, match="whole number"):
        device.try_write_stream(bytes(7), stream="s_axis_random")
    with pytest.raises(DeviceError, match="not an input"):
        device.try_write_stream(bytes(16), stream="m_axis_states")
    core.run(20)                                     # the core takes two beats, buffers them
    assert device.stream_in_flight("s_axis_random") == 64 and len(core.random) == 6
    core.random.clear()                              # the core took the rest
    assert device.stream_in_flight("s_axis_random") == 0
    assert device.stream_stats()["s_axis_random"]["bytes"] == 64
    with pytest.raises(ValueError, match="state_stream"):
        alice_tx.start(TransmitterSettings(state_stream=False))


# --- the overlay ------------------------------------------------------------------------------
def bitstream(folder, basename="tbqkd_alice"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{basename}.bit").write_bytes(b"bit")
    (folder / f"{basename}.hwh").write_text("<hwh/>")
    return folder / f"{basename}.bit"


def tx_design(core, name=TX_INSTANCE_NAME, vlnv=TX_VLNV):
    dmas = tx_dmas(core)
    design = {name: (vlnv, core), "ps7_0": ("xilinx.com:ip:processing_system7:5.5", object())}
    for route in TX_DMA_CHANNELS:
        design[route.dma] = ("xilinx.com:ip:axi_dma:7.1", dmas[route.stream])
    return design, dmas


def test_transmitter_overlay_finds_the_core_by_vlnv_and_its_dmas(fake, monkeypatch, tmp_path):
    monkeypatch.setattr(fake.module, "BITSTREAMS_DIR", fake.root / "bitstreams")
    path = bitstream(fake.root / "bitstreams" / "pynq-z2")
    core = TxModelCore(DEPTH)
    design, dmas = tx_design(core, name="alice/tx")
    fake.designs[str(path.resolve())] = design
    with fake.module.TransmitterOverlay(device_options={"buffer_bytes": 256}) as overlay:
        device = overlay.core
        assert isinstance(device, TransmitterDevice) and device.ring_depth == DEPTH   # read
        assert sorted(device.streams) == sorted(r.stream for r in TX_DMA_CHANNELS)
        (tmp_path / "r.bin").write_bytes(np.random.default_rng(9).bytes(4096))
        alice_tx = AliceTransmitter(device, RandomSource.from_path(tmp_path / "r.bin"),
                                    StateHistory(1024))
        alice_tx.start(TransmitterSettings(basis_bits=4, frame_words=4, flush_cycles=8))
        run(core, alice_tx, steps=3, cycles=100)
        assert dmas["m_axis_states"].recvchannel.transfers
        assert dmas["s_axis_random"].sendchannel.transfers
        n = alice_tx.history.end_slot
        np.testing.assert_array_equal(alice_tx.states(np.arange(n)), sent_states(core)[:n])
        buffers = list(fake.pynq.buffers)
    assert buffers and all(b.freed for b in buffers)
    assert fake.module.default_bitfile(basename=fake.module.ALICE_BASENAME) == path


def test_transmitter_overlay_reports_identity_and_missing_parts(fake):
    path = bitstream(fake.root / "a")
    with pytest.raises(DeviceError, match=r"no \.bit file .*ROLE=alice"):
        fake.module.TransmitterOverlay(fake.root / "none" / "tbqkd_alice.bit")
    fake.designs[str(path.resolve())] = tx_design(TxModelCore(DEPTH),
                                                  vlnv=f"{TX_VLNV_PREFIX}:9.9")[0]
    with pytest.raises(DeviceError, match="rebuild the bitstream"):
        fake.module.TransmitterOverlay(path)
    fake.designs[str(path.resolve())] = tx_design(TxModelCore(DEPTH))[0]
    with pytest.raises(DeviceMismatch):                          # told the wrong ring depth
        fake.module.TransmitterOverlay(path, ring_depth=128)
    with pytest.raises(DeviceError, match="DMA 'x/dma' for m_axis_states is not in"):
        fake.module.TransmitterOverlay(path, dma_names={"m_axis_states": "x/dma"})
    without = tx_design(TxModelCore(DEPTH))[0]
    del without["dma_m_axis_answer"]
    fake.designs[str(path.resolve())] = without
    with fake.module.TransmitterOverlay(path) as overlay:        # a design may leave one out
        assert "m_axis_answer" not in overlay.core.streams
        with pytest.raises(DeviceError, match="has no DMA in this design"):
            overlay.core.read_stream(stream="m_axis_answer")
