// Dims: a fixed-capacity shape/stride vector (no heap), rank <= kMaxDims.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "kernels/common/macros.h"

namespace ssm {

class Dims {
 public:
  static constexpr int kMax = kernels::kMaxDims;
  Dims() = default;
  Dims(std::initializer_list<int64_t> v);
  explicit Dims(const std::vector<int64_t>& v);
  static Dims filled(int n, int64_t value);

  int size() const { return n_; }
  bool empty() const { return n_ == 0; }
  int64_t operator[](int i) const { return v_[i]; }
  int64_t& operator[](int i) { return v_[i]; }
  int64_t back() const { return v_[n_ - 1]; }
  const int64_t* begin() const { return v_; }
  const int64_t* end() const { return v_ + n_; }
  int64_t* data() { return v_; }
  const int64_t* data() const { return v_; }
  void push_back(int64_t x);
  void insert(int pos, int64_t x);
  void erase(int pos);
  int64_t numel() const;  // product of all entries (1 for rank 0)
  std::vector<int64_t> vec() const { return {begin(), end()}; }
  std::string str() const;  // "[2, 3]"
  bool operator==(const Dims& o) const;
  bool operator!=(const Dims& o) const { return !(*this == o); }

 private:
  int64_t v_[kMax] = {};
  int n_ = 0;
};

Dims contiguous_strides(const Dims& shape);
// Normalises a possibly negative dim index against rank; throws on out-of-range.
int wrap_dim(int dim, int rank);
// Broadcast two shapes numpy-style; throws with both shapes on mismatch.
Dims broadcast_shapes(const Dims& a, const Dims& b);

}  // namespace ssm
