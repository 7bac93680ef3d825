"""The Verilator backend (ctypes model) against the golden model, through the host API."""

import subprocess
import sys

import numpy as np
import pytest
from tbqkd.hdl.config import TaggerConfig
from tbqkd.hdl.golden import TaggerModel, TaggerSettings, ideal_calibration
from tbqkd.hdl.registers import core_regmap
from tbqkd.host.device import DeviceError, DeviceMismatch
from tbqkd.host.tagger import TaggerInterface, TaggerOverflow, decode_tags
from tbqkd.sim.device import VerilatorDevice, open_verilator_device
from tbqkd.sim.frontend import make_frontend

pytestmark = pytest.mark.verilator

CONFIG = TaggerConfig()


@pytest.fixture(scope="module")
def device():
    dev = open_verilator_device(CONFIG)
    yield dev
    dev.close()


@pytest.fixture
def setup(device):
    """A calibrated tagger with default settings, and the matching golden-model settings."""
    tagger = TaggerInterface(device)
    frontend = make_frontend(CONFIG.frontend, CONFIG.word_width, CONFIG.period_ps, seed=8)
    settings = TaggerSettings.defaults(CONFIG)
    for ch in range(CONFIG.n_channels):
        tagger.write_calibration(ch, frontend.ideal_fine_ps())
        settings.calibration[ch, :CONFIG.word_width] = ideal_calibration(frontend.ideal_fine_ps())
        tagger.set_channel(ch, delay_ps=0, dead_time_cycles=CONFIG.min_dead_time, enable=True)
    tagger.clear_counters()
    tagger.overflow_flags()
    device.read_stream()
    return tagger, frontend, settings


def line_rate_times(start: int, cycles: int, rng) -> tuple[np.ndarray, np.ndarray]:
    n, period = CONFIG.n_channels, float(CONFIG.period_ps)
    k = np.arange(cycles - 2 * n)
    t = ((start + k) * period + rng.uniform(0.05, 0.95, len(k)) * period).astype(np.int64)
    return t, (k % n).astype(np.uint8)


def assert_tags_equal(tagger, got, want) -> None:
    """The core's tags (decoded) and per-channel counters equal the golden tagger's."""
    assert np.array_equal(got["timestamp"], want.timestamp)
    assert np.array_equal(got["channel"], want.channel)
    assert np.array_equal(got["code"].astype(np.int64), want.code)
    for c in range(CONFIG.n_channels):
        counters = tagger.counters(c)
        assert (counters.events, counters.suppressed) == (want.events[c], want.suppressed[c])


def test_identity_and_mismatch(device):
    device.check_identity()
    other = VerilatorDevice(device.model, TaggerConfig(n_channels=6))
    with pytest.raises(DeviceMismatch, match="register map mismatch"):
        other.check_identity()


def test_registers_by_name(device):
    device.write("FRAME_WORDS", value=99)
    assert device.read("FRAME_WORDS") == 99
    device.write("CH2_DELAY", ps=-77)
    assert device.read_fields("CH2_DELAY") == {"ps": -77}
    with pytest.raises(DeviceError, match="read-only"):
        device.write("TAGGER_CONFIG", value=1)
    with pytest.raises(DeviceError):
        device.write("FRAME_WORDS", value=1 << 40)
    device.write("FRAME_WORDS", value=256)
    device.write("CH2_DELAY", ps=0)
    with pytest.raises(DeviceError, match="resp"):
        device.read32(0xFFF0)


def test_random_events_equal_golden(device, setup):
    tagger, frontend, settings = setup
    rng = np.random.default_rng(21)
    for ch in range(CONFIG.n_channels):
        settings.delay_ps[ch] = int(rng.integers(-3000, 3000))
        tagger.set_channel(ch, delay_ps=settings.delay_ps[ch])
    start = device.model.cycle + 16
    t = np.sort(rng.uniform(start, start + 40_000, 6000) * float(CONFIG.period_ps))
    ch = rng.integers(0, CONFIG.n_channels, len(t))
    words = frontend.words(t.astype(np.int64), ch)
    device.feed(words, int(words.cycle[-1] - device.model.cycle) + 1, drain=True)
    got = decode_tags(device.read_stream())
    want = TaggerModel(CONFIG, settings).run(words)
    assert_tags_equal(tagger, got, want)


