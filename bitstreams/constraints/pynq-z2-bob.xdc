# PYNQ-Z2 (xc7z020clg400-1), role bob: pins of the receiver core's board ports.
# Port names are the block design's external ports (tbqkd(pins) of the generated params.tcl,
# plus ref_clk); `python -m tbqkd.deploy check` fails if they and this file disagree.
#
# NOT VERIFIED ON A BOARD: package pins follow the PYNQ-Z2 master XDC (PMOD JA/JB, bank 34,
# 3.3 V). Check them against the PYNQ-Z2 schematic before connecting anything. PMOD inputs are
# LVCMOS33: detector (SNSPD) and reference pulses need a comparator or level translator to
# 3.3 V LVCMOS; never connect them directly.

# Reference clock (lab reference or Alice's clock, tbqkd(ref_clk_mhz), 10 MHz by default) on a
# clock-capable pin: PMOD JA pin 7 (ja[4], IO_L12P_T1_MRCC_34). It feeds the MMCM that makes
# the core's fabric clock. Its period constraint comes from the clocking wizard.
set_property -dict {PACKAGE_PIN U18 IOSTANDARD LVCMOS33} [get_ports ref_clk]

# Detector and reference-pulse inputs (channel 0 is Alice's reference pulses by convention):
# PMOD JA pins 1-4 and 9. The delay-line front end samples them asynchronously.
set_property -dict {PACKAGE_PIN Y18 IOSTANDARD LVCMOS33} [get_ports ch0_in]
set_property -dict {PACKAGE_PIN Y19 IOSTANDARD LVCMOS33} [get_ports ch1_in]
set_property -dict {PACKAGE_PIN Y16 IOSTANDARD LVCMOS33} [get_ports ch2_in]
set_property -dict {PACKAGE_PIN Y17 IOSTANDARD LVCMOS33} [get_ports ch3_in]
set_property -dict {PACKAGE_PIN W18 IOSTANDARD LVCMOS33} [get_ports ch4_in]
set_false_path -from [get_ports {ch0_in ch1_in ch2_in ch3_in ch4_in}]

# SPI DAC of the phase shifter (hdl/spi_dac.py): PMOD JB pins 1-4.
set_property -dict {PACKAGE_PIN W14 IOSTANDARD LVCMOS33 SLEW SLOW DRIVE 8} [get_ports dac_sclk]
set_property -dict {PACKAGE_PIN Y14 IOSTANDARD LVCMOS33 SLEW SLOW DRIVE 8} [get_ports dac_mosi]
set_property -dict {PACKAGE_PIN T11 IOSTANDARD LVCMOS33 SLEW SLOW DRIVE 8} [get_ports dac_sync_n]
set_property -dict {PACKAGE_PIN T10 IOSTANDARD LVCMOS33 SLEW SLOW DRIVE 8} [get_ports dac_ldac_n]
# The SPI clock is a divided register-driven output (DAC_CONFIG.clock_div >= 1): no I/O timing.
set_false_path -to [get_ports {dac_sclk dac_mosi dac_sync_n dac_ldac_n}]
