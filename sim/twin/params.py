"""Scenario parameters of the twin: one dataclass per part of the link, units in every name.

A scenario is a TOML file (``sim/scenarios/NAME.toml``) with one table per dataclass below
(``[source]``, ``[alice]``, ``[channel]``, ``[bob]``, ``[drift]``, ``[actuator]``,
``[detectors]``, ``[reference]``, ``[eve]``, ``[analysis]``). Every key of a table is a field of
the matching dataclass; unknown keys are an error, missing keys take the defaults written here,
or those of the scenario named by a top-level ``base = "NAME"`` key.

Channel numbering (the one place it is defined, see :class:`Channel`):

=====  ==========  ===========================================================
  0    ``REF``     Alice's clock reference (one pulse every ``divider`` slots)
  1    ``Z``       Bob's Z-arm detector: arrival time, early or late bin
  2    ``X_PLUS``  Bob's X-arm detector on the constructive output (|+> at phase 0)
  3    ``X_MINUS`` Bob's X-arm detector on the destructive output
=====  ==========  ===========================================================

Time: slot ``k`` is emitted at ``k * period`` ps with ``period = 1e12 / pulse_rate_hz`` held as an
exact rational (:meth:`Scenario.period_ps_fraction`); slot times are computed in exact integer
arithmetic (see :func:`tbqkd.sim.twin.source.slot_time_ps`), so a six-hour run accumulates no
rounding error.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (the PYNQ image)
    import tomli as tomllib

__all__ = ["Channel", "PHOTON_CHANNELS", "State", "ScenarioError", "SourceParams", "AliceParams",
           "ChannelParams", "BobParams", "DriftParams", "ActuatorParams", "DetectorParams",
           "ReferenceParams", "EveParams", "AnalysisParams", "Scenario", "scenario_dir",
           "list_scenarios"]


class Channel(enum.IntEnum):
    """Detector channel numbers used in every event stream of the twin."""

    REF     = 0
    Z       = 1
    X_PLUS  = 2
    X_MINUS = 3


#: The three single-photon detectors, in channel order.
PHOTON_CHANNELS = (Channel.Z, Channel.X_PLUS, Channel.X_MINUS)


class State(enum.IntEnum):
    """Alice's state codes (``alice_state`` truth arrays use these; -1 means no state)."""

    EARLY = 0   # |e>, Z basis, bit 0
    LATE  = 1   # |l>, Z basis, bit 1
    PLUS  = 2   # |+> = (|e> + |l>)/sqrt2, X basis, bit 0
    MINUS = 3   # |-> = (|e> - |l>)/sqrt2, X basis, bit 1 (four-state protocol only)


class ScenarioError(ValueError):
    """A scenario file or override is malformed or physically inconsistent."""


@dataclass(frozen=True)
class SourceParams:
    """Pulsed quantum-dot source, as seen at the entrance of the link fibre."""

    pulse_rate_hz: float = 75.947e6        # excitation pulse (slot) rate
    efficiency: float = 0.1                # mean photons entering the fibre per pulse (end to end)
    lifetime_ps: float = 1018.0            # radiative lifetime (exponential emission delay)
    excitation_jitter_ps: float = 10.0     # rms Gaussian jitter of the emission start
    g2: float = 0.0085                     # second-order correlation g2(0) (multi-photon emission)
    blinking: bool = False                 # telegraph on/off blinking of the dot
    blink_on_mean_s: float = 1e-3          # mean duration of an "on" period
    blink_off_mean_s: float = 1e-4         # mean duration of an "off" period

    def validate(self) -> None:
        """Raise :class:`ScenarioError` if a value is out of its physical range."""
        _positive("source.pulse_rate_hz", self.pulse_rate_hz)
        _probability("source.efficiency", self.efficiency)
        _positive("source.lifetime_ps", self.lifetime_ps)
        _non_negative("source.excitation_jitter_ps", self.excitation_jitter_ps)
        _probability("source.g2", self.g2)
        if self.two_photon_probability() > self.efficiency / 2:
            raise ScenarioError("source: g2 * efficiency too large for a 0/1/2-photon model")
        _positive("source.blink_on_mean_s", self.blink_on_mean_s)
        _positive("source.blink_off_mean_s", self.blink_off_mean_s)

    def two_photon_probability(self) -> float:
        """Probability of two photons in the fibre per pulse: ``g2 * efficiency**2 / 2``."""
        return self.g2 * self.efficiency ** 2 / 2

    def one_photon_probability(self) -> float:
        """Probability of exactly one photon per pulse, so that the mean is ``efficiency``."""
        return self.efficiency - 2 * self.two_photon_probability()

    def on_fraction(self) -> float:
        """Long-run fraction of time the dot is "on" (1 without blinking)."""
        if not self.blinking:
            return 1.0
        return self.blink_on_mean_s / (self.blink_on_mean_s + self.blink_off_mean_s)


