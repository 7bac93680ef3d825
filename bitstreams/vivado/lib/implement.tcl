# Synthesis, implementation, the timing gate and the outputs (<name>.bit, <name>.hwh).

proc tbqkd_implement {} {
    global tbqkd
    set name $tbqkd(name)
    set project [file join $tbqkd(work_dir) project]
    set bd [get_files $name.bd]
    generate_target all $bd
    make_wrapper -files $bd -top
    # Vivado 2020.2 and later put generated block-design files under .gen, earlier under .srcs.
    set wrapper [tbqkd_find_output "block design wrapper" \
        [file join $project $name.gen sources_1 bd $name hdl ${name}_wrapper.v] \
        [file join $project $name.srcs sources_1 bd $name hdl ${name}_wrapper.v]]
    add_files -norecurse $wrapper
    set_property top ${name}_wrapper [current_fileset]
    update_compile_order -fileset sources_1

    launch_runs synth_1 -jobs $tbqkd(jobs)
    wait_on_run synth_1
    tbqkd_require_run synth_1
    launch_runs impl_1 -to_step write_bitstream -jobs $tbqkd(jobs)
    wait_on_run impl_1
    tbqkd_require_run impl_1

    open_run impl_1
    report_timing_summary -file [file join $tbqkd(work_dir) timing_summary.rpt]
    report_utilization -file [file join $tbqkd(work_dir) utilization.rpt]
    set wns [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]]
    set whs [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -hold]]
    if {$wns eq "" || $wns < 0 || $whs eq "" || $whs < 0} {
        set message "tbqkd: timing not met (WNS $wns ns, WHS $whs ns; see\
                     $tbqkd(work_dir)/timing_summary.rpt)"
        if {!$tbqkd(allow_timing_failure)} { error $message }
        puts "WARNING: $message: writing the bitstream anyway (--allow-timing-failure)"
    }
}

proc tbqkd_require_run {run} {
    if {[get_property PROGRESS [get_runs $run]] ne "100%"} {
        error "tbqkd: $run failed: [get_property STATUS [get_runs $run]]"
    }
}

# <name>.bit and <name>.hwh (same basename, as pynq requires) into tbqkd(out_dir).
proc tbqkd_collect_outputs {} {
    global tbqkd
    set name $tbqkd(name)
    set project [file join $tbqkd(work_dir) project]
    set bit [tbqkd_find_output bitstream \
        [file join $project $name.runs impl_1 ${name}_wrapper.bit]]
    set hwh [tbqkd_find_output "hardware handoff (.hwh)" \
        [file join $project $name.gen sources_1 bd $name hw_handoff $name.hwh] \
        [file join $project $name.srcs sources_1 bd $name hw_handoff $name.hwh]]
    tbqkd_copy $bit [file join $tbqkd(out_dir) $name.bit]
    tbqkd_copy $hwh [file join $tbqkd(out_dir) $name.hwh]
}
