#include "framework/checkpoint/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "framework/ops/view.h"

namespace ssm::checkpoint {

static_assert(std::endian::native == std::endian::little, "safetensors data is little endian; so is this reader");

namespace fs = std::filesystem;

namespace {

// Header lengths above this are refused before allocating (the reference implementation's
// limit is 100 MB; a header holds names and shapes only).
constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;

struct DtypeInfo {
  const char* name;
  DType stored;  // what read() returns
  int itemsize;  // bytes per element in the file
};
constexpr DtypeInfo kDtypes[] = {{"F32", DType::f32, 4}, {"F64", DType::f64, 8}, {"BF16", DType::bf16, 2},
                                 {"I32", DType::i32, 4}, {"I64", DType::i64, 8}, {"F16", DType::f32, 2}};

const DtypeInfo* dtype_info(const std::string& name) {
  for (const DtypeInfo& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

// IEEE half -> float (F16 files only; exact).
float half_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (man << 13);  // inf / nan
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    u = sign;
  } else {  // subnormal: renormalise
    int e = -1;
    do {
      ++e;
      man <<= 1;
    } while ((man & 0x400) == 0);
    u = sign | (uint32_t(112 - e) << 23) | ((man & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

class Fd {
 public:
  Fd(const std::string& path, int flags, mode_t mode = 0644) : fd_(::open(path.c_str(), flags, mode)) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

// Reads exactly n bytes at `offset`; false on a short read (the file shrank) or an I/O error.
bool pread_all(int fd, void* buf, uint64_t n, uint64_t offset) {
  char* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, size_t(std::min<uint64_t>(n, uint64_t(1) << 30)), off_t(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= uint64_t(r);
    offset += uint64_t(r);
  }
  return true;
}

void write_all(int fd, const void* buf, uint64_t n, const std::string& path) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t w = ::write(fd, p, size_t(std::min<uint64_t>(n, uint64_t(1) << 30)));
    if (w < 0 && errno == EINTR) continue;
    SSM_CHECK(w > 0, "{}: write failed: {} (disk full?)", path, std::strerror(errno));
    p += w;
    n -= uint64_t(w);
  }
}

Tensor host_contiguous(const Tensor& t) {
  NoGradGuard ng;
  Tensor h = t.device().is_cpu() ? t.detach() : to(t.detach(), Device::cpu());
  return contiguous(h);
}

}  // namespace

const char* safetensors_dtype(DType d) {
  switch (d) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
  }
  return "?";
}

// ---- writer ------------------------------------------------------------------------------

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<Tensor> host;
  host.reserve(tensors.size());
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const NamedTensor& nt : tensors) {
    SSM_CHECK(!nt.name.empty() && nt.name != "__metadata__", "{}: invalid tensor name '{}'", path, nt.name);
    SSM_CHECK(seen.insert(nt.name).second, "{}: tensor '{}' is given twice", path, nt.name);
    SSM_CHECK(nt.data.defined(), "{}: tensor '{}' is undefined", path, nt.name);
    host.push_back(host_contiguous(nt.data));
    const Tensor& t = host.back();
    uint64_t n = t.nbytes();
    header[nt.name] = {{"dtype", safetensors_dtype(t.dtype())}, {"shape", t.shape().vec()},
                       {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts at a multiple of 8
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  {
    Fd fd(tmp, O_WRONLY | O_CREAT | O_TRUNC);
    SSM_CHECK(fd.get() >= 0, "{}: cannot create: {}", tmp, std::strerror(errno));
    try {
      uint64_t n = text.size();
      unsigned char len[8];
      for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
      write_all(fd.get(), len, 8, path);
      write_all(fd.get(), text.data(), text.size(), path);
      for (const Tensor& t : host) write_all(fd.get(), t.raw_data(), t.nbytes(), path);
      SSM_CHECK(::fsync(fd.get()) == 0, "{}: fsync failed: {}", path, std::strerror(errno));
    } catch (...) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw;
    }
    SSM_CHECK(::close(fd.release()) == 0, "{}: close failed: {}", path, std::strerror(errno));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  SSM_CHECK(!ec, "{}: rename to {} failed: {}", tmp, path, ec.message());
}

std::vector<std::string> write_safetensors_dir(const std::string& dir, const std::vector<NamedTensor>& tensors,
                                               uint64_t max_shard_bytes,
                                               const std::map<std::string, std::string>& metadata) {
  SSM_CHECK(max_shard_bytes > 0, "safetensors: max_shard_bytes must be positive");
  fs::create_directories(dir);
  // Stale files of an earlier export would make loaders pick the wrong set.
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    bool ours = n == "model.safetensors" || n == "model.safetensors.index.json" ||
                (n.rfind("model-", 0) == 0 && n.find("-of-") != std::string::npos &&
                 n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0);
    if (ours) fs::remove(e.path());
  }
  uint64_t total = 0;
  for (const NamedTensor& t : tensors) total += t.data.nbytes();
  if (total <= max_shard_bytes) {
    write_safetensors(dir + "/model.safetensors", tensors, metadata);
    return {"model.safetensors"};
  }
  std::vector<std::vector<NamedTensor>> shards(1);
  uint64_t in_shard = 0;
  for (const NamedTensor& t : tensors) {
    uint64_t n = t.data.nbytes();
    if (!shards.back().empty() && in_shard + n > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(t);
    in_shard += n;
  }
  std::vector<std::string> files;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    std::string name = fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards.size());
    write_safetensors(dir + "/" + name, shards[s], metadata);
    for (const NamedTensor& t : shards[s]) weight_map[t.name] = name;
    files.push_back(name);
  }
  nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  {
    std::ofstream f(dir + "/model.safetensors.index.json", std::ios::trunc);
    f << index.dump(2) << "\n";
    f.flush();
    SSM_CHECK(f.good(), "{}/model.safetensors.index.json: write failed (disk full?)", dir);
  }
  files.push_back("model.safetensors.index.json");
  return files;
}

// ---- reader ------------------------------------------------------------------------------

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  Fd fd(path, O_RDONLY);
  SSM_CHECK(fd.get() >= 0, "{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  SSM_CHECK(::fstat(fd.get(), &st) == 0, "{}: cannot stat: {}", path, std::strerror(errno));
  const uint64_t file_size = uint64_t(st.st_size);
  SSM_CHECK(file_size >= 8, "{}: not a safetensors file: {} bytes, shorter than the 8-byte header length", path,
            file_size);
  unsigned char len[8];
  SSM_CHECK(pread_all(fd.get(), len, 8, 0), "{}: cannot read the header length", path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(len[i]) << (8 * i);
  SSM_CHECK(n <= file_size - 8, "{}: bad header length {}: the file has only {} bytes after the length field", path,
            n, file_size - 8);
  SSM_CHECK(n <= kMaxHeaderBytes, "{}: bad header length {} (more than the {} bytes allowed)", path, n,
            kMaxHeaderBytes);
  SSM_CHECK(n >= 2, "{}: bad header length {}: too short for a JSON object", path, n);
  std::string text(size_t(n), '\0');
  SSM_CHECK(pread_all(fd.get(), text.data(), n, 8), "{}: cannot read the {}-byte header", path, n);
  data_start_ = 8 + n;
  const uint64_t data_size = file_size - data_start_;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    SSM_FAIL("{}: the header is not valid JSON ({})", path, e.what());
  }
  SSM_CHECK(header.is_object(), "{}: the header must be a JSON object, got {}", path, header.type_name());
  for (auto& [name, j] : header.items()) {
    if (name == "__metadata__") {
      SSM_CHECK(j.is_object(), "{}: __metadata__ must be an object of strings", path);
      for (auto& [k, v] : j.items()) {
        SSM_CHECK(v.is_string(), "{}: __metadata__ entry '{}' must be a string, got {}", path, k, v.type_name());
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    SSM_CHECK(j.is_object() && j.contains("dtype") && j.contains("shape") && j.contains("data_offsets"),
              "{}: tensor '{}': expected an object with dtype, shape and data_offsets", path, name);
    const auto& jd = j.at("dtype");
    SSM_CHECK(jd.is_string(), "{}: tensor '{}': dtype must be a string", path, name);
    SafetensorsEntry e;
    e.name = name;
    e.dtype_name = jd.get<std::string>();
    const DtypeInfo* info = dtype_info(e.dtype_name);
    SSM_CHECK(info != nullptr, "{}: tensor '{}': unknown dtype '{}' (this reader supports F32, F64, BF16, I32, I64, F16)",
              path, name, e.dtype_name);
    e.dtype = info->stored;
    const auto& js = j.at("shape");
    SSM_CHECK(js.is_array(), "{}: tensor '{}': shape must be an array", path, name);
    SSM_CHECK(int(js.size()) <= Dims::kMax, "{}: tensor '{}': rank {} exceeds the supported {}", path, name, js.size(),
              Dims::kMax);
    uint64_t bytes = uint64_t(info->itemsize);
    for (const auto& d : js) {
      SSM_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0),
                "{}: tensor '{}': shape entries must be non-negative integers, got {}", path, name, d.dump());
      uint64_t v = d.get<uint64_t>();
      SSM_CHECK(v <= uint64_t(INT64_MAX) && !__builtin_mul_overflow(bytes, v, &bytes),
                "{}: tensor '{}': shape {} overflows", path, name, js.dump());
      e.shape.push_back(int64_t(v));
    }
    const auto& jo = j.at("data_offsets");
    SSM_CHECK(jo.is_array() && jo.size() == 2 && jo[0].is_number_unsigned() && jo[1].is_number_unsigned(),
              "{}: tensor '{}': data_offsets must be two non-negative integers, got {}", path, name, jo.dump());
    e.begin = jo[0].get<uint64_t>();
    e.end = jo[1].get<uint64_t>();
    SSM_CHECK(e.begin <= e.end, "{}: tensor '{}': data_offsets [{}, {}] end before they begin", path, name, e.begin,
              e.end);
    SSM_CHECK(e.end <= data_size,
              "{}: tensor '{}': data_offsets [{}, {}] are out of range: the data section holds {} bytes (truncated "
              "file?)",
              path, name, e.begin, e.end, data_size);
    SSM_CHECK(e.end - e.begin == bytes,
              "{}: tensor '{}': data_offsets [{}, {}] span {} bytes, but {} {} needs {} bytes", path, name, e.begin,
              e.end, e.end - e.begin, e.dtype_name, js.dump(), bytes);
    entries_.push_back(std::move(e));
  }
  std::sort(entries_.begin(), entries_.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t at = 0;
  const SafetensorsEntry* prev = nullptr;
  for (const SafetensorsEntry& e : entries_) {
    if (e.begin < at)
      SSM_FAIL("{}: tensors '{}' [{}, {}) and '{}' [{}, {}) overlap", path, prev->name, prev->begin, prev->end,
               e.name, e.begin, e.end);
    if (e.begin > at)
      SSM_FAIL("{}: {} bytes of the data section before tensor '{}' [{}, {}) belong to no tensor (tensors must be "
               "contiguous)",
               path, e.begin - at, e.name, e.begin, e.end);
    at = e.end;
    prev = &e;
  }
  SSM_CHECK(at == data_size, "{}: the data section has {} bytes but its tensors cover only {} (trailing bytes)", path,
            data_size, at);
  for (size_t i = 0; i < entries_.size(); ++i) by_name_[entries_[i].name] = i;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &entries_[it->second];
}

Tensor SafetensorsFile::read(const std::string& name) const {
  const SafetensorsEntry* e = find(name);
  SSM_CHECK(e != nullptr, "{}: no tensor '{}'", path_, name);
  Fd fd(path_, O_RDONLY);
  SSM_CHECK(fd.get() >= 0, "{}: cannot open: {}", path_, std::strerror(errno));
  Tensor t = Tensor::empty(e->shape, e->dtype);
  const uint64_t n = e->end - e->begin;
  if (e->dtype_name == "F16") {
    std::vector<uint16_t> half(size_t(n / 2));
    SSM_CHECK(pread_all(fd.get(), half.data(), n, data_start_ + e->begin),
              "{}: tensor '{}': short read (the file changed or is truncated)", path_, name);
    float* out = t.data<float>();
    for (size_t i = 0; i < half.size(); ++i) out[i] = half_to_float(half[i]);
  } else if (n > 0) {
    SSM_CHECK(pread_all(fd.get(), t.raw_data(), n, data_start_ + e->begin),
              "{}: tensor '{}': short read (the file changed or is truncated)", path_, name);
  }
  return t;
}

// ---- directory ---------------------------------------------------------------------------

SafetensorsDir::SafetensorsDir(const std::string& dir) : dir_(dir) {
  const std::string index_path = dir + "/model.safetensors.index.json";
  if (fs::exists(index_path)) {
    std::ifstream f(index_path);
    std::stringstream ss;
    ss << f.rdbuf();
    nlohmann::json index;
    try {
      index = nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::exception& e) {
      SSM_FAIL("{}: not valid JSON ({})", index_path, e.what());
    }
    SSM_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
              "{}: expected an object with a 'weight_map' object", index_path);
    std::map<std::string, size_t> file_index;
    for (auto& [name, jf] : index["weight_map"].items()) {
      SSM_CHECK(jf.is_string(), "{}: weight_map entry '{}' must be a file name", index_path, name);
      std::string file = jf.get<std::string>();
      SSM_CHECK(!file.empty() && file.find('/') == std::string::npos && file != "." && file != "..",
                "{}: weight_map entry '{}' names '{}', which is not a plain file name in this directory", index_path,
                name, file);
      auto it = file_index.find(file);
      if (it == file_index.end()) {
        SSM_CHECK(fs::exists(dir + "/" + file), "{}: weight_map entry '{}' names the missing shard {}", index_path, name,
                  file);
        files_.emplace_back(dir + "/" + file);
        it = file_index.emplace(file, files_.size() - 1).first;
      }
      SSM_CHECK(files_[it->second].find(name) != nullptr, "{}: weight_map puts '{}' in {}, which has no such tensor",
                index_path, name, file);
      where_[name] = it->second;
    }
    return;
  }
  const std::string single = dir + "/model.safetensors";
  if (!fs::exists(single)) {
    SSM_CHECK(fs::is_directory(dir), "{}: no such directory", dir);
    bool bin = fs::exists(dir + "/pytorch_model.bin") || fs::exists(dir + "/pytorch_model.bin.index.json");
    SSM_FAIL("{}: no model.safetensors or model.safetensors.index.json{}", dir,
             bin ? " (only a pytorch_model.bin: re-save it with save_pretrained(dir, safe_serialization=True))" : "");
  }
  files_.emplace_back(single);
  for (const SafetensorsEntry& e : files_[0].entries()) where_[e.name] = 0;
}

std::vector<std::string> SafetensorsDir::names() const {
  std::vector<std::string> out;
  for (const auto& [n, i] : where_) out.push_back(n);
  return out;
}

const SafetensorsEntry& SafetensorsDir::entry(const std::string& name) const {
  auto it = where_.find(name);
  SSM_CHECK(it != where_.end(), "{}: no tensor '{}'", dir_, name);
  return *files_[it->second].find(name);
}

Tensor SafetensorsDir::read(const std::string& name) const {
  auto it = where_.find(name);
  SSM_CHECK(it != where_.end(), "{}: no tensor '{}'", dir_, name);
  return files_[it->second].read(name);
}

}  // namespace ssm::checkpoint
