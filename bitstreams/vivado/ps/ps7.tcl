# Zynq-7000 processing system (PYNQ-Z2): the board preset (DDR, MIO, clocks) from the board
# files, M_AXI_GP0 for the registers, S_AXI_HP0 (64 bits) for the DMAs, IRQ_F2P for the core.

# Creates the PS and returns a dict of the names the block design needs.
proc tbqkd_ps_create {} {
    set ps [create_bd_cell -type ip -vlnv [tbqkd_ipdef processing_system7] processing_system7_0]
    apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
        -config {make_external "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"} \
        [get_bd_cells processing_system7_0]
    set_property -dict [list \
        CONFIG.PCW_USE_M_AXI_GP0 1 \
        CONFIG.PCW_USE_S_AXI_HP0 1 \
        CONFIG.PCW_S_AXI_HP0_DATA_WIDTH 64 \
        CONFIG.PCW_USE_FABRIC_INTERRUPT 1 \
        CONFIG.PCW_IRQ_F2P_INTR 1 \
        CONFIG.PCW_EN_CLK0_PORT 1 \
        CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ 100 \
        CONFIG.PCW_EN_RST0_PORT 1 \
    ] [get_bd_cells processing_system7_0]
    return [dict create \
        cell processing_system7_0 \
        master_intf processing_system7_0/M_AXI_GP0 master_clk processing_system7_0/M_AXI_GP0_ACLK \
        slave_intf processing_system7_0/S_AXI_HP0 slave_clk processing_system7_0/S_AXI_HP0_ACLK \
        irq processing_system7_0/IRQ_F2P \
        fclk processing_system7_0/FCLK_CLK0 fresetn processing_system7_0/FCLK_RESET0_N \
        data_space processing_system7_0/Data \
        external {FIXED_IO DDR}]
}