@dataclass(frozen=True)
class AliceParams:
    """Alice's state choice and encoder imperfections."""

    protocol: str = "three-state"          # "three-state" (|e>,|l>,|+>) or "four-state" (+|->)
    p_early: float = 0.4                   # probability of |e> per slot
    p_late: float = 0.4                    # probability of |l> per slot
    p_plus: float = 0.2                    # probability of |+> per slot
    p_minus: float = 0.0                   # probability of |-> per slot (four-state only)
    extinction_db: float = 25.0            # early/late extinction of the Z states
    x_phase_error_rad: float = 0.0         # phase error of the X states (added to Bob's phase)
    time_bin_separation_ps: float = 4000.0  # delay between the early and the late bin

    def validate(self) -> None:
        """Raise :class:`ScenarioError` if the probabilities or the protocol are inconsistent."""
        if self.protocol not in ("three-state", "four-state"):
            raise ScenarioError(f"alice.protocol must be 'three-state' or 'four-state', "
                                f"not {self.protocol!r}")
        for name in ("p_early", "p_late", "p_plus", "p_minus"):
            _probability(f"alice.{name}", getattr(self, name))
        if self.protocol == "three-state" and self.p_minus != 0:
            raise ScenarioError("alice.p_minus must be 0 in the three-state protocol")
        if not math.isclose(sum(self.state_probabilities()), 1.0, abs_tol=1e-9):
            raise ScenarioError("alice state probabilities must sum to 1")
        _non_negative("alice.extinction_db", self.extinction_db)
        _positive("alice.time_bin_separation_ps", self.time_bin_separation_ps)

    def state_probabilities(self) -> tuple[float, float, float, float]:
        """Probabilities of the states in :class:`State` order."""
        return (self.p_early, self.p_late, self.p_plus, self.p_minus)

    def leak(self) -> float:
        """Fraction of a Z state's intensity in the wrong bin (``10**(-extinction_db/10)``)."""
        return 10 ** (-self.extinction_db / 10)


@dataclass(frozen=True)
class ChannelParams:
    """The fibre from Alice to Bob."""

    distance_km: float = 120.0             # fibre length
    loss_db_per_km: float = 0.1956         # attenuation
    insertion_loss_db: float = 0.5         # connectors and splices along the link
    group_index: float = 1.4682            # sets the propagation delay (SMF-28 at 1550 nm)

    def validate(self) -> None:
        """Raise :class:`ScenarioError` on negative lengths or losses."""
        _non_negative("channel.distance_km", self.distance_km)
        _non_negative("channel.loss_db_per_km", self.loss_db_per_km)
        _non_negative("channel.insertion_loss_db", self.insertion_loss_db)
        _positive("channel.group_index", self.group_index)

    def loss_db(self) -> float:
        """Total channel loss in dB."""
        return self.distance_km * self.loss_db_per_km + self.insertion_loss_db

    def transmittance(self) -> float:
        """Probability that a photon crosses the fibre."""
        return 10 ** (-self.loss_db() / 10)

    def delay_ps(self) -> float:
        """Propagation delay of the fibre."""
        return self.distance_km * 1e3 * self.group_index / 299_792_458.0 * 1e12


@dataclass(frozen=True)
class BobParams:
    """Bob's passive basis split and unbalanced interferometer."""

    z_fraction: float = 0.5                # probability that a photon goes to the Z arm
    insertion_loss_db: float = 1.5         # Bob's optics before the detectors (both arms)
    visibility: float = 0.95               # interference visibility of the X arm

    def validate(self) -> None:
        """Raise :class:`ScenarioError` on out-of-range values."""
        _probability("bob.z_fraction", self.z_fraction)
        _non_negative("bob.insertion_loss_db", self.insertion_loss_db)
        _probability("bob.visibility", self.visibility)

    def transmittance(self) -> float:
        """Probability that a photon crosses Bob's optics."""
        return 10 ** (-self.insertion_loss_db / 10)


