// Reverse-mode autodiff on a tape.
//
// Every differentiable op, after computing its outputs, records one Node on the calling
// thread's tape when an input requires grad:
//
//   Tensor y = ...;                                     // forward result
//   if (autograd::needs_grad({&a, &b}))
//     autograd::record("mul", {&a, &b}, {&y}, [a, b](autograd::BackwardCtx& g) {
//       if (g.needs(0)) g.set(0, mul(g.grad_out(0), b));
//       if (g.needs(1)) g.set(1, mul(g.grad_out(0), a));
//     });
//
// The tape is in recording order, which is already a topological order, so backward is one
// reverse sweep: no recursion, no graph search. Nodes live in an arena (no heap allocation
// per node) and each is destroyed as soon as its backward ran, releasing the tensors it
// saved; the tape is cleared when backward ends ("the graph is freed"). Gradients of leaves
// (parameters) accumulate into Tensor::grad() across backward calls.
#pragma once
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <new>
#include <span>
#include <utility>
#include <vector>

#include "framework/core/tensor.h"

namespace ssm::autograd {

// Where the gradient of one recorded input goes.
struct Edge {
  int64_t slot = -1;                     // gradient slot of a non-leaf input
  std::shared_ptr<TensorImpl> leaf;      // a leaf input (parameter)
  Dims shape;                            // expected gradient geometry, checked on arrival
  DType dtype = DType::f32;
  Device device;
  bool active() const { return slot >= 0 || leaf != nullptr; }
};

struct OutputMeta {
  int64_t slot = -1;
  Dims shape;
  DType dtype = DType::f32;
  Device device;
};

class BackwardCtx {
 public:
  BackwardCtx(std::span<const Edge> in, std::span<const Tensor> grad_out, std::span<Tensor> grad_in)
      : in_(in), grad_out_(grad_out), grad_in_(grad_in) {}
  int num_inputs() const { return int(in_.size()); }
  int num_outputs() const { return int(grad_out_.size()); }
  // Does input i want a gradient? Skip the work when not.
  bool needs(int i) const { return in_[size_t(i)].active(); }
  // Gradient arriving at output i (zeros when none arrived but another output had one).
  const Tensor& grad_out(int i = 0) const { return grad_out_[size_t(i)]; }
  // Gradient for input i; must have the input's shape, dtype and device.
  void set(int i, Tensor g) {
    if (needs(i)) grad_in_[size_t(i)] = std::move(g);
  }

 private:
  std::span<const Edge> in_;
  std::span<const Tensor> grad_out_;
  std::span<Tensor> grad_in_;
};

struct Node {
  const char* name = "";
  std::span<Edge> inputs;
  std::span<OutputMeta> outputs;
  virtual ~Node() = default;
  virtual void backward(BackwardCtx& ctx) = 0;
};

// Bump allocator whose blocks are kept across backward calls: steady state makes no heap
// allocation per node.
class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena();
  void* allocate(size_t bytes, size_t align);
  void reset();  // forget every allocation, keep the blocks
  size_t bytes_reserved() const;

 private:
  struct Block {
    char* data;
    size_t size;
  };
  std::vector<Block> blocks_;
  size_t block_ = 0, used_ = 0;
};

using TensorPtrs = std::initializer_list<const Tensor*>;

class Tape {
 public:
  Tape() = default;
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;
  ~Tape() { clear(); }

  // Identifies the current recording; bumped by clear(), so tensors of a freed graph are
  // recognised by their stale tape_id.
  uint64_t id() const { return id_; }
  size_t num_nodes() const { return nodes_.size(); }
  int64_t num_slots() const { return num_slots_; }
  Arena& arena() { return arena_; }

  // Records `node` (already constructed in this tape's arena) with its inputs and outputs.
  void push(Node* node, std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs);
  // Destroys every node and frees the graph.
  void clear();

  std::vector<Node*>& nodes() { return nodes_; }

 private:
  Arena arena_;
  std::vector<Node*> nodes_;
  int64_t num_slots_ = 0;
  uint64_t id_ = 1;
};

// The calling thread's tape.
Tape& tape();

// True when grad mode is on and any of the tensors requires grad.
bool needs_grad(TensorPtrs tensors);
bool needs_grad(const std::vector<Tensor>& tensors);

template <class F>
struct FnNode final : Node {
  explicit FnNode(F&& f) : fn(std::move(f)) {}
  void backward(BackwardCtx& ctx) override { fn(ctx); }
  F fn;
};

template <class F>
void record_span(const char* name, std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs, F&& fn) {
  Tape& t = tape();
  using Fn = std::decay_t<F>;
  void* mem = t.arena().allocate(sizeof(FnNode<Fn>), alignof(FnNode<Fn>));
  Node* node = new (mem) FnNode<Fn>(Fn(std::forward<F>(fn)));
  node->name = name;
  t.push(node, inputs, outputs);
}

template <class F>
void record(const char* name, TensorPtrs inputs, std::initializer_list<Tensor*> outputs, F&& fn) {
  record_span(name, std::span<const Tensor* const>(inputs.begin(), inputs.size()),
              std::span<Tensor* const>(outputs.begin(), outputs.size()), std::forward<F>(fn));
}

// For ops with a variable number of inputs (concat) or outputs (split).
template <class F>
void record(const char* name, const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs, F&& fn) {
  std::vector<const Tensor*> in;
  std::vector<Tensor*> out;
  for (const Tensor& x : inputs) in.push_back(&x);
  for (Tensor& y : outputs) out.push_back(&y);
  record_span(name, in, out, std::forward<F>(fn));
}

// How the engine adds and creates gradients; supplied by framework/ops, which owns the
// kernels (the engine itself is device- and dtype-agnostic).
struct GradOps {
  Tensor (*add)(const Tensor& a, const Tensor& b) = nullptr;    // out-of-place a + b
  void (*add_into)(const Tensor& acc, const Tensor& g) = nullptr;  // acc += g in place
  Tensor (*clone)(const Tensor& g) = nullptr;                   // contiguous copy
  Tensor (*fill)(const Dims& shape, DType, Device, double value) = nullptr;
};

struct BackwardOptions {
  // Called once per leaf when its gradient for this backward is final (data-parallel
  // bucketing launches reductions from here, overlapping the rest of backward).
  std::function<void(const Tensor& leaf)> on_leaf_ready;
};

// Runs backward from `root` (seed = d(out)/d(root); may be undefined for a single-element
// root, meaning 1), accumulates into leaves' .grad, then frees the graph.
void run_backward(const Tensor& root, const Tensor& seed, const GradOps& ops, const BackwardOptions& opts = {});

}  // namespace ssm::autograd
