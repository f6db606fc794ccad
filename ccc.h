#pragma once
// ccc as a library: one header for programs that use the model, the scoring unit, the compressor, the
// circuits and the analysis code directly (CMake target `ccc_lib`). docs/example.cpp shows the shape of a
// program; docs/library.md lists what each header offers. Every figure of information is in bits.

#include "analysis/activation_store.h"   // reading HDF5 dumps
#include "analysis/capture.h"            // activation capture during a compression run
#include "analysis/labels.h"             // automatic and user feature labels
#include "analysis/units.h"              // unit statistics, AUROCs, mono/polysemantic classes
#include "circuits/ablation.h"           // components, zero / mean / resample ablation as hook edits
#include "circuits/attribution.h"        // attribution patching
#include "circuits/discovery.h"          // ACDC-style circuit discovery on bits
#include "circuits/head_detectors.h"     // previous-token, induction, duplicate-token scores
#include "circuits/icl.h"                // in-context learning in bits
#include "circuits/patching.h"           // path patching
#include "circuits/sweep.h"              // ablated bits, batched sweeps, delta bits with CIs
#include "compress/lm_codec.h"           // the lossless LM compressor
#include "experiments/lib/result.h"      // experiment results: effects, CIs, nulls, verdicts
#include "model/base/error.h"            // ccc::Error
#include "model/base/util.h"             // read_file, write_file_atomic
#include "model/core/bits.h"             // bits of logits
#include "model/core/hooks.h"            // HookSet, hook_name
#include "model/core/score.h"            // score_bits, generation
#include "model/formats/loader.h"        // load_model: ccc, Hugging Face, llama2.c
#include "model/scoring/cost_model.h"    // FLOPs and K/V traffic of a codec run
#include "model/scoring/streams.h"       // a text scored as the compressor codes it
