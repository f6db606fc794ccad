// A ccc program: load a model, watch a hook, score a file as the compressor codes it, ablate a head.
// Built with the project (target ccc_example) and run by the test suite on a shipped model.
//   ccc_example MODEL_DIR FILE
#include <cstdio>
#include <set>

#include "ccc.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s MODEL FILE\n", argv[0]);
    return 2;
  }
  try {
    auto m = ccc::model::load_model(argv[1]);
    const std::string text = ccc::read_file(argv[2]);
    // an observer on a hook: the input bytes whose positions enter block 0 (the run tells each row's offsets)
    std::set<int64_t> seen;
    ccc::model::HookSet hooks;
    hooks.observe(ccc::model::hook_name(0, ccc::model::kResidPre),
                  [&](const torch::Tensor& x, const ccc::model::HookContext& ctx) {
                    for (int64_t r = 0; r < x.size(0); ++r)
                      for (int64_t i = 0; i < x.size(1) && ctx.run->live[r]; ++i)
                        if (ctx.run->byte_offset_at(r, i) >= 0) seen.insert(ctx.run->byte_offset_at(r, i));
                  });
    ccc::model::StreamOptions opt;  // the compressor's segmentation and window policy
    opt.hooks = [&](int64_t) { return &hooks; };
    const double clean = ccc::model::segmented_bits(m, text, opt);
    // ablate head 0 of the last layer (zero ablation) and price it
    ccc::circuits::ScoringRun run;
    const auto head = ccc::circuits::parse_components(std::to_string(m.config.n_layers - 1) + ".0", m.config);
    const auto d = ccc::circuits::delta_stats(ccc::circuits::ablated_bits(m, text, run, {}, nullptr),
                                              ccc::circuits::ablated_bits(m, text, run, head, nullptr),
                                              static_cast<int64_t>(text.size()), 1000, 0);
    std::printf("total_bits %.3f\nbits_per_byte %.4f\nbytes_seen %zu\n", clean, clean / text.size(), seen.size());
    std::printf("delta_bits %.3f (head %s, 95%% CI of delta_bits_per_byte [%.4f, %.4f])\n", d.delta_bits,
                head[0].name().c_str(), d.ci_low, d.ci_high);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
