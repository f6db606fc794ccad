#include "analysis/activation_store.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include <H5Cpp.h>

#include "model/base/error.h"

namespace ccc::analysis {

struct ActivationStore::Impl {
  H5::H5File file;
};

namespace {

// The most elements one row of a hook may hold (the largest real hook rows are ~10^5: d_mlp, n_heads x n_ctx).
constexpr int64_t kMaxRowElements = int64_t{1} << 24;

// The most rows a dump may declare: one per coded token of an input read whole (<= 256 MiB) plus BOS rows.
constexpr int64_t kMaxRows = int64_t{1} << 28;
// deflate's best ratio is ~1032:1, so no stored dataset can decode to more than this many bytes per stored byte.
constexpr double kMaxExpansion = 1032;

// A dataset's dimensions (any rank).
std::vector<hsize_t> dims_of(const H5::DataSet& ds) {
  const auto space = ds.getSpace();
  const int rank = space.getSimpleExtentNdims();
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  if (rank > 0) space.getSimpleExtentDims(dims.data());
  return dims;
}

// Refuses a dataset that declares more data than its file stores (chunks never written are "hollow": a
// tiny file could otherwise make a reader allocate gigabytes of fill values).
void check_stored(const H5::DataSet& ds, const std::vector<hsize_t>& dims, const std::string& path, const std::string& name) {
  double logical = static_cast<double>(ds.getDataType().getSize());
  for (hsize_t d : dims) logical *= static_cast<double>(d);
  const double stored = static_cast<double>(ds.getStorageSize());
  CCC_CHECK(logical == 0 || stored * kMaxExpansion >= logical, path, ": ", name, " declares ", logical,
            " bytes but stores ", stored, " (unwritten or forged)");
}

template <typename T>
std::vector<T> read_column(H5::H5File& f, const std::string& path, const std::string& name, const H5::PredType& mem) {
  try {
    auto ds = f.openDataSet(name);
    const auto dims = dims_of(ds);  // one dimension, as long as the dump has rows (checked at open)
    const hsize_t n = dims.empty() ? 0 : dims[0];
    std::vector<T> out(n);
    if (n > 0) ds.read(out.data(), mem);
    return out;
  } catch (const H5::Exception& e) {
    CCC_FAIL(path, ": cannot read ", name, " (", e.getDetailMsg(), ")");
  }
}

// A dump is one self-contained file: every name must be a hard link (an external link can name another
// file, a FIFO or a device, which HDF5 opens on traversal) — checked before the object is opened.
void check_hard_link(hid_t loc, const std::string& name, const std::string& path) {
  H5L_info_t info{};
  CCC_CHECK(H5Lget_info(loc, name.c_str(), &info, H5P_DEFAULT) >= 0, path, ": cannot inspect ", name);
  CCC_CHECK(info.type == H5L_TYPE_HARD, path, ": ", name, " is ",
            info.type == H5L_TYPE_EXTERNAL ? "an external link" : "a soft or user-defined link",
            " (refused: a dump is one self-contained file)");
}

// ... and its data lives in it: no external raw storage, no virtual dataset mapping other files.
void check_storage_inside(const H5::DataSet& ds, const std::string& path, const std::string& name) {
  const H5::DSetCreatPropList dcpl = ds.getCreatePlist();
  CCC_CHECK(dcpl.getExternalCount() == 0, path, ": ", name,
            " keeps its data in external files (refused: a dump is one self-contained file)");
  CCC_CHECK(dcpl.getLayout() != H5D_VIRTUAL, path, ": ", name,
            " is a virtual dataset (refused: a dump is one self-contained file)");
}

// IEEE half -> float for every bit pattern (HDF5's own soft conversion of f16 is ~10x slower).
const std::vector<float>& half_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t h = 0; h < 65536; ++h) {
      const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 31, man = h & 1023;
      float v;
      if (exp == 0) v = std::ldexp(static_cast<float>(man), -24);
      else if (exp == 31) v = man ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
      else v = std::ldexp(static_cast<float>(man | 1024), static_cast<int>(exp) - 25);
      t[h] = sign ? -v : v;
    }
    return t;
  }();
  return table;
}

// True for IEEE binary16 stored little-endian (h5py's float16, what ccc writes), whose bits the table reads
// directly. Big-endian or other half layouts go through HDF5's own conversion.
bool is_little_endian_half(const H5::DataSet& ds) {
  if (ds.getTypeClass() != H5T_FLOAT) return false;
  const H5::FloatType t = ds.getFloatType();
  if (t.getSize() != 2 || t.getOrder() != H5T_ORDER_LE || t.getEbias() != 15) return false;
  size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
  t.getFields(spos, epos, esize, mpos, msize);
  return spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 && H5Tget_norm(t.getId()) == H5T_NORM_IMPLIED;
}

}  // namespace

