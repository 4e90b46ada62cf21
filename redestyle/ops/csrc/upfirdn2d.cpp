// Host side of upfirdn2d: argument checks, output size, and the Python binding.
// Semantics: reference/stylegan2.md §6 (zero-stuff by up, pad/crop, true FIR convolution, keep every
// down-th sample).
#include <torch/extension.h>

torch::Tensor upfirdn2d_cuda(const torch::Tensor& x, const torch::Tensor& kernel, int64_t up_x, int64_t up_y,
                             int64_t down_x, int64_t down_y, int64_t px0, int64_t px1, int64_t py0,
                             int64_t py1, int64_t out_h, int64_t out_w);

static torch::Tensor upfirdn2d(const torch::Tensor& x, const torch::Tensor& kernel, int64_t up_x, int64_t up_y,
                               int64_t down_x, int64_t down_y, int64_t px0, int64_t px1, int64_t py0,
                               int64_t py1) {
    TORCH_CHECK(x.is_cuda() && x.dim() == 4 && x.is_contiguous(), "upfirdn2d: x must be a contiguous CUDA [N, C, H, W]");
    TORCH_CHECK(kernel.dim() == 2 && kernel.is_contiguous() && kernel.device() == x.device(),
                "upfirdn2d: kernel must be a contiguous [kh, kw] on x's device");
    const auto acc = x.scalar_type() == at::ScalarType::Double ? at::ScalarType::Double : at::ScalarType::Float;
    TORCH_CHECK(kernel.scalar_type() == acc, "upfirdn2d: kernel must be float32 (float64 for float64 x)");
    TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1, "upfirdn2d: up/down must be >= 1");
    // Output size of reference/stylegan2.md §6; a non-positive numerator means an empty output.
    const int64_t num_h = x.size(2) * up_y + py0 + py1 - kernel.size(0) + down_y;
    const int64_t num_w = x.size(3) * up_x + px0 + px1 - kernel.size(1) + down_x;
    TORCH_CHECK(num_h >= down_y && num_w >= down_x, "upfirdn2d: padding/kernel leave an empty output");
    TORCH_CHECK(x.numel() < (int64_t(1) << 31), "upfirdn2d: input too large for 32-bit plane indexing");
    return upfirdn2d_cuda(x, kernel, up_x, up_y, down_x, down_y, px0, px1, py0, py1, num_h / down_y, num_w / down_x);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("upfirdn2d", &upfirdn2d, "upsample, pad, FIR filter, downsample each [H, W] plane");
}
