#include "model/training/finetune.h"

#include <algorithm>

#include "model/base/error.h"

namespace ccc::model {

double HeldOutBits::of(const std::string& corpus) const {
  const auto it = std::find(corpora.begin(), corpora.end(), corpus);
  CCC_CHECK(it != corpora.end(), "held-out bits: corpus ", corpus, " was not scored");
  return bits_per_byte[static_cast<size_t>(it - corpora.begin())];
}

double FinetuneResult::target_delta() const {
  CCC_CHECK(!before.corpora.empty(), "finetune: no target scored");
  return after.bits_per_byte.front() - before.bits_per_byte.front();
}

HeldOutBits held_out_bits(Transformer& m, const std::vector<Corpus>& corpora, int64_t max_bytes,
                          const std::function<void(int64_t, int64_t)>& progress) {
  HeldOutBits out;
  std::vector<std::string> texts;
  int64_t total = 0, done = 0;
  for (const auto& c : corpora) {
    std::string held = c.split(Split::kHeldOut);
    if (max_bytes > 0 && static_cast<int64_t>(held.size()) > max_bytes) held.resize(static_cast<size_t>(max_bytes));
    total += static_cast<int64_t>(held.size());
    texts.push_back(std::move(held));
  }
  for (size_t i = 0; i < corpora.size(); ++i) {
    out.corpora.push_back(corpora[i].name);
    out.bits_per_byte.push_back(text_bits_per_byte(m, texts[i], m->config().bos_id));
    out.bytes.push_back(static_cast<int64_t>(texts[i].size()));
    done += static_cast<int64_t>(texts[i].size());
    if (progress) progress(done, total);
  }
  return out;
}

FinetuneResult finetune(Transformer& m, const std::vector<Corpus>& corpora, const std::string& target,
                        const std::vector<std::string>& trainable, const FinetuneOptions& o,
                        const FinetuneCallbacks& cb) {
  const auto it = std::find_if(corpora.begin(), corpora.end(), [&](const Corpus& c) { return c.name == target; });
  CCC_CHECK(it != corpora.end(), "finetune: the target corpus ", target, " is not among the corpora loaded");
  std::vector<Corpus> ordered = {*it};  // the target first, then the references in their order
  for (const auto& c : corpora)
    if (c.name != target) ordered.push_back(c);
  auto eval = [&](const char* phase) {
    return held_out_bits(m, ordered, o.eval_bytes, [&](int64_t done, int64_t total) {
      if (cb.on_eval) cb.on_eval(phase, done, total);
    });
  };
  FinetuneResult r;
  r.before = eval("before");
  TrainOptions t = o.train;
  t.corpora = {target};
  t.eval_every = o.curve_points > 0 ? std::max<int64_t>(1, t.steps / o.curve_points) : 0;
  Trainer trainer(m, t, {*it}, trainable);
  r.curve.emplace_back(0, trainer.validation_bpb());
  trainer.run(0, [&](const TrainEvent& ev) {
    if (ev.val_bpb >= 0) r.curve.emplace_back(ev.step, ev.val_bpb);
    if (cb.on_step) cb.on_step(ev);
  });
  r.tokens_seen = trainer.tokens_seen();
  r.after = eval("after");
  return r;
}

}  // namespace ccc::model
