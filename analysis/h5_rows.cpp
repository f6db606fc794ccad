#include "analysis/h5_rows.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <filesystem>
#include <map>

#include <H5Cpp.h>

#include "model/base/dist.h"
#include "model/base/error.h"
#include "model/base/fileio.h"

#ifdef CCC_WITH_MPI
#include <mpi.h>
#endif

namespace ccc::analysis {

namespace fs = std::filesystem;

Compression parse_compression(const std::string& s) {
  if (s == "none") return Compression::kNone;
  if (s == "gzip") return Compression::kGzip;
  if (s == "fast") return Compression::kFast;
  CCC_FAIL("--compression must be none, gzip or fast (deflate 1; HDF5 has no built-in LZF), got '", s, "'");
}

std::string to_string(Compression c) {
  switch (c) {
    case Compression::kNone: return "none";
    case Compression::kGzip: return "gzip";
    case Compression::kFast: return "fast";
  }
  return "?";
}

namespace {

// h5py's float16: IEEE half, little endian.
H5::FloatType half_type() {
  H5::FloatType t(H5::PredType::IEEE_F32LE);
  t.setFields(15, 10, 5, 0, 10);
  t.setSize(2);
  t.setEbias(15);
  return t;
}

H5::DataType file_type(Dtype d) {
  switch (d) {
    case Dtype::kI32: return H5::PredType::STD_I32LE;
    case Dtype::kI64: return H5::PredType::STD_I64LE;
    case Dtype::kF16: return half_type();
    case Dtype::kF32: return H5::PredType::IEEE_F32LE;
  }
  return H5::PredType::IEEE_F32LE;
}

size_t type_bytes(Dtype d) { return d == Dtype::kF16 ? 2 : (d == Dtype::kI64 ? 8 : 4); }

}  // namespace

struct H5Rows::Impl {
  std::unique_ptr<H5::H5File> file;
  struct Set {
    H5::DataSet ds;
    H5::DataType mem;
    std::vector<hsize_t> shape;  // rows, row dims...
  };
  std::map<std::string, Set> sets;
};

H5Rows::H5Rows(const std::string& path, bool force, Compression compression, bool shared)
    : impl_(std::make_unique<Impl>()), path_(path), compression_(compression) {
  force_ = force;
  H5::Exception::dontPrint();
  const bool many = dist::size() > 1;
  shared_ = shared && many;
  if (many && !shared_ && !dist::root()) return;  // rank 0 alone writes this file: the others write nothing
  std::error_code ec;
  if (dist::root()) {
    CCC_CHECK(!path.empty(), "dump: no output path");
    CCC_CHECK(force || !fs::exists(path, ec), path, " exists (use --force to replace it)");
    CCC_CHECK(!fs::exists(path, ec) || fs::is_regular_file(path, ec), path, " exists and is not a regular file");
    const fs::path parent = fs::path(path).parent_path();
    CCC_CHECK(parent.empty() || fs::is_directory(parent, ec), path, ": directory ", parent.string(), " does not exist");
    remove_stale_temps(path);
    tmp_ = temp_path_for(path);
  }
  if (shared_) {
    CCC_CHECK(compression == Compression::kNone, path,
              ": under mpirun the ranks write one file through parallel HDF5, which writes compressed (filtered) "
              "datasets only in collective calls; use --compression none, or run one process");
    tmp_ = dist::broadcast(tmp_);  // one temporary name for all ranks: rank 0's
  }
  temp_slot_ = register_temp(tmp_);  // removed if SIGINT / SIGTERM / SIGHUP ends the run
  try {
    if (shared_) {
#ifdef CCC_WITH_MPI
      H5::FileAccPropList fapl;
      CCC_CHECK(H5Pset_fapl_mpio(fapl.getId(), MPI_COMM_WORLD, MPI_INFO_NULL) >= 0, path,
                ": parallel HDF5 cannot open the file through MPI-IO");
      impl_->file = std::make_unique<H5::H5File>(tmp_, H5F_ACC_TRUNC, H5::FileCreatPropList::DEFAULT, fapl);
#else
      CCC_FAIL("dump: a shared file needs the MPI build");
#endif
    } else {
      impl_->file = std::make_unique<H5::H5File>(tmp_, H5F_ACC_TRUNC);
    }
  } catch (const H5::Exception& e) {
    CCC_FAIL(path, ": cannot create ", tmp_, " (", e.getDetailMsg(), ")");
  }
}

namespace {

// Points the file's descriptor at /dev/null, so that what HDF5 still flushes of a file whose write failed
// (EFBIG, ENOSPC) goes nowhere instead of failing again.
void discard_writes(H5::H5File& file) {
  try {
    void* handle = nullptr;
    file.getVFDHandle(&handle);
    const int fd = handle ? *static_cast<int*>(handle) : -1;
    const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);  // HDF5 may read back while it closes
    if (fd >= 0 && null_fd >= 0) ::dup2(null_fd, fd);
    if (null_fd >= 0) ::close(null_fd);
  } catch (const H5::Exception&) {
  }
}

}  // namespace