ActivationStore::ActivationStore(const std::string& path) : impl_(std::make_unique<Impl>()), path_(path) {
  H5::Exception::dontPrint();
  try {
    impl_->file.openFile(path, H5F_ACC_RDONLY);
  } catch (const H5::Exception& e) {
    CCC_FAIL(path, ": not an HDF5 file or unreadable (", e.getDetailMsg(), ")");
  }
  try {
    CCC_CHECK(impl_->file.nameExists("tokens") && impl_->file.nameExists("bits"), path,
              ": not a ccc activation dump (no tokens / bits datasets)");
    const hid_t root = impl_->file.getId();
    for (const char* name : {"tokens", "bits", "stream", "pos", "byte_offset", "acts"})
      if (impl_->file.nameExists(name)) check_hard_link(root, name, path);
    // Every size is checked here, before anything is read or allocated: the file may be hostile.
    const auto tokens = impl_->file.openDataSet("tokens");
    const auto tok_dims = dims_of(tokens);
    CCC_CHECK(tok_dims.size() == 1, path, ": tokens has ", tok_dims.size(), " dimensions, expected 1");
    CCC_CHECK(tok_dims[0] <= static_cast<hsize_t>(kMaxRows), path, ": tokens declares ", tok_dims[0], " rows (at most ",
              kMaxRows, ")");
    CCC_CHECK(tokens.getTypeClass() == H5T_INTEGER, path, ": tokens is not an integer dataset");
    check_stored(tokens, tok_dims, path, "tokens");
    check_storage_inside(tokens, path, "tokens");
    rows_ = static_cast<int64_t>(tok_dims[0]);
    for (const char* column : {"bits", "stream", "pos", "byte_offset"}) {
      if (!impl_->file.nameExists(column)) continue;
      CCC_CHECK(impl_->file.childObjType(column) == H5O_TYPE_DATASET, path, ": ", column, " is not a dataset");
      const auto ds = impl_->file.openDataSet(column);
      const auto d = dims_of(ds);
      CCC_CHECK(d.size() == 1 && static_cast<int64_t>(d[0]) == rows_, path, ": ", column, " does not hold one value per row (",
                rows_, " rows)");
      const bool is_bits = std::string(column) == "bits";
      CCC_CHECK(ds.getTypeClass() == (is_bits ? H5T_FLOAT : H5T_INTEGER), path, ": ", column, " is not ",
                is_bits ? "a float" : "an integer", " dataset");
      check_stored(ds, d, path, column);
      check_storage_inside(ds, path, column);
    }
    if (impl_->file.nameExists("acts")) {
      CCC_CHECK(impl_->file.childObjType("acts") == H5O_TYPE_GROUP, path, ": acts is not a group");
      auto g = impl_->file.openGroup("acts");
      for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
        const std::string hook = g.getObjnameByIdx(i);
        check_hard_link(g.getId(), hook, path);
        CCC_CHECK(g.childObjType(hook) == H5O_TYPE_DATASET, path, ": acts/", hook, " is not a dataset");
        auto ds = g.openDataSet(hook);
        const auto d = dims_of(ds);
        CCC_CHECK(d.size() >= 2 && static_cast<int64_t>(d[0]) == rows_, path, ": acts/", hook,
                  " is not [rows = ", rows_, ", ...] (", d.size(), " dimensions)");
        int64_t elems = 1;
        for (size_t k = 1; k < d.size(); ++k) {
          CCC_CHECK(d[k] >= 1 && d[k] <= static_cast<hsize_t>(kMaxRowElements) && elems * static_cast<int64_t>(d[k]) <= kMaxRowElements,
                    path, ": acts/", hook, " rows hold more than ", kMaxRowElements, " elements (or an empty dimension)");
          elems *= static_cast<int64_t>(d[k]);
        }
        const auto type = ds.getDataType();
        CCC_CHECK(type.getClass() == H5T_FLOAT && (type.getSize() == 2 || type.getSize() == 4), path, ": acts/", hook,
                  " is not f16 or f32");
        check_stored(ds, d, path, "acts/" + hook);
        check_storage_inside(ds, path, "acts/" + hook);
        hooks_.push_back(hook);
      }
      std::sort(hooks_.begin(), hooks_.end());
    }
  } catch (const H5::Exception& e) {
    CCC_FAIL(path, ": unreadable dump (", e.getDetailMsg(), ")");
  }
}

