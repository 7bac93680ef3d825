# Zynq UltraScale+ processing system (ZCU104): the board preset from the board files,
# M_AXI_HPM0_FPD for the registers, S_AXI_HP0_FPD (128 bits) for the DMAs, pl_ps_irq0.

proc tbqkd_ps_create {} {
    set ps [create_bd_cell -type ip -vlnv [tbqkd_ipdef zynq_ultra_ps_e] zynq_ultra_ps_e_0]
    apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e \
        -config {apply_board_preset "1"} [get_bd_cells zynq_ultra_ps_e_0]
    set_property -dict [list \
        CONFIG.PSU__USE__M_AXI_GP0 1 \
        CONFIG.PSU__USE__M_AXI_GP1 0 \
        CONFIG.PSU__USE__M_AXI_GP2 0 \
        CONFIG.PSU__USE__S_AXI_GP2 1 \
        CONFIG.PSU__SAXIGP2__DATA_WIDTH 128 \
        CONFIG.PSU__USE__IRQ0 1 \
        CONFIG.PSU__FPGA_PL0_ENABLE 1 \
        CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ 100 \
    ] [get_bd_cells zynq_ultra_ps_e_0]
    return [dict create \
        cell zynq_ultra_ps_e_0 \
        master_intf zynq_ultra_ps_e_0/M_AXI_HPM0_FPD master_clk zynq_ultra_ps_e_0/maxihpm0_fpd_aclk \
        slave_intf zynq_ultra_ps_e_0/S_AXI_HP0_FPD slave_clk zynq_ultra_ps_e_0/saxihp0_fpd_aclk \
        irq zynq_ultra_ps_e_0/pl_ps_irq0 \
        fclk zynq_ultra_ps_e_0/pl_clk0 fresetn zynq_ultra_ps_e_0/pl_resetn0 \
        data_space zynq_ultra_ps_e_0/Data \
        external {}]
}