@dataclass(frozen=True)
class DriftParams:
    """Drift of the interferometer phase: a random walk plus a slow sinusoid."""

    random_walk_rad_per_sqrt_s: float = 0.05  # rms phase step over one second
    sine_amplitude_rad: float = 0.5        # amplitude of the slow oscillation
    sine_period_s: float = 1800.0          # its period
    grid_step_s: float = 0.01              # time step of the drift process (linear in between)
    initial_phase_rad: float = 0.0         # drift at t = 0

    def validate(self) -> None:
        """Raise :class:`ScenarioError` on negative rates or a non-positive step."""
        _non_negative("drift.random_walk_rad_per_sqrt_s", self.random_walk_rad_per_sqrt_s)
        _non_negative("drift.sine_amplitude_rad", self.sine_amplitude_rad)
        _positive("drift.sine_period_s", self.sine_period_s)
        _positive("drift.grid_step_s", self.grid_step_s)


@dataclass(frozen=True)
class ActuatorParams:
    """Bob's phase shifter: DAC code -> phase, ``offset_rad + code * range_rad / (2**bits - 1)``."""

    dac_bits: int = 16                     # width of the DAC code
    range_rad: float = 4 * math.pi         # phase at full scale minus phase at code 0
    offset_rad: float = 0.0                # phase at code 0
    initial_code: int = 0                  # code before the host sets one

    def validate(self) -> None:
        """Raise :class:`ScenarioError` on a bad width or initial code."""
        if not 1 <= self.dac_bits <= 32:
            raise ScenarioError("actuator.dac_bits must be in 1..32")
        if not 0 <= self.initial_code < 2 ** self.dac_bits:
            raise ScenarioError("actuator.initial_code out of the DAC range")

    def phase_rad(self, code: int) -> float:
        """Phase of the shifter at DAC ``code``.

        Raises
        ------
        ScenarioError
            If ``code`` is outside ``0 .. 2**dac_bits - 1``.
        """
        if not 0 <= code < 2 ** self.dac_bits:
            raise ScenarioError(f"DAC code {code} outside 0..{2 ** self.dac_bits - 1}")
        return self.offset_rad + code * self.range_rad / (2 ** self.dac_bits - 1)


@dataclass(frozen=True)
class DetectorParams:
    """SNSPDs (channels Z, X+, X-): the same model, per-channel values where it matters."""

    efficiency: tuple[float, float, float] = (0.74, 0.74, 0.74)   # Z, X+, X-
    dark_count_hz: tuple[float, float, float] = (100.0, 100.0, 100.0)
    jitter_fwhm_ps: float = 50.0           # Gaussian core of the timing jitter
    jitter_tail_fraction: float = 0.0      # fraction of clicks with an extra exponential delay
    jitter_tail_ps: float = 100.0          # mean of that extra delay
    dead_time_ps: float = 40_000.0         # applied per detector to every click, darks included
    afterpulse_probability: float = 0.0    # per click, one afterpulse after the dead time
    afterpulse_delay_ps: float = 20_000.0  # mean extra delay of an afterpulse after dead time
    delay_ps: tuple[float, float, float] = (0.0, 0.0, 0.0)  # electrical delay per channel

    def validate(self) -> None:
        """Raise :class:`ScenarioError` on out-of-range values or wrong tuple lengths."""
        for name in ("efficiency", "dark_count_hz", "delay_ps"):
            if len(getattr(self, name)) != 3:
                raise ScenarioError(f"detectors.{name} needs 3 values (Z, X+, X-)")
        for value in self.efficiency:
            _probability("detectors.efficiency", value)
        if max(self.efficiency) <= 0:
            raise ScenarioError("detectors.efficiency: at least one detector must see photons")
        for value in self.dark_count_hz:
            _non_negative("detectors.dark_count_hz", value)
        _non_negative("detectors.jitter_fwhm_ps", self.jitter_fwhm_ps)
        _probability("detectors.jitter_tail_fraction", self.jitter_tail_fraction)
        _positive("detectors.jitter_tail_ps", self.jitter_tail_ps)
        _non_negative("detectors.dead_time_ps", self.dead_time_ps)
        _probability("detectors.afterpulse_probability", self.afterpulse_probability)
        _positive("detectors.afterpulse_delay_ps", self.afterpulse_delay_ps)

    def jitter_sigma_ps(self) -> float:
        """Standard deviation of the Gaussian jitter core."""
        return self.jitter_fwhm_ps / (2 * math.sqrt(2 * math.log(2)))


