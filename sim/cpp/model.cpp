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
    // the simulated DAC on the SPI pins
    bool dac_sync_n = true, dac_sclk = false;
    uint64_t dac_shift = 0, dac_word = 0;
    int64_t dac_bits = 0, dac_word_bits = 0, dac_frames = 0;
};

void watch_dac(Model* m) {
    Vtbqkd_rx* t = m->top.get();
    bool sync_n = t->dac_sync_n, sclk = t->dac_sclk;
    if (m->dac_sync_n && !sync_n) { m->dac_shift = 0; m->dac_bits = 0; }
    if (!sync_n && m->dac_sclk && !sclk) {           // falling SCLK edge: the DAC samples
        m->dac_shift = (m->dac_shift << 1) | (t->dac_mosi & 1);
        m->dac_bits++;
    }
    if (!m->dac_sync_n && sync_n) {                   // SYNC rising: the frame ends
        m->dac_word = m->dac_shift; m->dac_word_bits = m->dac_bits; m->dac_frames++;
    }
    m->dac_sync_n = sync_n; m->dac_sclk = sclk;
}

// One clock cycle; the DAC pins are watched on every cycle, register accesses included.
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
    watch_dac(m);
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
    for (int k = 0; k < TBQKD_N_OUT; k++) tbqkd_out_ready(t, k, false);
    TBQKD_IN_VALID(t) = 0;
    t->sim_skip = 0;
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

// A stream buffer shared with Python (ctypes Structure of the same layout). Output streams:
// beats accepted from the core go to data[count * lanes ...] / last[count]; TREADY is high
// with probability percent/100 per cycle. The input stream: beats data[count ...] are offered
// with TVALID high with probability percent/100 per cycle until count == capacity.
struct StreamBuf {
    uint64_t* data;
    uint8_t* last;
    int64_t capacity;
    int64_t count;
    uint32_t percent;
    uint32_t reserved;
};

namespace {

bool chance(Model* m, uint32_t percent) {
    return percent >= 100 ? true : percent == 0 ? false : (next_random(m) % 100) < percent;
}

// Load, in one cycle, the time base and slot clock state `n` more cycles would have produced.
void skip_cycles(Model* m, uint64_t n) {
    Vtbqkd_rx* t = m->top.get();
    using u128 = unsigned __int128;
    u128 tsum = (u128)t->sim_time_rem + (u128)n * TBQKD_PERIOD_NUM;
    uint64_t den = t->sim_slot_den ? t->sim_slot_den : 1;
    u128 step = (u128)t->sim_slot_step_int * den + t->sim_slot_step_rem;
    u128 wrap = (u128)t->sim_slot_wrap_int * den + t->sim_slot_wrap_rem;
    if (wrap == 0) wrap = 1;
    u128 acc = (u128)t->sim_slot_offset * den + t->sim_slot_rem + (u128)n * step;
    t->sim_skip_cycle = t->time_cycle + n;
    t->sim_skip_time = t->sim_time + (uint64_t)(tsum / TBQKD_PERIOD_DEN);
    t->sim_skip_time_rem = (uint16_t)(tsum % TBQKD_PERIOD_DEN);
    t->sim_skip_slot = (t->sim_slot + (uint64_t)(acc / wrap)) & ((1ULL << 48) - 1);
    u128 rest = acc % wrap;
    t->sim_skip_slot_offset = (uint32_t)(rest / den);
    t->sim_skip_slot_rem = (uint32_t)(rest % den);
    t->sim_skip = 1;
}


}  // namespace

