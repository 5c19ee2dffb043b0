// TensorBoard event files, written by hand: TFRecord framing around protobuf `Event`s.
//
//   TensorBoardSink tb("runs/quickstart/tensorboard");
//   tb.log(10, {{"loss", 2.31}, {"lr", 3e-3}});
//   // -> runs/quickstart/tensorboard/events.out.tfevents.1732500000.myhost
//   //    record 0: Event{wall_time, file_version: "brain.Event:2"}
//   //    record 1: Event{wall_time, step: 10, summary: {value: [{tag: "loss", simple_value: 2.31}]}}
//   //    record 2: Event{wall_time, step: 10, summary: {value: [{tag: "lr", simple_value: 0.003}]}}
//
// A record is   u64 length | u32 masked_crc32c(length bytes) | payload | u32 masked_crc32c(payload)
// (little-endian). Field numbers follow tensorboard/compat/proto/event.proto and summary.proto:
//   Event   { double wall_time = 1; int64 step = 2; string file_version = 3;
//             Summary summary = 5; SessionLog session_log = 7; }
//   Summary { repeated Value value = 1; }
//   Value   { string tag = 1; float simple_value = 2; }
//   SessionLog { SessionStatus status = 1; }   // START = 1
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "framework/train/metrics.h"

namespace ssm::train {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord uses.
// crc32c("123456789") == 0xE3069283. `crc` continues a previous result.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);
// TFRecord's masking: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t size);

class TensorBoardSink final : public MetricsSink {
 public:
  // Creates `dir` if needed and a new event file in it named
  // events.out.tfevents.<unix seconds>.<hostname>[.N] (".N" only when that name is taken).
  // `resumed_at`: the step a resumed run restarts after. A SessionLog START event at
  // resumed_at + 1 makes TensorBoard discard the steps > resumed_at that the interrupted
  // attempt wrote, so the curve has no duplicated tail.
  explicit TensorBoardSink(const std::string& dir, std::optional<int64_t> resumed_at = std::nullopt);
  ~TensorBoardSink() override;
  TensorBoardSink(const TensorBoardSink&) = delete;
  TensorBoardSink& operator=(const TensorBoardSink&) = delete;

  // One Event per scalar (the layout tf.summary writes), values rounded to float32.
  void log(int64_t step, const Scalars& scalars) override;
  void flush() override;
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& payload);

  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace ssm::train
