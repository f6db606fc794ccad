#pragma once
// The tiny training set-up shared by the trainer tests and the `ccc train` CLI tests (header-only).

#include "model/core/config.h"
#include "model/training/trainer.h"

namespace ccc::test {

/// The model of the tiny training runs: model::tiny_byte_config with 2 layers and a context of 32.
inline model::ModelConfig tiny_train_model_config() { return model::tiny_byte_config(2, 32); }

/// 40 steps of 8 x 32 bytes of corpus "toy" with a fast schedule.
inline model::TrainOptions tiny_options() {
  model::TrainOptions o;
  o.batch_size = 8;
  o.seq_len = 32;
  o.steps = 40;
  o.warmup_steps = 5;
  o.lr = 1e-2;
  o.min_lr = 1e-3;
  o.eval_every = 0;
  o.eval_windows = 8;
  o.corpora = {"toy"};
  return o;
}

}  // namespace ccc::test
