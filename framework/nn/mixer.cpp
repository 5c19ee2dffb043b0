#include "framework/nn/mixer.h"

#include "framework/ops/ops.h"

namespace ssm::nn {

void LayerState::detach() {
  if (conv.defined()) conv = conv.detach();
  if (ssm.defined()) ssm = ssm.detach();
  if (ssm_im.defined()) ssm_im = ssm_im.detach();
}

Tensor conv_step(LayerState& st, const Tensor& x, const Tensor& weight, const Tensor& bias, bool silu) {
  NoGradGuard ng;
  int64_t B = x.shape()[0], C = x.shape()[1], K = weight.shape()[1];
  // Rolling window (B, C, K): [oldest .. newest-1 | slot the kernel fills with x].
  Tensor window = Tensor::zeros({B, C, K}, x.dtype(), x.device());
  if (K > 1) {
    if (!st.conv.defined()) st.conv = Tensor::zeros({B, C, K - 1}, x.dtype(), x.device());
    copy_(window.narrow(2, 1, K - 1), st.conv);
  }
  Tensor y = causal_conv1d_step(window, x, weight, bias, silu);
  if (K > 1) st.conv = contiguous(window.narrow(2, 1, K - 1));
  return y;
}

}  // namespace ssm::nn