void H5Rows::fail_write(const std::string& what, const H5::Exception& e) {
  // the system's reason (EFBIG past ulimit -f, ENOSPC) when the write reached the file, else HDF5's
  const int err = errno;  // read first: nothing below may change it
  write_failed_ = true;
  if (err == EFBIG || err == ENOSPC || err == EIO || err == EDQUOT) CCC_FAIL("cannot write ", path_, ": ", std::strerror(err));
  CCC_FAIL(path_, ": ", what, " failed (", e.getDetailMsg(), ")");
}

H5Rows::~H5Rows() {
  if (committed_ || !impl_->file) return;
  H5::Exception::dontPrint();
  if (shared_) {
    // closing is collective: an error on this rank must not wait for the others (main ends the job
    // with MPI_Abort); the temporary's name goes now
    (void)new std::map<std::string, Impl::Set>(std::move(impl_->sets));  // intentionally leaked
    (void)impl_->file.release();
  } else if (!write_failed_) {
    try {  // an abandoned but healthy file (an error elsewhere, an interrupted run) closes normally
      impl_->sets.clear();
      impl_->file->close();
    } catch (const H5::Exception&) {
      (void)impl_->file.release();  // never close twice (see below)
    }
  } else if (impl_->file) {
    // After a failed write HDF5 1.10 cannot close the file: its final flush fails again and a second close
    // faults in H5F__close. Point the descriptor at /dev/null and leave the objects open: libhdf5 closes
    // them once at exit, flushing into /dev/null. The temporary's name is removed now.
    discard_writes(*impl_->file);
    (void)new std::map<std::string, Impl::Set>(std::move(impl_->sets));  // intentionally leaked
    (void)impl_->file.release();
  }
  std::error_code ec;
  fs::remove(tmp_, ec);
  unregister_temp(temp_slot_);
}

void H5Rows::create(const std::string& name, Dtype type, const std::vector<int64_t>& row_shape, int64_t rows) {
  if (!impl_->file) return;  // not this rank's file
  try {
    // intermediate groups
    for (size_t p = name.find('/'); p != std::string::npos; p = name.find('/', p + 1)) {
      const std::string g = name.substr(0, p);
      if (!impl_->file->nameExists(g)) impl_->file->createGroup(g);
    }
    std::vector<hsize_t> dims{static_cast<hsize_t>(rows)};
    size_t row_elems = 1;
    for (int64_t d : row_shape) {
      dims.push_back(static_cast<hsize_t>(d));
      row_elems *= static_cast<size_t>(d);
    }
    H5::DSetCreatPropList plist;
    if (rows > 0) {
      const size_t row_bytes = std::max<size_t>(1, row_elems * type_bytes(type));
      std::vector<hsize_t> chunk(dims);
      chunk[0] = static_cast<hsize_t>(std::clamp<int64_t>(static_cast<int64_t>((1 << 20) / row_bytes), 1, rows));
      plist.setChunk(static_cast<int>(chunk.size()), chunk.data());
      if (compression_ != Compression::kNone) {
        plist.setShuffle();
        plist.setDeflate(compression_ == Compression::kGzip ? 4 : 1);
      }
    }
    // parallel HDF5 allocates every chunk at creation and would write the fill value through all of them
    // first (the file written twice); every row is written by some rank (capture checks the count)
    if (shared_) plist.setFillTime(H5D_FILL_TIME_NEVER);
    if (type == Dtype::kF32 || type == Dtype::kF16) {
      const float nan = std::numeric_limits<float>::quiet_NaN();
      if (type == Dtype::kF32) plist.setFillValue(H5::PredType::NATIVE_FLOAT, &nan);
    }
    H5::DataSpace space(static_cast<int>(dims.size()), dims.data());
    Impl::Set s;
    s.ds = impl_->file->createDataSet(name, file_type(type), space, plist);
    s.mem = type == Dtype::kF16 ? half_type() : (type == Dtype::kI32 ? H5::DataType(H5::PredType::NATIVE_INT32)
                                                : type == Dtype::kI64 ? H5::DataType(H5::PredType::NATIVE_INT64)
                                                                      : H5::DataType(H5::PredType::NATIVE_FLOAT));
    s.shape = dims;
    impl_->sets[name] = s;
  } catch (const H5::Exception& e) {
    CCC_FAIL(path_, ": cannot create dataset ", name, " (", e.getDetailMsg(), ")");
  }
}

