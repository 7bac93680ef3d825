# The project and the block design around the core:
#
#   ref_clk ─▶ MMCM (clk_wiz) ─▶ aclk (core, DMAs, interconnects, PS AXI ports)
#              locked ─▶ proc_sys_reset ◀─ PS fabric reset
#   PS master ─▶ AXI interconnect ─▶ core s_axi, every DMA's S_AXI_LITE
#   core m_axis* ─▶ AXI DMA S2MM ──────────────────┐
#   core s_axis* ◀─ AXIS data FIFO ◀─ AXI DMA MM2S ┴▶ AXI interconnect ─▶ PS HP slave (DDR)
#   core irq ─▶ xlconcat ─▶ PS interrupt          core 1-bit pins ─▶ board pins (XDC)
#
# Names: the core is tbqkd(instance) (hdl/ip.py INSTANCE_NAME), each stream's DMA is the name
# in tbqkd(streams) (hdl/ip.py DMA_CHANNELS), as the host's PYNQ backend expects.
# Hazard: with clock_source "reference" every AXI port of the PS is clocked by the MMCM; if
# the reference input is absent the MMCM does not lock, the fabric is held in reset and a
# register access from the PS never completes (the board hangs). Connect the reference
# before loading the overlay, or build with clock_source "ps" for bring-up.

proc tbqkd_create_project {} {
    global tbqkd
    set name $tbqkd(name)
    create_project -force $name [file join $tbqkd(work_dir) project] -part $tbqkd(part)
    if {[llength [get_board_parts -quiet $tbqkd(board_part)]] == 0} {
        error "tbqkd: board files for $tbqkd(board_part) are not installed: install them\
               (Vivado: Tools > Vivado Store > Boards, or copy them into\
               <Vivado>/data/boards/board_files) and run again"
    }
    set_property board_part $tbqkd(board_part) [current_project]
    set_property ip_repo_paths [list $tbqkd(ip_repo)] [current_project]
    update_ip_catalog -rebuild
    add_files -fileset constrs_1 -norecurse $tbqkd(xdc)
}

