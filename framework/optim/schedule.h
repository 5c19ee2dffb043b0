// Learning-rate schedules: linear warmup, then constant, cosine or linear decay to min_lr.
// lr_at is a pure function of the step, so a resumed run continues the exact trajectory.
//
//   optim::LrSchedule s{.kind = optim::LrKind::cosine, .lr = 3e-4, .min_lr = 3e-5,
//                       .warmup_steps = 100, .total_steps = 1000};
//   s.lr_at(0)    == 3e-4 / 100           // warmup: lr · (step + 1) / warmup_steps
//   s.lr_at(99)   == 3e-4                 // last warmup step reaches the peak
//   s.lr_at(550)  == (3e-4 + 3e-5) / 2    // halfway through the decay
//   s.lr_at(1000) == 3e-5                 // and min_lr from total_steps on
#pragma once
#include <cstdint>

namespace ssm::optim {

enum class LrKind { constant, cosine, linear };

struct LrSchedule {
  LrKind kind = LrKind::cosine;
  double lr = 3e-4;           // peak learning rate
  double min_lr = 0.0;        // floor of the decay (ignored by constant)
  int64_t warmup_steps = 0;   // steps 0 .. warmup_steps - 1 ramp linearly up to lr
  int64_t total_steps = 0;    // decay ends here (needed by cosine / linear)

  // Learning rate of optimizer step `step` (0 = the first step). Decay progress is
  // (step - warmup_steps) / (total_steps - warmup_steps), clamped to [0, 1].
  double lr_at(int64_t step) const;
  // Throws on inconsistent settings (negative values, min_lr > lr, warmup > total, ...).
  void validate() const;
};

}  // namespace ssm::optim