void H5Rows::write(const std::string& name, int64_t first, int64_t n, const void* data) {
  if (n <= 0 || !impl_->file) return;
  auto it = impl_->sets.find(name);
  CCC_CHECK(it != impl_->sets.end(), "dump: no dataset ", name);
  auto& s = it->second;
  H5::Exception::dontPrint();  // HDF5's error stack (and its auto-print switch) is per thread: writers run on workers
  CCC_CHECK(first >= 0 && static_cast<hsize_t>(first + n) <= s.shape[0], "dump: rows ", first, "+", n, " outside ",
            name, " (", s.shape[0], " rows)");
  try {
    std::vector<hsize_t> start(s.shape.size(), 0), count(s.shape);
    start[0] = static_cast<hsize_t>(first);
    count[0] = static_cast<hsize_t>(n);
    H5::DataSpace fspace = s.ds.getSpace();
    fspace.selectHyperslab(H5S_SELECT_SET, count.data(), start.data());
    H5::DataSpace mspace(static_cast<int>(count.size()), count.data());
    errno = 0;
    s.ds.write(data, s.mem, mspace, fspace);
  } catch (const H5::Exception& e) {
    fail_write("writing " + name, e);
  }
}

void H5Rows::attr(const std::string& name, const std::string& value) {
  if (!impl_->file) return;
  try {
    H5::StrType t(H5::PredType::C_S1, H5T_VARIABLE);
    t.setCset(H5T_CSET_UTF8);
    auto a = impl_->file->createAttribute(name, t, H5::DataSpace(H5S_SCALAR));
    a.write(t, value);
  } catch (const H5::Exception& e) {
    CCC_FAIL(path_, ": attribute ", name, " (", e.getDetailMsg(), ")");
  }
}

void H5Rows::attr(const std::string& name, int64_t value) {
  if (!impl_->file) return;
  try {
    auto a = impl_->file->createAttribute(name, H5::PredType::STD_I64LE, H5::DataSpace(H5S_SCALAR));
    a.write(H5::PredType::NATIVE_INT64, &value);
  } catch (const H5::Exception& e) {
    CCC_FAIL(path_, ": attribute ", name, " (", e.getDetailMsg(), ")");
  }
}

void H5Rows::commit() {
  if (!impl_->file) {
    committed_ = true;
    return;
  }
  H5::Exception::dontPrint();
  try {
    errno = 0;
    impl_->file->flush(H5F_SCOPE_GLOBAL);
  } catch (const H5::Exception& e) {
    fail_write("flushing", e);
  }
  try {
    impl_->sets.clear();
    impl_->file->close();
  } catch (const H5::Exception& e) {
    (void)impl_->file.release();  // never close twice (see discard_writes)
    CCC_FAIL(path_, ": closing ", tmp_, " failed (", e.getDetailMsg(), ")");
  }
  committed_ = true;  // publish_file removes the temporary when it fails
  if (shared_) {
    dist::barrier();  // every rank has closed its handle: rank 0 publishes
    if (!dist::root()) {
      unregister_temp(temp_slot_);
      return;
    }
  }
  publish_file(tmp_, path_, force_);
  unregister_temp(temp_slot_);
}

}  // namespace ccc::analysis
