#include "framework/autograd/tape.h"

#include <algorithm>
#include <cstdlib>
#include <unordered_map>

namespace ssm::autograd {

// ---- arena ------------------------------------------------------------------------

Arena::~Arena() {
  for (Block& b : blocks_) std::free(b.data);
}

void* Arena::allocate(size_t bytes, size_t align) {
  constexpr size_t kBlock = 64 * 1024;
  while (true) {
    if (block_ < blocks_.size()) {
      Block& b = blocks_[block_];
      size_t start = (used_ + align - 1) / align * align;
      if (start + bytes <= b.size) {
        used_ = start + bytes;
        return b.data + start;
      }
      ++block_;
      used_ = 0;
      continue;
    }
    size_t size = std::max(kBlock, bytes + align);
    char* data = static_cast<char*>(std::aligned_alloc(64, (size + 63) / 64 * 64));
    SSM_CHECK(data != nullptr, "autograd arena: out of host memory allocating {} bytes", size);
    blocks_.push_back({data, size});
  }
}

void Arena::reset() {
  block_ = 0;
  used_ = 0;
}

size_t Arena::bytes_reserved() const {
  size_t n = 0;
  for (const Block& b : blocks_) n += b.size;
  return n;
}

// ---- tape -------------------------------------------------------------------------

Tape& tape() {
  thread_local Tape t;
  return t;
}

bool needs_grad(TensorPtrs tensors) {
  if (!GradMode::enabled()) return false;
  for (const Tensor* t : tensors)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& tensors) {
  if (!GradMode::enabled()) return false;
  for (const Tensor& t : tensors)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void Tape::push(Node* node, std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) {
  // Validate before recording anything: a node that is not pushed is destroyed here, so the
  // tensors its backward captured are released even when this throws.
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor* x = inputs[i];
    if (!x || !x->defined() || !x->requires_grad()) continue;
    const AutogradMeta& m = x->impl()->autograd;
    if (m.slot >= 0 && m.tape_id != id_) {
      const char* name = node->name;
      node->~Node();
      SSM_FAIL("input {} of '{}' was produced by '{}' in a graph that backward() already freed; "
               "detach() values carried across steps (e.g. recurrent state)",
               i, name, m.producer ? m.producer : "?");
    }
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    Tensor* y = outputs[i];
    if (!y || !y->defined()) continue;
    const AutogradMeta& m = y->impl()->autograd;
    if (m.slot >= 0 || m.requires_grad) {
      const char* name = node->name;
      node->~Node();
      SSM_FAIL("output {} of '{}' is already part of a graph", i, name);
    }
  }
  Edge* in = static_cast<Edge*>(arena_.allocate(sizeof(Edge) * inputs.size(), alignof(Edge)));
  for (size_t i = 0; i < inputs.size(); ++i) {
    Edge* e = new (in + i) Edge();
    const Tensor* x = inputs[i];
    if (!x || !x->defined() || !x->requires_grad()) continue;
    const AutogradMeta& m = x->impl()->autograd;
    if (m.slot < 0) {
      e->leaf = x->impl_ptr();
    } else {
      e->slot = m.slot;  // validated above: same recording
    }
    e->shape = x->shape();
    e->dtype = x->dtype();
    e->device = x->device();
  }
  OutputMeta* out = static_cast<OutputMeta*>(arena_.allocate(sizeof(OutputMeta) * outputs.size(), alignof(OutputMeta)));
  for (size_t i = 0; i < outputs.size(); ++i) {
    OutputMeta* o = new (out + i) OutputMeta();
    Tensor* y = outputs[i];
    if (!y || !y->defined()) continue;
    AutogradMeta& m = y->impl()->autograd;
    m.requires_grad = true;
    m.slot = num_slots_++;
    m.tape_id = id_;
    m.producer = node->name;
    o->slot = m.slot;
    o->shape = y->shape();
    o->dtype = y->dtype();
    o->device = y->device();
  }
  node->inputs = {in, inputs.size()};
  node->outputs = {out, outputs.size()};
  nodes_.push_back(node);
}

static void destroy_node(Node* n) {
  for (Edge& e : n->inputs) e.~Edge();
  for (OutputMeta& o : n->outputs) o.~OutputMeta();
  n->~Node();
}

void Tape::clear() {
  for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it)
    if (*it) destroy_node(*it);
  nodes_.clear();
  arena_.reset();
  num_slots_ = 0;
  ++id_;
}

// ---- backward ---------------------------------------------------------------------

