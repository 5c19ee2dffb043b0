#include "framework/optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "framework/core/error.h"

namespace ssm::optim {

void LrSchedule::validate() const {
  SSM_CHECK(std::isfinite(lr) && lr >= 0, "LrSchedule: lr {} must be finite and >= 0", lr);
  SSM_CHECK(min_lr >= 0 && min_lr <= lr, "LrSchedule: min_lr {} must be in [0, lr = {}]", min_lr, lr);
  SSM_CHECK(warmup_steps >= 0, "LrSchedule: warmup_steps {} must be >= 0", warmup_steps);
  if (kind != LrKind::constant)
    SSM_CHECK(total_steps > 0 && warmup_steps <= total_steps,
              "LrSchedule: a decaying schedule needs total_steps > 0 and warmup_steps <= total_steps "
              "(got warmup_steps {}, total_steps {})", warmup_steps, total_steps);
}

double LrSchedule::lr_at(int64_t step) const {
  validate();
  SSM_CHECK(step >= 0, "LrSchedule::lr_at: step {} must be >= 0", step);
  if (step < warmup_steps) return lr * double(step + 1) / double(warmup_steps);
  if (kind == LrKind::constant) return lr;
  const int64_t span = total_steps - warmup_steps;
  const double progress = span > 0 ? std::clamp(double(step - warmup_steps) / double(span), 0.0, 1.0) : 1.0;
  if (kind == LrKind::linear) return lr + (min_lr - lr) * progress;
  return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

}  // namespace ssm::optim
