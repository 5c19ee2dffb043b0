#include "kernels/cpu/adamw.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/common/macros.h"

namespace ssm::kernels::cpu {
namespace {
constexpr int64_t kChunk = 1 << 15;  // elements per task; fixed so results never depend on threads

struct Task {
  int64_t tensor, begin, end;
};
}  // namespace

template <class T>
void adamw_step(const AdamwParams& p) {
  std::vector<Task> tasks;
  for (int64_t t = 0; t < p.num_tensors; ++t)
    for (int64_t b = 0; b < p.tensors[t].numel; b += kChunk)
      tasks.push_back({t, b, std::min(p.tensors[t].numel, b + kChunk)});
  const double bc1 = 1.0 - std::pow(p.beta1, double(p.step));
  const double bc2 = 1.0 - std::pow(p.beta2, double(p.step));
  const T b1 = T(p.beta1), b2 = T(p.beta2), eps = T(p.eps);
  const T step_size = T(p.lr / bc1), inv_sqrt_bc2 = T(1.0 / std::sqrt(bc2));
  const int64_t n_tasks = int64_t(tasks.size());
#pragma omp parallel for schedule(static) if (n_tasks > 1)
  for (int64_t k = 0; k < n_tasks; ++k) {
    const Task& task = tasks[size_t(k)];
    const AdamwTensor& a = p.tensors[task.tensor];
    T* w = static_cast<T*>(a.param);
    const T* g = static_cast<const T*>(a.grad);
    T* m = static_cast<T*>(a.exp_avg);
    T* v = static_cast<T*>(a.exp_avg_sq);
    const T decay = T(1.0 - p.lr * a.weight_decay);
    for (int64_t i = task.begin; i < task.end; ++i) {
      const T gi = g[i];
      m[i] = b1 * m[i] + (T(1) - b1) * gi;
      v[i] = b2 * v[i] + (T(1) - b2) * gi * gi;
      w[i] = w[i] * decay - step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
    }
  }
}

template <class T>
double sum_squares(const T* x, int64_t n) {
  const int64_t chunks = CEIL_DIV(n, kChunk);
  std::vector<double> part(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    double s = 0;
    for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) s += double(x[i]) * double(x[i]);
    part[size_t(c)] = s;
  }
  double s = 0;
  for (double v : part) s += v;
  return s;
}

template void adamw_step<float>(const AdamwParams&);
template void adamw_step<double>(const AdamwParams&);
template double sum_squares<float>(const float*, int64_t);
template double sum_squares<double>(const double*, int64_t);

}  // namespace ssm::kernels::cpu
