#pragma once
// Text corpora and their fixed splits.
//
// Split of every corpus file (n bytes), by byte offset: train = [0, floor(0.90 n)),
// validation = [floor(0.90 n), floor(0.95 n)), held-out = [floor(0.95 n), n). The held-out part (the
// last 5%) is never trained on; validation guides training only through the logged curve.

#include <cstdint>
#include <string>
#include <vector>

namespace ccc::model {

enum class Split { kTrain, kValidation, kHeldOut };

struct Corpus {
  std::string name;    ///< file stem, e.g. "moby-dick"
  std::string path;
  std::string sha256;  ///< of the whole file
  std::string bytes;   ///< whole file
  /// Byte range [begin, end) of a split.
  std::pair<size_t, size_t> range(Split s) const;
  std::string split(Split s) const;
};

/// Loads `dir`/`name`.txt; throws ccc::Error naming the file when it is missing or empty.
Corpus load_corpus(const std::string& dir, const std::string& name);
/// load_corpus for each of `names`, in that order.
std::vector<Corpus> load_corpora(const std::string& dir, const std::vector<std::string>& names);

/// The default corpus directory: $CCC_CORPORA, else the set-up's cache .cache/corpora when
/// data/fetch_corpora.sh has assembled it (manifest.json present: ../shared's corpora linked plus the
/// Debian-package corpora), else ../shared/data/corpora beside the source tree. `source_dir` is the
/// repository root.
std::string default_corpus_dir(const std::string& source_dir);

/// Every corpus name ccc knows (English prose, drama, dictionary, quotations; code; markup and data formats).
const std::vector<std::string>& all_corpora();
/// The domain of a known corpus: prose, dialogue, dictionary, quotations, code, markup, data ("other" if unknown).
std::string corpus_domain(const std::string& name);
/// The names of all_corpora() whose `dir`/<name>.txt exists, in that order.
std::vector<std::string> present_corpora(const std::string& dir);

/// The head of each corpus's held-out split, concatenated in the order given: at most `bytes_per_corpus`
/// bytes of each, with the byte range each occupies (what `ccc heldout` writes and the experiments read).
struct HeldOutMix {
  std::string text;
  struct Range {
    std::string corpus, domain;  ///< corpus_domain(corpus)
    size_t begin = 0, end = 0;   ///< [begin, end) in text
  };
  std::vector<Range> ranges;
};
HeldOutMix held_out_mix(const std::string& dir, const std::vector<std::string>& names, size_t bytes_per_corpus);

}  // namespace ccc::model
