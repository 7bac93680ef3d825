# Helpers shared by the build scripts. All parameters are in the global array tbqkd().

# Keys every parameter file must define (the dry run and Vivado both stop on a missing one).
set tbqkd_required_params {
    board role name part board_part ps xdc verilog top work_dir out_dir ip_repo
    ip_vendor ip_library ip_name ip_version vlnv instance clock_port reset_n_port irq_port
    axi_lite axi_lite_range core_address dma_addr_width dma_length_width streams pins
    serdes_port aclk_mhz ref_clk_mhz clock_source jobs allow_timing_failure ip_parameters
    registers
}

proc tbqkd_check_params {} {
    global tbqkd tbqkd_required_params
    foreach key $tbqkd_required_params {
        if {![info exists tbqkd($key)]} {
            error "tbqkd: parameter file lacks tbqkd($key); regenerate it with\
                   `python -m tbqkd.deploy`"
        }
    }
    foreach path [list $tbqkd(verilog) $tbqkd(xdc)] {
        if {![file exists $path]} { error "tbqkd: $path does not exist" }
    }
    if {![info exists ::tbqkd_dry_run]} { file mkdir $tbqkd(work_dir) $tbqkd(out_dir) }
}

# The newest installed version of a Xilinx IP (e.g. clk_wiz): VLNVs differ between releases.
proc tbqkd_ipdef {name} {
    set defs [lsort -dictionary [get_ipdefs -all xilinx.com:ip:${name}:*]]
    if {[llength $defs] == 0} { error "tbqkd: IP xilinx.com:ip:$name is not in the catalog" }
    return [lindex $defs end]
}

proc tbqkd_record_tool_version {} {
    global tbqkd
    if {[info exists ::tbqkd_dry_run]} { version -short; return }
    set f [open [file join $tbqkd(work_dir) tool_version.txt] w]
    puts $f [version -short]
    close $f
}

# An output of a run, by glob pattern (in a dry run, where Vivado writes nothing, the pattern).
proc tbqkd_find_output {what args} {
    foreach pattern $args {
        set found [glob -nocomplain $pattern]
        if {[llength $found] == 1} { return [lindex $found 0] }
    }
    if {[info exists ::tbqkd_dry_run]} { return [lindex $args 0] }
    error "tbqkd: Vivado did not write the $what (looked for $args)"
}

proc tbqkd_copy {from to} {
    if {[info exists ::tbqkd_dry_run]} { return }
    file copy -force $from $to
}
