# ZCU104 (xczu7ev-ffvc1156-2-e), role alice: pins of the transmitter core's board ports.
# Port names are the block design's external ports; `python -m tbqkd.deploy check --role
# alice` fails if they and this file disagree.
#
# NOT VERIFIED ON A BOARD: package pins follow the ZCU104 user guide (UG1267) PMOD0 (J55)
# table, 3.3 V HD bank. Check them against UG1267 and the board's master XDC before connecting
# anything. The outputs are 3.3 V LVCMOS: the modulator drivers need their own amplifiers.

# Pulse clock on PMOD0 pin 1, as for bob. PMOD pins are not global-clock pins on this board,
# so the MMCM input takes general routing (more jitter); prefer an FMC clock pin on a real
# setup.
set_property -dict {PACKAGE_PIN G8 IOSTANDARD LVCMOS33} [get_ports ref_clk]
set_property CLOCK_DEDICATED_ROUTE FALSE [get_nets -hierarchical -filter {NAME =~ */clock_wizard_0/inst/clk_in1_*}]

# Modulator levels of the slot's state (hdl/tx_records.py STATE_PINS): PMOD0 pins 2-4.
#   mod_early: intensity modulator, early time bin on (|e> and the X states)
#   mod_late:  intensity modulator, late time bin on (|l> and the X states)
#   mod_phase: phase modulator, pi between the bins (|->, four-state protocol only)
set_property -dict {PACKAGE_PIN H8 IOSTANDARD LVCMOS33 SLEW FAST DRIVE 12} [get_ports mod_early]
set_property -dict {PACKAGE_PIN G7 IOSTANDARD LVCMOS33 SLEW FAST DRIVE 12} [get_ports mod_late]
set_property -dict {PACKAGE_PIN H7 IOSTANDARD LVCMOS33 SLEW FAST DRIVE 12} [get_ports mod_phase]

# Reference pulse (start of every REF_DIVIDER-th slot), to Bob's channel 0: PMOD0 pin 7.
set_property -dict {PACKAGE_PIN G6 IOSTANDARD LVCMOS33 SLEW FAST DRIVE 12} [get_ports reference]

# Output flip-flops in the I/O blocks (equal, fixed clock-to-pin delays); the timing against
# the optical pulses is calibrated (MOD_DELAY, MOD_FINE_DELAY), not set by static timing.
set_property IOB TRUE [get_ports {mod_early mod_late mod_phase reference}]
set_false_path -to [get_ports {mod_early mod_late mod_phase reference}]