def test_feeding_only_hit_words_equals_golden_on_all_words(device, setup):
    """feed_events drives only the words that hold a hit (delay-line front end); the tags and
    counters equal the golden tagger's on every word, with pulses that pile up on one channel
    (the next click within the last one's pulse, or right after it) and chunks whose last
    pulse reaches into the next chunk."""
    assert device.hits_only
    tagger, frontend, settings = setup
    rng = np.random.default_rng(24)
    period = float(CONFIG.period_ps)
    start = device.model.cycle + 16
    t = np.sort(rng.uniform(start, start + 8_000, 3000) * period)
    ch = rng.integers(0, CONFIG.n_channels, len(t))
    # every fifth click followed on its channel within its pulse or just after it
    close = t[::5] + rng.uniform(0.3, 4.0, len(t[::5])) * period
    t, ch = np.concatenate([t, close]), np.concatenate([ch, ch[::5]])
    order = np.argsort(t, kind="stable")
    t, ch = t[order].astype(np.int64), ch[order].astype(np.uint8)
    dropped_before = device.words_dropped
    device.feed_events(frontend, t, ch, chunk=500)
    got = decode_tags(device.read_stream())
    want = TaggerModel(CONFIG, settings).run(frontend.words(t, ch))
    assert device.words_dropped - dropped_before > len(t)       # most of every pulse
    assert want.suppressed.sum() > 100                          # clicks in the dead time
    assert_tags_equal(tagger, got, want)


def test_line_rate_zero_loss(device, setup):
    """10^5 cycles, every channel at its maximum rate: one event per cycle, none lost."""
    tagger, frontend, settings = setup
    rng = np.random.default_rng(22)
    t, ch = line_rate_times(device.model.cycle + 16, 100_000, rng)
    words = frontend.words(t, ch)
    device.feed(words, int(words.cycle[-1] - device.model.cycle) + 1, drain=True)
    got = decode_tags(device.read_stream())
    want = TaggerModel(CONFIG, settings).run(words)
    assert len(want) == len(t)
    assert np.array_equal(got["timestamp"], want.timestamp)
    assert sum(tagger.counters(c).dropped for c in range(CONFIG.n_channels)) == 0
    tagger.check_overflow()


def test_backpressure_beyond_line_rate_counts_exact_drops(device, setup):
    tagger, frontend, settings = setup
    rng = np.random.default_rng(23)
    t, ch = line_rate_times(device.model.cycle + 16, 20_000, rng)
    words = frontend.words(t, ch)
    device.feed(words, int(words.cycle[-1] - device.model.cycle) + 1, ready_percent=60,
                seed=5, drain=True)
    got = decode_tags(device.read_stream())
    want = TaggerModel(CONFIG, settings).run(words)
    dropped = {c: tagger.counters(c).dropped for c in range(CONFIG.n_channels)}
    assert sum(dropped.values()) > 0
    for c in range(CONFIG.n_channels):
        assert np.sum(got["channel"] == c) + dropped[c] == np.sum(want.channel == c)
    with pytest.raises(TaggerOverflow, match="dropped events per channel"):
        tagger.check_overflow()
    assert tagger.overflow_flags() == 0                 # cleared by the check


def test_host_package_imports_no_gateware_tools():
    code = ("import sys, tbqkd.host.device, tbqkd.host.tagger, tbqkd.host.tdc_calibration;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('amaranth', 'cocotb')];"
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_regmap_of_device_is_the_table(device):
    assert device.regmap.hash == core_regmap(CONFIG).hash == device.read("ID")
