# Package the generated Verilog of the core as an IP in tbqkd(ip_repo).
#
# ipx::package_project infers the bus interfaces from the port names: s_axi_* (AXI4-Lite
# slave), m_axis_*/s_axis_* (AXI4-Stream master/slave; one interface per prefix), aclk,
# aresetn, irq. Inference is then checked, not trusted: a missing interface stops the build.
# The register table goes into the IP-XACT memory map (pynq's `register_map` and the .hwh
# show it); the elaboration parameters and the table hash are informational user parameters.

proc tbqkd_package_ip {} {
    global tbqkd
    set root [file join $tbqkd(ip_repo) $tbqkd(ip_name)]
    file delete -force $root
    create_project -force package_$tbqkd(ip_name) [file join $tbqkd(work_dir) package] \
        -part $tbqkd(part)
    add_files -norecurse $tbqkd(verilog)
    set_property top $tbqkd(top) [current_fileset]
    update_compile_order -fileset sources_1
    ipx::package_project -root_dir $root -vendor $tbqkd(ip_vendor) -library $tbqkd(ip_library) \
        -taxonomy /UserIP -import_files -set_current true
    set core [ipx::current_core]
    set_property name $tbqkd(ip_name) $core
    set_property version $tbqkd(ip_version) $core
    set_property display_name "tbqkd $tbqkd(role) core" $core
    set_property description "tbqkd $tbqkd(role) core ($tbqkd(vlnv))" $core
    set_property supported_families {zynq Production zynquplus Production} $core

    tbqkd_package_interfaces $core
    if {[catch {tbqkd_package_registers $core} message]} {
        # The register map is a convenience (the host has its own table and checks ID).
        puts "WARNING: tbqkd: register map not packaged: $message"
    }
    foreach {name value} [concat {*}$tbqkd(ip_parameters)] {
        set parameter [ipx::add_user_parameter $name $core]
        set_property value_resolve_type user $parameter
        set_property value_format string $parameter
        set_property value $value $parameter
        set_property enablement_value false $parameter
    }
    ipx::create_xgui_files $core
    ipx::update_checksums $core
    ipx::check_integrity $core
    ipx::save_core $core
    close_project
}

proc tbqkd_package_interfaces {core} {
    global tbqkd
    ipx::infer_bus_interfaces xilinx.com:interface:aximm_rtl:1.0 $core
    ipx::infer_bus_interfaces xilinx.com:interface:axis_rtl:1.0 $core
    set busifs [list $tbqkd(axi_lite)]
    foreach stream $tbqkd(streams) { lappend busifs [lindex $stream 0] }
    foreach busif $busifs {
        if {[llength [ipx::get_bus_interfaces $busif -of_objects $core]] == 0} {
            error "tbqkd: Vivado did not infer bus interface $busif from the port names"
        }
    }
    set clock $tbqkd(clock_port)
    set reset $tbqkd(reset_n_port)
    if {[llength [ipx::get_bus_interfaces $clock -of_objects $core]] == 0} {
        ipx::infer_bus_interface $clock xilinx.com:signal:clock_rtl:1.0 $core
    }
    if {[llength [ipx::get_bus_interfaces $reset -of_objects $core]] == 0} {
        ipx::infer_bus_interface $reset xilinx.com:signal:reset_rtl:1.0 $core
    }
    tbqkd_bus_parameter $core $reset POLARITY ACTIVE_LOW
    ipx::associate_bus_interfaces -busif [join $busifs :] -clock $clock $core
    ipx::associate_bus_interfaces -clock $clock -reset $reset $core
    if {$tbqkd(irq_port) ne ""} {
        if {[llength [ipx::get_bus_interfaces $tbqkd(irq_port) -of_objects $core]] == 0} {
            ipx::infer_bus_interface $tbqkd(irq_port) xilinx.com:signal:interrupt_rtl:1.0 $core
        }
        tbqkd_bus_parameter $core $tbqkd(irq_port) SENSITIVITY LEVEL_HIGH
    }
}

# Set a bus interface parameter, adding it if inference did not.
proc tbqkd_bus_parameter {core busif name value} {
    set interface [ipx::get_bus_interfaces $busif -of_objects $core]
    set parameter [ipx::get_bus_parameters $name -of_objects $interface]
    if {[llength $parameter] == 0} { set parameter [ipx::add_bus_parameter $name $interface] }
    set_property value $value $parameter
}

# Memory map `s_axi` with one address block `reg0` of tbqkd(axi_lite_range) bytes holding the
# register table (rows: name offset bits access description fields).
proc tbqkd_package_registers {core} {
    global tbqkd
    set busif [ipx::get_bus_interfaces $tbqkd(axi_lite) -of_objects $core]
    set map [ipx::get_memory_maps $tbqkd(axi_lite) -of_objects $core]
    if {[llength $map] == 0} { set map [ipx::add_memory_map $tbqkd(axi_lite) $core] }
    set_property slave_memory_map_ref $tbqkd(axi_lite) $busif
    set block [ipx::get_address_blocks reg0 -of_objects $map]
    if {[llength $block] == 0} { set block [ipx::add_address_block reg0 $map] }
    set_property range $tbqkd(axi_lite_range) $block
    set_property width 32 $block
    set_property usage register $block
    foreach row $tbqkd(registers) {
        lassign $row name offset bits access description fields
        set register [ipx::add_register $name $block]
        set_property address_offset $offset $register
        set_property size $bits $register
        set_property description $description $register
        foreach bitfield $fields {
            lassign $bitfield fname lsb width faccess
            set f [ipx::add_field $fname $register]
            set_property bit_offset $lsb $f
            set_property bit_width $width $f
            set_property access $faccess $f
        }
    }
}
