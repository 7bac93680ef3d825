# ZCU104 (xczu7ev-ffvc1156-2-e), role bob: pins of the receiver core's board ports.
# Port names are the block design's external ports; `python -m tbqkd.deploy check` fails if
# they and this file disagree.
#
# NOT VERIFIED ON A BOARD: package pins follow the ZCU104 user guide (UG1267) PMOD0 (J55) and
# PMOD1 (J87) tables, 3.3 V HD banks. Check them against UG1267 and the board's master XDC
# before connecting anything; detector pulses need a comparator or level translator to 3.3 V.

# Reference clock on PMOD0 pin 1. PMOD pins are not global-clock pins on this board, so the
# MMCM input takes general routing (more jitter); prefer an FMC clock pin on a real setup.
set_property -dict {PACKAGE_PIN G8 IOSTANDARD LVCMOS33} [get_ports ref_clk]
set_property CLOCK_DEDICATED_ROUTE FALSE [get_nets -hierarchical -filter {NAME =~ */clock_wizard_0/inst/clk_in1_*}]

# Detector and reference-pulse inputs: PMOD0 pins 2-4, 7-8.
set_property -dict {PACKAGE_PIN H8 IOSTANDARD LVCMOS33} [get_ports ch0_in]
set_property -dict {PACKAGE_PIN G7 IOSTANDARD LVCMOS33} [get_ports ch1_in]
set_property -dict {PACKAGE_PIN H7 IOSTANDARD LVCMOS33} [get_ports ch2_in]
set_property -dict {PACKAGE_PIN G6 IOSTANDARD LVCMOS33} [get_ports ch3_in]
set_property -dict {PACKAGE_PIN H6 IOSTANDARD LVCMOS33} [get_ports ch4_in]
set_false_path -from [get_ports {ch0_in ch1_in ch2_in ch3_in ch4_in}]

# SPI DAC of the phase shifter: PMOD1 pins 1-4.
set_property -dict {PACKAGE_PIN J9 IOSTANDARD LVCMOS33 SLEW SLOW DRIVE 8} [get_ports dac_sclk]
set_property -dict {PACKAGE_PIN K9 IOSTANDARD LVCMOS33 SLEW SLOW DRIVE 8} [get_ports dac_mosi]
set_property -dict {PACKAGE_PIN K8 IOSTANDARD LVCMOS33 SLEW SLOW DRIVE 8} [get_ports dac_sync_n]
set_property -dict {PACKAGE_PIN L8 IOSTANDARD LVCMOS33 SLEW SLOW DRIVE 8} [get_ports dac_ldac_n]
set_false_path -to [get_ports {dac_sclk dac_mosi dac_sync_n dac_ldac_n}]
