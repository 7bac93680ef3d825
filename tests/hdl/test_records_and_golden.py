"""Shared record layouts against Amaranth, and the golden encoder on named cases."""

from fractions import Fraction

import numpy as np
import pytest
from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.golden import TaggerModel, TaggerSettings, encode_words, ideal_calibration
from tbqkd.hdl.layouts import struct_layout
from tbqkd.hdl.records import TAG
from tbqkd.sim.frontend import DelayLineFrontend, OversamplingFrontend, SampleWords


def test_host_offsets_equal_amaranth_layout():
    layout = struct_layout(TAG)
    assert layout.size == TAG.width
    for name, offset, width in TAG:
        assert layout[name].offset == offset and layout[name].width == width


def test_tag_encode_decode_roundtrip():
    rng = np.random.default_rng(1)
    fields = {"timestamp": rng.integers(0, 2**63, 50, dtype=np.uint64) * np.uint64(2) + 1,
              "channel": rng.integers(0, 256, 50), "code": rng.integers(0, 256, 50)}
    decoded = TAG.decode(TAG.encode(**fields))
    for name, values in fields.items():
        assert np.array_equal(decoded[name], np.asarray(values).astype(np.uint64))
    with pytest.raises(ValueError):
        TAG.decode(b"\x00" * 17)


def test_oversampling_encoder_cases():
    words = np.array([[0, 0, 0, 0, 0, 0, 0, 1],    # edge on the last sample
                      [1, 1, 1, 1, 1, 1, 1, 1],    # edge at the boundary (prev last low)
                      [1, 1, 1, 1, 1, 1, 1, 1],    # held high (prev last high): no edge
                      [0, 1, 0, 0, 1, 1, 0, 1]],   # three edges: first at 1, two extra
                     dtype=np.uint8)
    hit, code, extra = encode_words(words, np.array([0, 0, 1, 0]), "oversampling")
    assert hit.tolist() == [True, True, False, True]
    assert code.tolist() == [7, 0, 0, 1]
    assert extra.tolist() == [0, 0, 0, 2]


def test_thermometer_encoder_counts_ones_through_bubbles():
    clean = np.array([[0] * 10 + [1] * 22], dtype=np.uint8)
    bubbly = clean.copy()
    bubbly[0, 9], bubbly[0, 10] = 1, 0                 # a bubble pair at the transition
    for word in (clean, bubbly):
        hit, code, _ = encode_words(word, np.array([0]), "delay_line")
        assert hit[0] and code[0] == 10


def test_frontend_words_place_edges_in_the_right_bins():
    fe = OversamplingFrontend(8, Fraction(4000))
    words = fe.words(np.array([4000 * 10 + 700]), np.array([2]))   # bin 1 of cycle 10
    first = words.bits()[np.flatnonzero(words.cycle == 10)[0]]
    assert first.tolist() == [0, 1, 1, 1, 1, 1, 1, 1]
    assert np.allclose(fe.ideal_fine_ps(), (np.arange(8) + 0.5) * 500)


def test_delay_line_model_rejects_short_lines():
    with pytest.raises(ValueError):
        DelayLineFrontend(4, Fraction(4000), tap_delays_ps=np.full(4, 10.0))


def test_golden_model_timestamps_track_true_times():
    config = TaggerConfig()
    fe = DelayLineFrontend.random(config.word_width, config.period_ps, seed=4)
    settings = TaggerSettings.defaults(config)
    settings.calibration[:, :config.word_width] = ideal_calibration(fe.ideal_fine_ps())
    rng = np.random.default_rng(2)
    # Clicks at least 10 cycles apart on each channel: none is suppressed by the dead time.
    period = float(config.period_ps)
    t = np.concatenate([np.cumsum(rng.exponential(20 * period, 400) + 10 * period)
                        for _ in range(config.n_channels)]).astype(np.int64)
    ch = np.repeat(np.arange(config.n_channels), 400)
    result = TaggerModel(config, settings).run(fe.words(t, ch))
    assert len(result) == len(t) and result.suppressed.sum() == 0
    # Per channel, timestamps equal true times up to a constant and the bin quantisation.
    for c in range(config.n_channels):
        got = result.timestamp[result.channel == c].astype(np.int64)
        err = got - np.sort(t[ch == c])
        assert np.std(err) < 15 and np.ptp(err) < 100


def test_sample_words_merge_or_duplicates():
    words = SampleWords.from_bits([5, 5, 3], [1, 1, 0],
                                  [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    assert words.cycle.tolist() == [5] and words.bits().tolist() == [[1, 0, 1, 0]]
