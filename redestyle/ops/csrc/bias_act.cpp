// Host side of the fused bias + leaky ReLU op: argument checks and the Python binding.
// Semantics: reference/stylegan2.md §6 (grad=0 forward, grad=1 gradient from the saved output).
#include <torch/extension.h>

torch::Tensor bias_act_cuda(const torch::Tensor& x, const torch::Tensor& b, const torch::Tensor& ref,
                            int64_t grad, double alpha, double gain);

static torch::Tensor bias_act(const torch::Tensor& x, const torch::Tensor& b, const torch::Tensor& ref,
                              int64_t grad, double alpha, double gain) {
    TORCH_CHECK(x.is_cuda(), "bias_act: x must be a CUDA tensor");
    TORCH_CHECK(x.is_contiguous(), "bias_act: x must be contiguous");
    TORCH_CHECK(x.dim() >= 2, "bias_act: x must be [N, C, ...]");
    TORCH_CHECK(grad == 0 || grad == 1, "bias_act: grad must be 0 or 1");
    if (b.numel() > 0) {
        TORCH_CHECK(b.dim() == 1 && b.size(0) == x.size(1), "bias_act: bias must be [C]");
        TORCH_CHECK(b.device() == x.device() && b.scalar_type() == x.scalar_type(),
                    "bias_act: bias must match x's device and dtype");
        TORCH_CHECK(b.is_contiguous(), "bias_act: bias must be contiguous");
    }
    if (grad == 1) {
        TORCH_CHECK(ref.sizes() == x.sizes() && ref.device() == x.device() &&
                        ref.scalar_type() == x.scalar_type() && ref.is_contiguous(),
                    "bias_act: ref must be a contiguous tensor like x");
    }
    return bias_act_cuda(x, b, ref, grad, alpha, gain);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("bias_act", &bias_act,
          "y = leaky_relu(x + b, alpha) * gain (grad=0) or x * (ref > 0 ? 1 : alpha) * gain (grad=1)");
}
