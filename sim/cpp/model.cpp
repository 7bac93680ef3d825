// Transaction-level C ABI around the Verilated receiver core (loaded from Python with ctypes).
//
// Python pays one call per register transaction or per block of sample words; the clock loop,
// the AXI4-Lite handshakes and the AXI4-Stream sink run here. The port accessors for the
// configured channel count and word width come from the generated "tbqkd_ports.h".
#include <cstdint>
#include <cstring>
#include <memory>

#include "verilated.h"
#if VM_TRACE
#include "verilated_vcd_c.h"
#endif
#include "Vtbqkd_rx.h"
#include "tbqkd_ports.h"

namespace {

struct Model {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Vtbqkd_rx> top;
#if VM_TRACE
    std::unique_ptr<VerilatedVcdC> trace;
#endif
    uint64_t ticks = 0;
    uint32_t rng = 1;
};

void tick(Model* m) {
    Vtbqkd_rx* t = m->top.get();
    t->aclk = 1;
    t->eval();
#if VM_TRACE
    if (m->trace) m->trace->dump(2 * m->ticks + 1);
#endif
    t->aclk = 0;
    t->eval();
#if VM_TRACE
    if (m->trace) m->trace->dump(2 * m->ticks + 2);
#endif
    m->ticks++;
}

uint32_t next_random(Model* m) {  // xorshift32, for the back-pressure pattern
    uint32_t x = m->rng;
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    return m->rng = x;
}

}  // namespace

extern "C" {

void* tbm_create(const char* vcd_path) {
    auto* m = new Model;
    m->ctx.reset(new VerilatedContext);
    m->top.reset(new Vtbqkd_rx{m->ctx.get(), "TOP"});
#if VM_TRACE
    if (vcd_path && vcd_path[0]) {
        m->ctx->traceEverOn(true);
        m->trace.reset(new VerilatedVcdC);
        m->top->trace(m->trace.get(), 99);
        m->trace->open(vcd_path);
    }
#else
    (void)vcd_path;
#endif
    Vtbqkd_rx* t = m->top.get();
    t->aclk = 0;
    t->aresetn = 0;
    t->m_axis_tready = 0;
    tbqkd_clear_samples(t);
    t->eval();
    return m;
}

void tbm_destroy(void* handle) {
    auto* m = static_cast<Model*>(handle);
    m->top->final();
#if VM_TRACE
    if (m->trace) m->trace->close();
#endif
    delete m;
}

int tbm_n_channels() { return TBQKD_N_CHANNELS; }
int tbm_word_lanes() { return TBQKD_WORD_LANES; }

void tbm_reset(void* handle, int cycles) {
    auto* m = static_cast<Model*>(handle);
    m->top->aresetn = 0;
    for (int i = 0; i < cycles; i++) tick(m);
    m->top->aresetn = 1;
    m->top->eval();
}

uint64_t tbm_cycle(void* handle) { return static_cast<Model*>(handle)->top->time_cycle; }
uint64_t tbm_ticks(void* handle) { return static_cast<Model*>(handle)->ticks; }

// Returns BRESP, or -1 if the core did not answer within `timeout` cycles.
int tbm_axil_write(void* handle, uint32_t addr, uint32_t data, int timeout) {
    auto* m = static_cast<Model*>(handle);
    Vtbqkd_rx* t = m->top.get();
    t->s_axi_awaddr = addr; t->s_axi_awprot = 0; t->s_axi_awvalid = 1;
    t->s_axi_wdata = data; t->s_axi_wstrb = 0xF; t->s_axi_wvalid = 1;
    t->s_axi_bready = 1;
    t->eval();
    int resp = -1;
    bool accepted = false;
    for (int i = 0; i < timeout; i++) {
        bool aw_done = t->s_axi_awready, b_done = accepted && t->s_axi_bvalid;
        if (b_done) resp = t->s_axi_bresp;
        tick(m);
        if (aw_done) { accepted = true; t->s_axi_awvalid = 0; t->s_axi_wvalid = 0; t->eval(); }
        if (b_done) break;
    }
    t->s_axi_awvalid = 0; t->s_axi_wvalid = 0; t->s_axi_bready = 0;
    t->eval();
    return resp;
}

// Returns RRESP, or -1 on time-out; the data goes to *data.
int tbm_axil_read(void* handle, uint32_t addr, uint32_t* data, int timeout) {
    auto* m = static_cast<Model*>(handle);
    Vtbqkd_rx* t = m->top.get();
    t->s_axi_araddr = addr; t->s_axi_arprot = 0; t->s_axi_arvalid = 1; t->s_axi_rready = 1;
    t->eval();
    int resp = -1;
    bool accepted = false;
    for (int i = 0; i < timeout; i++) {
        bool ar_done = t->s_axi_arready, r_done = accepted && t->s_axi_rvalid;
        if (r_done) { resp = t->s_axi_rresp; *data = t->s_axi_rdata; }
        tick(m);
        if (ar_done) { accepted = true; t->s_axi_arvalid = 0; t->eval(); }
        if (r_done) break;
    }
    t->s_axi_arvalid = 0; t->s_axi_rready = 0;
    t->eval();
    return resp;
}

// Run the clock. Sample words word i (cycle[i], channel[i], lanes[i*LANES ...]) are driven in
// the cycle whose coarse counter equals cycle[i]; other words are zero. Beats accepted on
// m_axis go to out (2 x uint64 per beat) and out_last. TREADY is high with probability
// ready_percent/100 per cycle (xorshift, seeded). Runs `cycles` cycles, or fewer if `out`
// fills up, or (idle_limit > 0) once all words are consumed and neither a word nor a beat has
// passed for idle_limit cycles. Counts in results[]: 0 cycles run, 1 words consumed, 2 beats,
// 3 words skipped (their cycle had already passed: an error of the caller).
void tbm_run(void* handle, int64_t cycles, const int64_t* cycle, const uint8_t* channel,
             const uint64_t* lanes, int64_t n_words, uint64_t* out, uint8_t* out_last,
             int64_t out_capacity, uint32_t ready_percent, uint32_t seed, int64_t idle_limit,
             int64_t* results) {
    auto* m = static_cast<Model*>(handle);
    Vtbqkd_rx* t = m->top.get();
    if (seed) m->rng = seed;
    int64_t i = 0, beats = 0, skipped = 0, ran = 0, quiet = 0;
    bool driven = false;
    for (; ran < cycles && beats < out_capacity; ran++) {
        uint64_t now = t->time_cycle;
        if (driven) { tbqkd_clear_samples(t); driven = false; }
        while (i < n_words && (uint64_t)cycle[i] < now) { i++; skipped++; }
        while (i < n_words && (uint64_t)cycle[i] == now) {
            tbqkd_set_samples(t, channel[i], lanes + i * TBQKD_WORD_LANES);
            driven = true;
            i++;
        }
        t->m_axis_tready = ready_percent >= 100 ? 1 : (next_random(m) % 100) < ready_percent;
        t->eval();
        if (t->m_axis_tvalid && t->m_axis_tready) {
            tbqkd_get_tdata(t, out + 2 * beats);
            out_last[beats] = t->m_axis_tlast;
            beats++;
            quiet = 0;
        } else if (!driven) {
            quiet++;
        } else {
            quiet = 0;
        }
        tick(m);
        if (idle_limit > 0 && i >= n_words && quiet >= idle_limit) {
            ran++;
            break;
        }
    }
    if (driven) { tbqkd_clear_samples(t); t->eval(); }
    t->m_axis_tready = 0;
    t->eval();
    results[0] = ran; results[1] = i; results[2] = beats; results[3] = skipped;
}

}  // extern "C"