namespace {

void check_grad(const Tensor& g, const Edge& e, const Node& n, size_t i) {
  SSM_CHECK(g.shape() == e.shape && g.dtype() == e.dtype && g.device() == e.device,
            "backward of '{}' produced a gradient {} for input {} of shape {} {} {}", n.name, g.describe(), i,
            e.shape.str(), dtype_name(e.dtype), e.device.str());
}

void accumulate_leaf(TensorImpl* leaf, const Tensor& g, const GradOps& ops) {
  if (!leaf->autograd.grad) {
    // Take ownership when nobody else can see the gradient; otherwise copy, so a later
    // in-place accumulation never writes into a tensor the graph still uses.
    bool sole = g.impl_ptr().use_count() == 1 && g.storage().use_count() == 1 && g.is_contiguous();
    leaf->autograd.grad = sole ? g.impl_ptr() : ops.clone(g).impl_ptr();
    return;
  }
  ops.add_into(Tensor(leaf->autograd.grad), g);
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& seed_in, const GradOps& ops, const BackwardOptions& opts) {
  SSM_CHECK(root.defined(), "backward() on an undefined tensor");
  SSM_CHECK(root.requires_grad(), "backward() on a tensor that does not require grad ({})", root.describe());
  Tensor seed = seed_in;
  if (!seed.defined()) {
    SSM_CHECK(root.numel() == 1, "backward() on a non-scalar tensor {} needs a seed gradient of the same shape",
              root.describe());
    seed = ops.fill(root.shape(), root.dtype(), root.device(), 1.0);
  }
  SSM_CHECK(seed.shape() == root.shape() && seed.dtype() == root.dtype(),
            "backward(): seed {} does not match the output {}", seed.describe(), root.describe());
  NoGradGuard no_grad;  // backward itself is not recorded (no double backward)
  if (root.is_leaf()) {
    accumulate_leaf(root.impl(), seed, ops);
    if (opts.on_leaf_ready) opts.on_leaf_ready(root);
    return;
  }
  Tape& t = tape();
  const AutogradMeta& rm = root.impl()->autograd;
  SSM_CHECK(rm.tape_id == t.id(),
            "backward through a graph that was already freed (the tensor was produced by '{}' before an "
            "earlier backward() ended its graph)", rm.producer ? rm.producer : "?");

  std::vector<Tensor> grads(size_t(t.num_slots()));
  grads[size_t(rm.slot)] = seed;

  // Remaining uses per leaf, so `on_leaf_ready` fires right after a leaf's last contribution.
  std::unordered_map<TensorImpl*, int> uses;
  if (opts.on_leaf_ready)
    for (Node* n : t.nodes())
      for (const Edge& e : n->inputs)
        if (e.leaf) ++uses[e.leaf.get()];
  auto leaf_done = [&](const Edge& e) {
    if (!opts.on_leaf_ready || !e.leaf) return;
    if (--uses[e.leaf.get()] == 0) opts.on_leaf_ready(Tensor(e.leaf));
  };

  std::vector<Tensor> gout, gin;
  auto& nodes = t.nodes();
  for (size_t k = nodes.size(); k-- > 0;) {
    Node* n = nodes[k];
    bool any = false;
    for (const OutputMeta& o : n->outputs)
      if (o.slot >= 0 && grads[size_t(o.slot)].defined()) any = true;
    if (any) {
      gout.assign(n->outputs.size(), Tensor());
      for (size_t i = 0; i < n->outputs.size(); ++i) {
        const OutputMeta& o = n->outputs[i];
        if (o.slot < 0) continue;
        Tensor& g = grads[size_t(o.slot)];
        gout[i] = g.defined() ? std::move(g) : ops.fill(o.shape, o.dtype, o.device, 0.0);
        g = Tensor();
      }
      gin.assign(n->inputs.size(), Tensor());
      BackwardCtx ctx(n->inputs, gout, gin);
      n->backward(ctx);
      for (size_t i = 0; i < n->inputs.size(); ++i) {
        const Edge& e = n->inputs[i];
        Tensor& g = gin[i];
        if (e.active() && g.defined()) {
          check_grad(g, e, *n, i);
          if (e.slot >= 0) {
            Tensor& acc = grads[size_t(e.slot)];
            acc = acc.defined() ? ops.add(acc, g) : std::move(g);
          } else {
            accumulate_leaf(e.leaf.get(), g, ops);
          }
        }
        leaf_done(e);
      }
      gout.clear();
      gin.clear();
    } else {
      for (const Edge& e : n->inputs) leaf_done(e);
    }
    destroy_node(n);  // frees the tensors it saved as early as possible
    nodes[k] = nullptr;
  }
  t.clear();
}

}  // namespace ssm::autograd