// Run the clock. Sample word i (cycle[i], channel[i], lanes[i*LANES ...]) is driven in the
// cycle whose coarse counter equals cycle[i]; other words are zero. outs[] are the core's
// output streams (TBQKD_N_OUT, in the order of tbqkd.hdl.records.STREAMS), in the input one.
// The core advances by `cycles` cycles at most, and stops early when an output buffer is full,
// or (idle_limit > 0) once all words are consumed and nothing has moved for idle_limit cycles.
// Idle skipping (skip_min > 0): when the next word is at least skip_min cycles ahead and no
// input beat is pending, one cycle loads the state those cycles would have produced (the
// sim_skip hook) instead of clocking through them. results[]: 0 cycles advanced, 1 words
// consumed, 2 words skipped (their cycle had already passed: an error of the caller), 3 cycles
// clocked, 4 idle skips.
void tbm_run(void* handle, int64_t cycles, const int64_t* cycle, const uint8_t* channel,
             const uint64_t* lanes, int64_t n_words, StreamBuf* outs, StreamBuf* in,
             uint32_t seed, int64_t idle_limit, int64_t skip_min, int64_t* results) {
    auto* m = static_cast<Model*>(handle);
    Vtbqkd_rx* t = m->top.get();
    if (seed) m->rng = seed;
    int64_t i = 0, skipped = 0, advanced = 0, clocked = 0, skips = 0, quiet = 0;
    bool driven = false, full = false;
    while (advanced < cycles && !full) {
        uint64_t now = t->time_cycle;
        if (driven) { tbqkd_clear_samples(t); driven = false; }
        while (i < n_words && (uint64_t)cycle[i] < now) { i++; skipped++; }
        bool in_pending = in && in->count < in->capacity;
        if (skip_min > 0 && i < n_words && !in_pending) {
            int64_t gap = (int64_t)((uint64_t)cycle[i] - now);
            if (gap >= skip_min && gap <= cycles - advanced) {
                skip_cycles(m, (uint64_t)gap);   // after this cycle the counter is cycle[i]
                skips++;
                advanced += gap - 1;             // + 1 for this cycle below
            }
        }
        while (i < n_words && (uint64_t)cycle[i] == now && !t->sim_skip) {
            tbqkd_set_samples(t, channel[i], lanes + i * TBQKD_WORD_LANES);
            driven = true;
            i++;
        }
        bool ready[TBQKD_N_OUT];
        for (int k = 0; k < TBQKD_N_OUT; k++) {
            ready[k] = outs[k].count < outs[k].capacity && chance(m, outs[k].percent);
            tbqkd_out_ready(t, k, ready[k]);
        }
        bool offer = in_pending && chance(m, in->percent);
        if (offer) {
            tbqkd_in_data(t, in->data + in->count * TBQKD_IN_LANES);
            TBQKD_IN_LAST(t) = in->last ? in->last[in->count] : 0;
        }
        TBQKD_IN_VALID(t) = offer;
        t->eval();
        bool moved = driven;
        for (int k = 0; k < TBQKD_N_OUT; k++) {
            StreamBuf& o = outs[k];
            if (!ready[k] || !tbqkd_out_valid(t, k)) continue;
            tbqkd_out_data(t, k, o.data + o.count * tbqkd_out_lanes[k]);
            o.last[o.count] = tbqkd_out_last(t, k);
            o.count++;
            moved = true;
            if (o.count == o.capacity) full = true;
        }
        if (offer && TBQKD_IN_READY(t)) { in->count++; moved = true; }
        quiet = moved ? 0 : quiet + 1;
        tick(m);
        clocked++;
        advanced++;
        if (t->sim_skip) { t->sim_skip = 0; t->eval(); }
        if (idle_limit > 0 && i >= n_words && quiet >= idle_limit) break;
    }
    if (driven) tbqkd_clear_samples(t);
    for (int k = 0; k < TBQKD_N_OUT; k++) tbqkd_out_ready(t, k, false);
    TBQKD_IN_VALID(t) = 0;
    t->eval();
    results[0] = advanced; results[1] = i; results[2] = skipped; results[3] = clocked;
    results[4] = skips;
}

// The last frame the simulated DAC received: its bits (MSB first) and length, and the number of
// frames so far. SYNC falling starts a frame, each falling SCLK edge shifts in one bit, SYNC
// rising ends it (DAC8568 / AD5686 framing).
void tbm_dac(void* handle, uint64_t* word, int64_t* bits, int64_t* frames) {
    auto* m = static_cast<Model*>(handle);
    *word = m->dac_word; *bits = m->dac_word_bits; *frames = m->dac_frames;
}

}  // extern "C"
