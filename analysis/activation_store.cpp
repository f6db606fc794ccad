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

template <typename T>
std::vector<T> read_column(H5::H5File& f, const std::string& path, const std::string& name, const H5::PredType& mem) {
  try {
    auto ds = f.openDataSet(name);
    hsize_t n = 0;
    ds.getSpace().getSimpleExtentDims(&n);
    std::vector<T> out(n);
    if (n > 0) ds.read(out.data(), mem);
    return out;
  } catch (const H5::Exception& e) {
    CCC_FAIL(path, ": cannot read ", name, " (", e.getDetailMsg(), ")");
  }
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
    hsize_t n = 0;
    impl_->file.openDataSet("tokens").getSpace().getSimpleExtentDims(&n);
    rows_ = static_cast<int64_t>(n);
    if (impl_->file.nameExists("acts")) {
      auto g = impl_->file.openGroup("acts");
      for (hsize_t i = 0; i < g.getNumObjs(); ++i) hooks_.push_back(g.getObjnameByIdx(i));
      std::sort(hooks_.begin(), hooks_.end());
    }
  } catch (const H5::Exception& e) {
    CCC_FAIL(path, ": unreadable dump (", e.getDetailMsg(), ")");
  }
}

ActivationStore::~ActivationStore() = default;

std::vector<int64_t> ActivationStore::row_shape(const std::string& hook) const {
  CCC_CHECK(std::find(hooks_.begin(), hooks_.end(), hook) != hooks_.end(), path_, ": no activations of ", hook);
  auto space = impl_->file.openDataSet("acts/" + hook).getSpace();
  std::vector<hsize_t> dims(space.getSimpleExtentNdims());
  space.getSimpleExtentDims(dims.data());
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
    const H5::DataType ftype = ds.getDataType();
    if (ftype.getClass() == H5T_FLOAT && ftype.getSize() == 2) {
      // read the half bits as they are stored, convert here
      std::vector<uint16_t> raw(static_cast<size_t>(n * elems));
      ds.read(raw.data(), ftype, mspace, fspace);
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
