// The bridge from the C API in rg_kbench.h to Google Benchmark. Everything else in kbench is C.
#include "rg_kbench.h"

#include <benchmark/benchmark.h>
#include <vector>
#include <memory>

#include <string>

namespace {

// The C definition plus owned copies of its strings.
struct Def {
    rg_kbench_def def;
    std::string name;
    std::string label;
    std::string counter_names[RG_KBENCH_MAX_COUNTERS];
};

void run_def(benchmark::State &state, const Def *d) {
    const rg_kbench_def &def = d->def;
    char err[512] = "";
    if (def.setup && def.setup(def.user, err, sizeof err) != 0) {
        state.SkipWithError(err[0] ? err : "setup failed");
        return;
    }
    const int64_t batch = def.batch > 0 ? def.batch : 1;
    while (state.KeepRunningBatch(batch)) def.run(def.user, batch);
    if (def.teardown) def.teardown(def.user);

    const double iters = static_cast<double>(state.iterations());
    // kIsRate divides by the measured time (wall-clock here, see UseRealTime below): the JSON holds
    // FLOP/s and bytes/s, the console shows them scaled, e.g. "flops=35.6G/s".
    if (def.flops_per_iter > 0)
        state.counters["flops"] =
            benchmark::Counter(def.flops_per_iter * iters, benchmark::Counter::kIsRate);
    if (def.bytes_per_iter > 0)
        state.counters["bytes"] =
            benchmark::Counter(def.bytes_per_iter * iters, benchmark::Counter::kIsRate);
    for (int i = 0; i < def.num_counters && i < RG_KBENCH_MAX_COUNTERS; i++)
        state.counters[d->counter_names[i]] = benchmark::Counter(def.counters[i].value);
    if (!d->label.empty()) state.SetLabel(d->label);
}

}  // namespace

extern "C" void rg_kbench_initialize(int *argc, char **argv) { benchmark::Initialize(argc, argv); }

extern "C" void rg_kbench_add_context(const char *key, const char *value) {
    benchmark::AddCustomContext(key, value);
}

// Registered benchmarks live until the process ends; this list owns their copies.
static std::vector<std::unique_ptr<Def>> registered;

extern "C" void rg_kbench_register(const rg_kbench_def *def) {
    registered.push_back(std::make_unique<Def>());
    Def *d = registered.back().get();
    d->def = *def;
    d->name = def->name;
    if (def->label) d->label = def->label;
    for (int i = 0; i < def->num_counters && i < RG_KBENCH_MAX_COUNTERS; i++)
        d->counter_names[i] = def->counters[i].name;
    benchmark::RegisterBenchmark(d->name.c_str(), run_def, d)->UseRealTime();
}

extern "C" size_t rg_kbench_run(void) { return benchmark::RunSpecifiedBenchmarks(); }

extern "C" void rg_kbench_shutdown(void) { benchmark::Shutdown(); }
