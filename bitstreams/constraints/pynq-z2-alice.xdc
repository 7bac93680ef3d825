# PYNQ-Z2 (xc7z020clg400-1), role alice: pins of the transmitter core's board ports.
# Port names are the block design's external ports (tbqkd(pins) of the generated params.tcl,
# plus ref_clk); `python -m tbqkd.deploy check --role alice` fails if they and this file
# disagree.
#
# NOT VERIFIED ON A BOARD: package pins follow the PYNQ-Z2 master XDC (PMOD JA/JB, bank 34,
# 3.3 V). Check them against the PYNQ-Z2 schematic before connecting anything. The outputs are
# 3.3 V LVCMOS: the modulator drivers (intensity and phase modulators of the time-bin encoder)
# need their own amplifiers; never drive a modulator directly from a PMOD pin.

# Pulse clock (the source's pulse clock or a lab reference, tbqkd(ref_clk_mhz), 10 MHz by
# default) on a clock-capable pin, as for bob: PMOD JA pin 7 (ja[4], IO_L12P_T1_MRCC_34). It
# feeds the MMCM that makes the core's fabric clock (k fabric clocks per slot, SLOT_DIVIDER).
# Its period constraint comes from the clocking wizard.
set_property -dict {PACKAGE_PIN U18 IOSTANDARD LVCMOS33} [get_ports ref_clk]

# Modulator levels of the slot's state (hdl/tx_records.py STATE_PINS), one fabric clock of
# resolution, inside the MOD_DELAY/MOD_WIDTH window of each slot: PMOD JA pins 1-3.
#   mod_early: intensity modulator, early time bin on (|e> and the X states)
#   mod_late:  intensity modulator, late time bin on (|l> and the X states)
#   mod_phase: phase modulator, pi between the bins (|->, four-state protocol only)
set_property -dict {PACKAGE_PIN Y18 IOSTANDARD LVCMOS33 SLEW FAST DRIVE 12} [get_ports mod_early]
set_property -dict {PACKAGE_PIN Y19 IOSTANDARD LVCMOS33 SLEW FAST DRIVE 12} [get_ports mod_late]
set_property -dict {PACKAGE_PIN Y16 IOSTANDARD LVCMOS33 SLEW FAST DRIVE 12} [get_ports mod_phase]

# Reference pulse (one fabric clock at the start of every REF_DIVIDER-th slot), to Bob's
# channel 0 through the sync link: PMOD JB pin 1.
set_property -dict {PACKAGE_PIN W14 IOSTANDARD LVCMOS33 SLEW FAST DRIVE 12} [get_ports reference]

# The four outputs leave the core from flip-flops that drive nothing else: pack them into the
# output registers of the I/O blocks, so that their clock-to-pin delays are equal and fixed.
set_property IOB TRUE [get_ports {mod_early mod_late mod_phase reference}]
# Their timing against the optical pulses is calibrated (MOD_DELAY, MOD_FINE_DELAY and the
# fibre), not set by static timing: no output delay constraint.
set_false_path -to [get_ports {mod_early mod_late mod_phase reference}]