@dataclass(frozen=True)
class ReferenceParams:
    """Alice's clock reference, divided, sent to Bob on its own fibre or wavelength."""

    divider: int = 65536                   # one reference pulse every `divider` slots
    jitter_ps: float = 10.0                # rms Gaussian jitter of a reference pulse
    delay_ps: float = 0.0                  # extra delay after the fibre, at Bob's input
    dead_time_ps: float = 0.0              # reference receiver dead time

    def validate(self) -> None:
        """Raise :class:`ScenarioError` on a non-positive divider or negative values."""
        if self.divider < 1:
            raise ScenarioError("reference.divider must be >= 1")
        _non_negative("reference.jitter_ps", self.jitter_ps)
        _non_negative("reference.dead_time_ps", self.dead_time_ps)


@dataclass(frozen=True)
class EveParams:
    """Eavesdroppers; all off by default."""

    intercept_resend_fraction: float = 0.0  # fraction of slots Eve measures and resends
    photon_number_splitting: bool = False   # PNS on multi-photon pulses, singles blocked
    blinding: bool = False                   # Eve blinds Bob's SNSPDs and forces the clicks

    def validate(self) -> None:
        """Raise :class:`ScenarioError` if more than one attack is on at a time."""
        _probability("eve.intercept_resend_fraction", self.intercept_resend_fraction)
        active = [self.intercept_resend_fraction > 0, self.photon_number_splitting,
                  self.blinding]
        if sum(active) > 1:
            raise ScenarioError("eve: at most one attack at a time")

    def active(self) -> bool:
        """Whether any attack is on."""
        return (self.intercept_resend_fraction > 0 or self.photon_number_splitting
                or self.blinding)


@dataclass(frozen=True)
class AnalysisParams:
    """Gates and finite-key settings used by the analytic model (not by the Monte Carlo)."""

    gate_start_ps: float = -150.0          # gate opening relative to the nominal bin time
    gate_width_ps: float = 2000.0          # gate length
    block_duration_s: float = 21_600.0     # finite-key block: the six-hour run
    error_correction_efficiency: float = 1.1  # f in leak_EC = f * h(e_Z)
    epsilon_security: float = 1e-10        # secrecy parameter of the finite-key bound
    epsilon_correctness: float = 1e-15     # correctness parameter
    target_secret_rate_bps: float = 15.0   # what the calibration aims at
    lock_phase_error_rad: float = 0.15     # phase offset of the locked loop (its dither)

    def validate(self) -> None:
        """Raise :class:`ScenarioError` on a non-positive gate or block."""
        _positive("analysis.gate_width_ps", self.gate_width_ps)
        _positive("analysis.block_duration_s", self.block_duration_s)
        _positive("analysis.error_correction_efficiency", self.error_correction_efficiency)
        if not 0 <= self.lock_phase_error_rad < math.pi:
            raise ScenarioError("analysis.lock_phase_error_rad must be in [0, pi), got "
                                f"{self.lock_phase_error_rad}")


_SECTIONS = {
    "source": SourceParams, "alice": AliceParams, "channel": ChannelParams, "bob": BobParams,
    "drift": DriftParams, "actuator": ActuatorParams, "detectors": DetectorParams,
    "reference": ReferenceParams, "eve": EveParams, "analysis": AnalysisParams,
}


def scenario_dir() -> Path:
    """Folder of the built-in scenarios (``sim/scenarios``)."""
    return Path(__file__).resolve().parent.parent / "scenarios"


def list_scenarios() -> list[str]:
    """Names of the built-in scenarios."""
    return sorted(path.stem for path in scenario_dir().glob("*.toml"))