proc tbqkd_build_block_design {} {
    global tbqkd
    set name $tbqkd(name)
    set core $tbqkd(instance)
    create_bd_design $name
    set ps [tbqkd_ps_create]

    # --- clock and reset -------------------------------------------------------------------
    set clk clock_wizard_0
    create_bd_cell -type ip -vlnv [tbqkd_ipdef clk_wiz] $clk
    set clk_config [list CONFIG.PRIMITIVE MMCM CONFIG.USE_RESET false CONFIG.USE_LOCKED true \
        CONFIG.CLKOUT1_REQUESTED_OUT_FREQ $tbqkd(aclk_mhz)]
    if {$tbqkd(serdes_port) ne ""} {
        # ISERDESE2 front end: the serial clock at 4 x aclk from the same MMCM, aligned.
        lappend clk_config CONFIG.CLKOUT2_USED true \
            CONFIG.CLKOUT2_REQUESTED_OUT_FREQ [expr {4.0 * $tbqkd(aclk_mhz)}]
    }
    if {$tbqkd(clock_source) eq "reference"} {
        lappend clk_config CONFIG.PRIM_SOURCE Single_ended_clock_capable_pin \
            CONFIG.PRIM_IN_FREQ $tbqkd(ref_clk_mhz)
        set_property -dict $clk_config [get_bd_cells $clk]
        create_bd_port -dir I -type clk -freq_hz [expr {round($tbqkd(ref_clk_mhz) * 1e6)}] ref_clk
        connect_bd_net [get_bd_ports ref_clk] [get_bd_pins $clk/clk_in1]
    } else {
        lappend clk_config CONFIG.PRIM_SOURCE No_buffer CONFIG.PRIM_IN_FREQ 100.000
        set_property -dict $clk_config [get_bd_cells $clk]
        connect_bd_net [get_bd_pins [dict get $ps fclk]] [get_bd_pins $clk/clk_in1]
    }
    set rst reset_0
    create_bd_cell -type ip -vlnv [tbqkd_ipdef proc_sys_reset] $rst
    connect_bd_net [get_bd_pins $clk/locked] [get_bd_pins $rst/dcm_locked]
    connect_bd_net [get_bd_pins [dict get $ps fresetn]] [get_bd_pins $rst/ext_reset_in]

    set clock_pins [list $clk/clk_out1 $rst/slowest_sync_clk [dict get $ps master_clk] \
        [dict get $ps slave_clk] $core/$tbqkd(clock_port)]
    set reset_pins [list $core/$tbqkd(reset_n_port)]

    # --- the core --------------------------------------------------------------------------
    create_bd_cell -type ip -vlnv $tbqkd(vlnv) $core
    if {$tbqkd(serdes_port) ne ""} {
        connect_bd_net [get_bd_pins $clk/clk_out2] [get_bd_pins $core/$tbqkd(serdes_port)]
    }
    foreach pin $tbqkd(pins) {
        lassign $pin port direction width
        set dir [expr {$direction eq "in" ? "I" : "O"}]
        if {$width == 1} {
            create_bd_port -dir $dir $port
        } else {
            create_bd_port -dir $dir -from [expr {$width - 1}] -to 0 $port
        }
        connect_bd_net [get_bd_ports $port] [get_bd_pins $core/$port]
    }

    # --- registers: PS master -> interconnect -> core and DMA control ports ------------------
    set n_streams [llength $tbqkd(streams)]
    set ctrl axi_control_0
    create_bd_cell -type ip -vlnv [tbqkd_ipdef axi_interconnect] $ctrl
    set_property -dict [list CONFIG.NUM_SI 1 CONFIG.NUM_MI [expr {$n_streams + 1}]] \
        [get_bd_cells $ctrl]
    connect_bd_intf_net [get_bd_intf_pins [dict get $ps master_intf]] \
        [get_bd_intf_pins $ctrl/S00_AXI]
    connect_bd_intf_net [get_bd_intf_pins $ctrl/M00_AXI] \
        [get_bd_intf_pins $core/$tbqkd(axi_lite)]
    lappend clock_pins $ctrl/ACLK $ctrl/S00_ACLK
    lappend reset_pins $ctrl/S00_ARESETN
    for {set i 0} {$i <= $n_streams} {incr i} {
        lappend clock_pins [format "%s/M%02d_ACLK" $ctrl $i]
        lappend reset_pins [format "%s/M%02d_ARESETN" $ctrl $i]
    }

    # --- streams: one AXI DMA each, simple mode ----------------------------------------------
    set mem axi_memory_0
    create_bd_cell -type ip -vlnv [tbqkd_ipdef axi_interconnect] $mem
    set_property -dict [list CONFIG.NUM_SI $n_streams CONFIG.NUM_MI 1] [get_bd_cells $mem]
    connect_bd_intf_net [get_bd_intf_pins $mem/M00_AXI] \
        [get_bd_intf_pins [dict get $ps slave_intf]]
    lappend clock_pins $mem/ACLK $mem/M00_ACLK
    lappend reset_pins $mem/M00_ARESETN
    set i 0
    foreach stream $tbqkd(streams) {
        lassign $stream prefix direction width dma fifo fifo_depth
        create_bd_cell -type ip -vlnv [tbqkd_ipdef axi_dma] $dma
        # The memory side must be at least as wide as the stream (one record per beat).
        set mm_width [expr {max(64, $width)}]
        set common [list CONFIG.c_include_sg 0 CONFIG.c_micro_dma 0 \
            CONFIG.c_sg_include_stscntrl_strm 0 CONFIG.c_sg_length_width $tbqkd(dma_length_width) \
            CONFIG.c_addr_width $tbqkd(dma_addr_width)]
        if {$direction eq "out"} {
            set_property -dict [concat $common [list CONFIG.c_include_mm2s 0 \
                CONFIG.c_include_s2mm 1 CONFIG.c_s_axis_s2mm_tdata_width $width \
                CONFIG.c_m_axi_s2mm_data_width $mm_width CONFIG.c_s2mm_burst_size 16]] \
                [get_bd_cells $dma]
            connect_bd_intf_net [get_bd_intf_pins $core/$prefix] \
                [get_bd_intf_pins $dma/S_AXIS_S2MM]
            connect_bd_intf_net [get_bd_intf_pins $dma/M_AXI_S2MM] \
                [get_bd_intf_pins [format "%s/S%02d_AXI" $mem $i]]
            lappend clock_pins $dma/m_axi_s2mm_aclk
        } else {
            set_property -dict [concat $common [list CONFIG.c_include_mm2s 1 \
                CONFIG.c_include_s2mm 0 CONFIG.c_m_axis_mm2s_tdata_width $width \
                CONFIG.c_m_axi_mm2s_data_width $mm_width CONFIG.c_mm2s_burst_size 16]] \
                [get_bd_cells $dma]
            # An AXI4-Stream data FIFO carries the core while the host arms the next transfer
            # (a simple-mode DMA has one in flight).
            create_bd_cell -type ip -vlnv [tbqkd_ipdef axis_data_fifo] $fifo
            set_property -dict [list CONFIG.FIFO_DEPTH $fifo_depth \
                CONFIG.TDATA_NUM_BYTES [expr {$width / 8}] CONFIG.HAS_TLAST 1] \
                [get_bd_cells $fifo]
            connect_bd_intf_net [get_bd_intf_pins $dma/M_AXIS_MM2S] \
                [get_bd_intf_pins $fifo/S_AXIS]
            connect_bd_intf_net [get_bd_intf_pins $fifo/M_AXIS] \
                [get_bd_intf_pins $core/$prefix]
            lappend clock_pins $fifo/s_axis_aclk
            lappend reset_pins $fifo/s_axis_aresetn
            connect_bd_intf_net [get_bd_intf_pins $dma/M_AXI_MM2S] \
                [get_bd_intf_pins [format "%s/S%02d_AXI" $mem $i]]
            lappend clock_pins $dma/m_axi_mm2s_aclk
        }
        connect_bd_intf_net [get_bd_intf_pins [format "%s/M%02d_AXI" $ctrl [expr {$i + 1}]]] \
            [get_bd_intf_pins $dma/S_AXI_LITE]
        lappend clock_pins $dma/s_axi_lite_aclk [format "%s/S%02d_ACLK" $mem $i]
        lappend reset_pins $dma/axi_resetn [format "%s/S%02d_ARESETN" $mem $i]
        incr i
    }

    # --- interrupts: the core's irq through a concat to the PS (pynq finds it there) ---------
    if {$tbqkd(irq_port) ne ""} {
        set irq irq_concat_0
        create_bd_cell -type ip -vlnv [tbqkd_ipdef xlconcat] $irq
        set_property -dict [list CONFIG.NUM_PORTS 1] [get_bd_cells $irq]
        connect_bd_net [get_bd_pins $core/$tbqkd(irq_port)] [get_bd_pins $irq/In0]
        connect_bd_net [get_bd_pins $irq/dout] [get_bd_pins [dict get $ps irq]]
    }

    # --- clock and reset nets ----------------------------------------------------------------
    connect_bd_net {*}[lmap pin $clock_pins {get_bd_pins $pin}]
    connect_bd_net [get_bd_pins $rst/interconnect_aresetn] [get_bd_pins $ctrl/ARESETN] \
        [get_bd_pins $mem/ARESETN]
    connect_bd_net [get_bd_pins $rst/peripheral_aresetn] {*}[lmap pin $reset_pins {get_bd_pins $pin}]

    # --- addresses: the core's 64 KiB window at tbqkd(core_address), the rest automatic ------
    assign_bd_address -target_address_space [get_bd_addr_spaces [dict get $ps data_space]] \
        -offset $tbqkd(core_address) -range [expr {$tbqkd(axi_lite_range) / 1024}]K \
        [get_bd_addr_segs $core/$tbqkd(axi_lite)/reg0]
    assign_bd_address
    validate_bd_design
    save_bd_design
}
