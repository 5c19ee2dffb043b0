#include "framework/checkpoint/h5.h"

#include <hdf5.h>

#include "framework/core/error.h"

namespace ssm::checkpoint {
namespace {

// HDF5 prints its own error stacks by default; we report through ssm::Error instead.
// The setting is per thread in thread-safe HDF5 builds (the async writer has its own).
void quiet_hdf5() {
  thread_local bool once = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)once;
}

hid_t h5_type(DType t) {
  switch (t) {
    case DType::f32: return H5T_IEEE_F32LE;
    case DType::f64: return H5T_IEEE_F64LE;
    case DType::bf16: return H5T_STD_U16LE;  // raw bits; the "dtype" attribute says bf16
    case DType::i32: return H5T_STD_I32LE;
    case DType::i64: return H5T_STD_I64LE;
  }
  return H5T_IEEE_F32LE;
}

DType parse_dtype(const std::string& s, const std::string& where) {
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::i32, DType::i64})
    if (s == dtype_name(t)) return t;
  SSM_FAIL("{}: unknown dtype attribute '{}'", where, s);
}

void write_attr_string(hid_t obj, const char* name, const std::string& v) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, v.size() ? v.size() : 1);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t rc = a >= 0 ? H5Awrite(a, type, v.c_str()) : -1;
  if (a >= 0) H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
  SSM_CHECK(rc >= 0, "HDF5: cannot write attribute '{}'", name);
}

std::string read_attr_string(hid_t obj, const char* name) {
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  if (a < 0) return "";
  hid_t type = H5Aget_type(a);
  size_t n = H5Tget_size(type);
  std::string s(n, '\0');
  hid_t mem = H5Tcopy(H5T_C_S1);
  H5Tset_size(mem, n);
  H5Aread(a, mem, s.data());
  H5Tclose(mem);
  H5Tclose(type);
  H5Aclose(a);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

}  // namespace

uint64_t checksum64(const void* data, size_t n) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

// ---- writer -----------------------------------------------------------------------------

H5Writer::H5Writer(const std::string& path) : path_(path) {
  quiet_hdf5();
  file_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  SSM_CHECK(file_ >= 0, "{}: cannot create HDF5 file (missing directory, permissions or disk full?)", path);
}

H5Writer::~H5Writer() {
  if (file_ >= 0) H5Fclose(hid_t(file_));
}