@dataclass(frozen=True)
class Scenario:
    """A complete description of a link: every part, plus a name and a description."""

    name: str = "default"
    description: str = ""
    source: SourceParams = field(default_factory=SourceParams)
    alice: AliceParams = field(default_factory=AliceParams)
    channel: ChannelParams = field(default_factory=ChannelParams)
    bob: BobParams = field(default_factory=BobParams)
    drift: DriftParams = field(default_factory=DriftParams)
    actuator: ActuatorParams = field(default_factory=ActuatorParams)
    detectors: DetectorParams = field(default_factory=DetectorParams)
    reference: ReferenceParams = field(default_factory=ReferenceParams)
    eve: EveParams = field(default_factory=EveParams)
    analysis: AnalysisParams = field(default_factory=AnalysisParams)

    def __post_init__(self) -> None:
        for section in _SECTIONS:
            getattr(self, section).validate()
        if self.time_span_ps() >= self.period_ps():
            raise ScenarioError("alice.time_bin_separation_ps too large: the X arm's last peak "
                                "(two separations after the first) must lie inside the period")

    @classmethod
    def load(cls, name_or_path: str | Path, **overrides: Any) -> Scenario:
        """Load a built-in scenario by name, or a TOML file by path, then apply overrides.

        Overrides are ``section__key=value`` (e.g. ``channel__distance_km=140``) or, when the
        key name is unique across sections, just ``key=value`` (``distance_km=140``).

        Raises
        ------
        ScenarioError
            If the file does not exist, a key is unknown or ambiguous, or a value is invalid.
        """
        path = Path(name_or_path)
        if path.suffix != ".toml":
            path = scenario_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            raise ScenarioError(f"no scenario {name_or_path!r} (built-in: "
                                f"{', '.join(list_scenarios())})")
        with path.open("rb") as file:
            data = tomllib.load(file)
        return cls.from_dict(data, default_name=path.stem).with_overrides(**overrides)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, default_name: str = "default") -> Scenario:
        """Build a scenario from nested dicts (the TOML layout).

        Raises
        ------
        ScenarioError
            On an unknown section or key.
        """
        data = dict(data)
        base_name = data.pop("base", None)
        kwargs: dict[str, Any] = {"name": data.pop("name", default_name),
                                  "description": data.pop("description", "")}
        data.pop("calibration", None)  # documentation only
        base = cls.load(base_name) if base_name is not None else None
        for section, values in data.items():
            if section not in _SECTIONS:
                raise ScenarioError(f"unknown scenario section [{section}]")
            if base is not None:
                values = {**dataclasses.asdict(getattr(base, section)), **values}
            kwargs[section] = _build(_SECTIONS[section], section, values)
        if base is not None:
            kwargs = {**{s: getattr(base, s) for s in _SECTIONS}, **kwargs}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The scenario as nested plain dicts (JSON-serialisable)."""
        return dataclasses.asdict(self)

    def with_overrides(self, **overrides: Any) -> Scenario:
        """A copy with some values changed (see :meth:`load` for the key syntax).

        Raises
        ------
        ScenarioError
            If a key is unknown or ambiguous, or a value is invalid.
        """
        changes: dict[str, dict[str, Any]] = {}
        for key, value in overrides.items():
            if "__" in key:
                section, name = key.split("__", 1)
            else:
                owners = [s for s, kind in _SECTIONS.items()
                          if key in {f.name for f in dataclasses.fields(kind)}]
                if len(owners) != 1:
                    raise ScenarioError(f"override {key!r} is "
                                        f"{'ambiguous' if owners else 'unknown'}; "
                                        f"use section__{key}")
                section, name = owners[0], key
            if section not in _SECTIONS:
                raise ScenarioError(f"unknown scenario section {section!r}")
            changes.setdefault(section, {})[name] = value
        kwargs = {}
        for section, values in changes.items():
            merged = {**dataclasses.asdict(getattr(self, section)), **values}
            kwargs[section] = _build(_SECTIONS[section], section, merged)
        return dataclasses.replace(self, **kwargs)

    def period_ps_fraction(self) -> Fraction:
        """The slot period in ps as an exact rational (``10**12 / pulse_rate_hz``)."""
        return Fraction(10 ** 12) / Fraction(repr(float(self.source.pulse_rate_hz)))

    def period_ps(self) -> float:
        """The slot period in ps (float, for analysis)."""
        return float(self.period_ps_fraction())

    def time_span_ps(self) -> float:
        """Time from a slot's first possible peak to its last (two bin separations)."""
        return 2 * self.alice.time_bin_separation_ps


def _build(kind: type, section: str, values: dict[str, Any]) -> Any:
    known = {f.name: f for f in dataclasses.fields(kind)}
    unknown = set(values) - set(known)
    if unknown:
        raise ScenarioError(f"unknown key(s) in [{section}]: {', '.join(sorted(unknown))}")
    converted = {}
    for name, value in values.items():
        default = getattr(kind(), name)
        if isinstance(default, tuple):
            value = tuple(float(v) for v in value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ScenarioError(f"{section}.{name} must be true or false")
        elif isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ScenarioError(f"{section}.{name} must be an integer")
            value = int(value)
        elif isinstance(default, float):
            value = float(value)
        converted[name] = value
    return kind(**converted)


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ScenarioError(f"{name} must be > 0, not {value}")


def _non_negative(name: str, value: float) -> None:
    if not value >= 0:
        raise ScenarioError(f"{name} must be >= 0, not {value}")


def _probability(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ScenarioError(f"{name} must be in [0, 1], not {value}")