ActivationStore::~ActivationStore() = default;

std::vector<int64_t> ActivationStore::row_shape(const std::string& hook) const {
  CCC_CHECK(std::find(hooks_.begin(), hooks_.end(), hook) != hooks_.end(), path_, ": no activations of ", hook);
  const auto dims = dims_of(impl_->file.openDataSet("acts/" + hook));  // rank >= 2, checked at open
  return std::vector<int64_t>(dims.begin() + 1, dims.end());
}

RowMatrix ActivationStore::block(const std::string& hook, int64_t first, int64_t n) const {
  const auto shape = row_shape(hook);
  CCC_CHECK(first >= 0 && n >= 0 && first + n <= rows_, path_, ": rows ", first, "+", n, " outside ", rows_);
  int64_t elems = 1;
  for (int64_t d : shape) elems *= d;
  RowMatrix out(n, elems);
  if (n == 0) return out;
  try {
    auto ds = impl_->file.openDataSet("acts/" + hook);
    auto fspace = ds.getSpace();
    std::vector<hsize_t> start(shape.size() + 1, 0), count(shape.size() + 1);
    start[0] = static_cast<hsize_t>(first);
    count[0] = static_cast<hsize_t>(n);
    for (size_t i = 0; i < shape.size(); ++i) count[i + 1] = static_cast<hsize_t>(shape[i]);
    fspace.selectHyperslab(H5S_SELECT_SET, count.data(), start.data());
    H5::DataSpace mspace(static_cast<int>(count.size()), count.data());
    if (is_little_endian_half(ds)) {
      // read the half bits as they are stored, convert here (any other layout: HDF5's conversion below)
      std::vector<uint16_t> raw(static_cast<size_t>(n * elems));
      ds.read(raw.data(), ds.getDataType(), mspace, fspace);
      const auto& t = half_table();
      float* dst = out.data();
      for (size_t i = 0; i < raw.size(); ++i) dst[i] = t[raw[i]];
    } else {
      ds.read(out.data(), H5::PredType::NATIVE_FLOAT, mspace, fspace);
    }
  } catch (const H5::Exception& e) {
    CCC_FAIL(path_, ": cannot read acts/", hook, " (", e.getDetailMsg(), ")");
  }
  return out;
}

void ActivationStore::check_text_size(uint64_t text_bytes) const {
  const int64_t declared = attr_int("n_bytes");
  CCC_CHECK(declared < 0 || static_cast<uint64_t>(declared) == text_bytes, path_, ": made from a text of ", declared,
            " bytes, not ", text_bytes);
  CCC_CHECK(static_cast<uint64_t>(rows_) <= 2 * text_bytes + 1, path_, ": declares ", rows_,
            " rows, more than a text of ", text_bytes, " bytes can give (2 x bytes + 1)");
}

std::vector<int32_t> ActivationStore::tokens() const { return read_column<int32_t>(impl_->file, path_, "tokens", H5::PredType::NATIVE_INT32); }
std::vector<int32_t> ActivationStore::streams() const { return read_column<int32_t>(impl_->file, path_, "stream", H5::PredType::NATIVE_INT32); }
std::vector<int64_t> ActivationStore::positions() const { return read_column<int64_t>(impl_->file, path_, "pos", H5::PredType::NATIVE_INT64); }
std::vector<int64_t> ActivationStore::byte_offsets() const {
  return read_column<int64_t>(impl_->file, path_, "byte_offset", H5::PredType::NATIVE_INT64);
}
std::vector<float> ActivationStore::bits() const { return read_column<float>(impl_->file, path_, "bits", H5::PredType::NATIVE_FLOAT); }

std::string ActivationStore::attr(const std::string& name) const {
  try {
    if (!impl_->file.attrExists(name)) return "";
    auto a = impl_->file.openAttribute(name);
    std::string v;
    a.read(a.getStrType(), v);
    return v;
  } catch (const H5::Exception& e) {
    CCC_FAIL(path_, ": attribute ", name, " (", e.getDetailMsg(), ")");
  }
}

int64_t ActivationStore::attr_int(const std::string& name) const {
  try {
    if (!impl_->file.attrExists(name)) return -1;
    int64_t v = -1;
    impl_->file.openAttribute(name).read(H5::PredType::NATIVE_INT64, &v);
    return v;
  } catch (const H5::Exception& e) {
    CCC_FAIL(path_, ": attribute ", name, " (", e.getDetailMsg(), ")");
  }
}

}  // namespace ccc::analysis