void H5Writer::write(const std::string& name, DType dtype, const Dims& shape, const void* data, uint64_t checksum) {
  hsize_t dims[Dims::kMax];
  for (int i = 0; i < shape.size(); ++i) dims[i] = hsize_t(shape[i]);
  hid_t space = shape.size() ? H5Screate_simple(shape.size(), dims, nullptr) : H5Screate(H5S_SCALAR);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t ds = H5Dcreate2(hid_t(file_), name.c_str(), h5_type(dtype), space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Pclose(lcpl);
  H5Sclose(space);
  SSM_CHECK(ds >= 0, "{}: cannot create dataset '{}'", path_, name);
  herr_t rc = shape.numel() > 0 ? H5Dwrite(ds, h5_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0;
  if (rc >= 0) {
    write_attr_string(ds, "dtype", dtype_name(dtype));
    hid_t s1 = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(ds, "checksum", H5T_STD_U64LE, s1, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
      rc = H5Awrite(a, H5T_NATIVE_UINT64, &checksum);
      H5Aclose(a);
    } else {
      rc = -1;
    }
    H5Sclose(s1);
  }
  H5Dclose(ds);
  SSM_CHECK(rc >= 0, "{}: writing dataset '{}' failed (disk full?)", path_, name);
}

void H5Writer::close() {
  if (file_ < 0) return;
  herr_t f = H5Fflush(hid_t(file_), H5F_SCOPE_GLOBAL);
  herr_t c = H5Fclose(hid_t(file_));
  file_ = -1;
  SSM_CHECK(f >= 0 && c >= 0, "{}: flushing the HDF5 file failed (disk full?)", path_);
}

// ---- reader -----------------------------------------------------------------------------

H5Reader::H5Reader(const std::string& path) : path_(path) {
  quiet_hdf5();
#if H5_VERSION_GE(1, 12, 0)
  htri_t ok = H5Fis_accessible(path.c_str(), H5P_DEFAULT);
#else
  htri_t ok = H5Fis_hdf5(path.c_str());
#endif
  SSM_CHECK(ok > 0, "{}: missing or not an HDF5 file (truncated?)", path);
  file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  SSM_CHECK(file_ >= 0, "{}: cannot open HDF5 file (corrupt or truncated?)", path);
}

H5Reader::~H5Reader() {
  if (file_ >= 0) H5Fclose(hid_t(file_));
}

bool H5Reader::has(const std::string& name) const {
  // Check each path component: H5Lexists fails on a missing intermediate group.
  size_t pos = 0;
  while (true) {
    size_t next = name.find('/', pos);
    std::string prefix = name.substr(0, next);
    if (H5Lexists(hid_t(file_), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (next == std::string::npos) return true;
    pos = next + 1;
  }
}

H5Dataset H5Reader::info(const std::string& name) const {
  SSM_CHECK(has(name), "{}: dataset '{}' is missing", path_, name);
  hid_t ds = H5Dopen2(hid_t(file_), name.c_str(), H5P_DEFAULT);
  SSM_CHECK(ds >= 0, "{}: cannot open dataset '{}' (corrupt file?)", path_, name);
  H5Dataset d;
  d.name = name;
  std::string where = path_ + ":" + name;
  std::string dt = read_attr_string(ds, "dtype");
  if (dt.empty()) {
    H5Dclose(ds);
    SSM_FAIL("{}: dataset has no dtype attribute (not written by ssm?)", where);
  }
  d.dtype = parse_dtype(dt, where);
  hid_t space = H5Dget_space(ds);
  int nd = H5Sget_simple_extent_ndims(space);
  hsize_t dims[Dims::kMax];
  if (nd < 0 || nd > Dims::kMax) {
    H5Sclose(space);
    H5Dclose(ds);
    SSM_FAIL("{}: unsupported rank {}", where, nd);
  }
  H5Sget_simple_extent_dims(space, dims, nullptr);
  for (int i = 0; i < nd; ++i) d.shape.push_back(int64_t(dims[i]));
  H5Sclose(space);
  hid_t a = H5Aopen(ds, "checksum", H5P_DEFAULT);
  if (a >= 0) {
    H5Aread(a, H5T_NATIVE_UINT64, &d.checksum);
    H5Aclose(a);
  }
  H5Dclose(ds);
  return d;
}

H5Dataset H5Reader::read(const std::string& name) const {
  H5Dataset d = info(name);
  d.bytes.resize(size_t(d.shape.numel()) * size_t(dtype_size(d.dtype)));
  hid_t ds = H5Dopen2(hid_t(file_), name.c_str(), H5P_DEFAULT);
  herr_t rc = d.bytes.empty() ? 0 : H5Dread(ds, h5_type(d.dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, d.bytes.data());
  H5Dclose(ds);
  SSM_CHECK(rc >= 0, "{}: reading dataset '{}' failed (corrupt or truncated file?)", path_, name);
  return d;
}

std::vector<std::string> H5Reader::list() const {
  std::vector<std::string> out;
  // Link visit + object type check: portable across HDF5 1.10 (Debian) and 1.14.
  auto cb = [](hid_t group, const char* name, const H5L_info_t*, void* op) -> herr_t {
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj < 0) return -1;
    if (H5Iget_type(obj) == H5I_DATASET) static_cast<std::vector<std::string>*>(op)->push_back(name);
    H5Oclose(obj);
    return 0;
  };
  herr_t rc = H5Lvisit(hid_t(file_), H5_INDEX_NAME, H5_ITER_INC, cb, &out);
  SSM_CHECK(rc >= 0, "{}: cannot list datasets (corrupt file?)", path_);
  return out;
}

}  // namespace ssm::checkpoint
