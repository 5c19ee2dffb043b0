#include "framework/dist/consistency.h"

#include <fstream>
#include <vector>

namespace ssm::dist {

namespace {
constexpr uint64_t kFnvOffset = 14695981039346656037ull, kFnvPrime = 1099511628211ull;

uint64_t fnv_update(uint64_t h, const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    h ^= uint64_t(static_cast<unsigned char>(p[i]));
    h *= kFnvPrime;
  }
  return h;
}
}  // namespace

uint64_t fingerprint(std::string_view bytes) { return fnv_update(kFnvOffset, bytes.data(), bytes.size()); }

uint64_t binary_fingerprint() {
  std::ifstream f("/proc/self/exe", std::ios::binary);
  SSM_CHECK(f.good(), "binary_fingerprint: cannot read /proc/self/exe");
  std::vector<char> buf(1 << 20);
  uint64_t h = kFnvOffset;
  while (f) {
    f.read(buf.data(), std::streamsize(buf.size()));
    h = fnv_update(h, buf.data(), size_t(f.gcount()));
  }
  return h;
}

void check_consistency(Communicator& comm, std::string_view recipe_text, std::string_view binary_id) {
  // Written directly: from_vector goes through double, which would round 64-bit hashes.
  const Tensor local = Tensor::empty({1, 2}, DType::i64);
  local.data<int64_t>()[0] = int64_t(fingerprint(recipe_text));
  local.data<int64_t>()[1] = int64_t(fingerprint(binary_id));
  const Tensor all = comm.all_gather(local, 0);  // (size, 2)
  const int64_t* h = all.data<int64_t>();
  std::string msg;
  const char* what[2] = {"the recipe", "the binary"};
  const char* fix[2] = {"every rank must run the same resolved recipe (same file and overrides)",
                        "every rank must run the same build of ssm"};
  for (int k = 0; k < 2; ++k) {
    std::string differ;
    for (int r = 1; r < comm.size(); ++r)
      if (h[r * 2 + k] != h[k])
        differ += fmt::format("{}rank {} has hash {:#018x}", differ.empty() ? "" : ", ", r, uint64_t(h[r * 2 + k]));
    if (!differ.empty())
      msg += fmt::format("{}{} differs across ranks: {}, rank 0 has {:#018x}; {}", msg.empty() ? "" : ". ", what[k],
                         differ, uint64_t(h[k]), fix[k]);
  }
  SSM_CHECK(msg.empty(), "check_consistency on {}: {}", comm.describe(), msg);
}

}  // namespace ssm::dist
