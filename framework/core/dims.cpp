#include "framework/core/dims.h"

#include "framework/core/error.h"

namespace ssm {

Dims::Dims(std::initializer_list<int64_t> v) {
  SSM_CHECK(int(v.size()) <= kMax, "tensor rank {} exceeds the maximum of {}", v.size(), kMax);
  for (int64_t x : v) v_[n_++] = x;
}

Dims::Dims(const std::vector<int64_t>& v) {
  SSM_CHECK(int(v.size()) <= kMax, "tensor rank {} exceeds the maximum of {}", v.size(), kMax);
  for (int64_t x : v) v_[n_++] = x;
}

Dims Dims::filled(int n, int64_t value) {
  SSM_CHECK(n >= 0 && n <= kMax, "tensor rank {} out of range", n);
  Dims d;
  for (int i = 0; i < n; ++i) d.v_[i] = value;
  d.n_ = n;
  return d;
}

void Dims::push_back(int64_t x) {
  SSM_CHECK(n_ < kMax, "tensor rank exceeds the maximum of {}", kMax);
  v_[n_++] = x;
}

void Dims::insert(int pos, int64_t x) {
  SSM_CHECK(n_ < kMax, "tensor rank exceeds the maximum of {}", kMax);
  SSM_CHECK(pos >= 0 && pos <= n_, "insert position {} out of range for rank {}", pos, n_);
  for (int i = n_; i > pos; --i) v_[i] = v_[i - 1];
  v_[pos] = x;
  ++n_;
}

void Dims::erase(int pos) {
  SSM_CHECK(pos >= 0 && pos < n_, "erase position {} out of range for rank {}", pos, n_);
  for (int i = pos; i + 1 < n_; ++i) v_[i] = v_[i + 1];
  --n_;
}

int64_t Dims::numel() const {
  int64_t n = 1;
  for (int i = 0; i < n_; ++i) n *= v_[i];
  return n;
}

std::string Dims::str() const {
  std::string s = "[";
  for (int i = 0; i < n_; ++i) s += (i ? ", " : "") + std::to_string(v_[i]);
  return s + "]";
}

bool Dims::operator==(const Dims& o) const {
  if (n_ != o.n_) return false;
  for (int i = 0; i < n_; ++i)
    if (v_[i] != o.v_[i]) return false;
  return true;
}

Dims contiguous_strides(const Dims& shape) {
  Dims s = Dims::filled(shape.size(), 1);
  int64_t acc = 1;
  for (int i = shape.size() - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= std::max<int64_t>(shape[i], 1);
  }
  return s;
}

int wrap_dim(int dim, int rank) {
  int d = dim < 0 ? dim + rank : dim;
  SSM_CHECK(d >= 0 && d < rank, "dimension {} out of range for a tensor of rank {}", dim, rank);
  return d;
}

Dims broadcast_shapes(const Dims& a, const Dims& b) {
  int n = std::max(a.size(), b.size());
  Dims out = Dims::filled(n, 1);
  for (int i = 0; i < n; ++i) {
    int64_t x = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t y = i < n - b.size() ? 1 : b[i - (n - b.size())];
    SSM_CHECK(x == y || x == 1 || y == 1, "shapes {} and {} cannot be broadcast together", a.str(),
              b.str());
    out[i] = x == 1 ? y : x;
  }
  return out;
}

}  // namespace ssm
