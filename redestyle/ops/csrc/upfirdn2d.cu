// Device side of upfirdn2d: one thread per output sample, visiting only the taps that land on
// non-inserted (non-zero) input samples, so no zero-stuffed or padded copy is ever made.
// Only the ATen/c10 headers needed here (not torch/extension.h): nvcc time is dominated by headers.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

namespace {

// First input index i >= 0 whose upsampled position i * up is at or after u0, and the tap offset
// a = i * up - u0 (>= 0) at which it falls inside the window starting at u0.
__device__ __forceinline__ void first_tap(int u0, int up, int& i, int& a) {
    i = u0 > 0 ? (u0 + up - 1) / up : 0;
    a = i * up - u0;
}

template <typename scalar_t, typename acc_t>
__global__ void upfirdn2d_kernel(scalar_t* __restrict__ out, const scalar_t* __restrict__ x,
                                 const acc_t* __restrict__ k, int64_t total, int in_h, int in_w, int out_h,
                                 int out_w, int kh, int kw, int up_x, int up_y, int down_x, int down_y,
                                 int px0, int py0) {
    const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int ox = static_cast<int>(idx % out_w);
        const int oy = static_cast<int>((idx / out_w) % out_h);
        const int64_t plane = idx / (static_cast<int64_t>(out_w) * out_h);
        const scalar_t* src = x + plane * in_h * in_w;
        // The window of output (oy, ox) covers upsampled rows oy*down_y - py0 + [0, kh) (likewise
        // columns); only rows that are multiples of up_y hold input samples.
        int iy, ay, ix0, ax0;
        first_tap(oy * down_y - py0, up_y, iy, ay);
        first_tap(ox * down_x - px0, up_x, ix0, ax0);
        acc_t acc = acc_t(0);
        for (; ay < kh && iy < in_h; ay += up_y, ++iy) {
            const scalar_t* row = src + static_cast<int64_t>(iy) * in_w;
            // True convolution: window tap a meets kernel tap (k - 1 - a).
            const acc_t* krow = k + static_cast<int64_t>(kh - 1 - ay) * kw + (kw - 1);
            for (int ix = ix0, ax = ax0; ax < kw && ix < in_w; ax += up_x, ++ix) {
                acc += static_cast<acc_t>(row[ix]) * krow[-ax];
            }
        }
        out[idx] = static_cast<scalar_t>(acc);
    }
}

}  // namespace

at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& kernel, int64_t up_x, int64_t up_y,
                             int64_t down_x, int64_t down_y, int64_t px0, int64_t px1, int64_t py0,
                             int64_t py1, int64_t out_h, int64_t out_w) {
    const c10::cuda::CUDAGuard guard(x.device());
    auto out = at::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
    const int64_t total = out.numel();
    if (total == 0) return out;
    const int threads = 256;
    const int blocks = static_cast<int>(std::min<int64_t>((total + threads - 1) / threads, 65536));
    auto stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, x.scalar_type(), "upfirdn2d", [&] {
        using acc_t = at::opmath_type<scalar_t>;
        upfirdn2d_kernel<scalar_t, acc_t><<<blocks, threads, 0, stream>>>(
            out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), kernel.data_ptr<acc_t>(), total,
            static_cast<int>(x.size(2)), static_cast<int>(x.size(3)), static_cast<int>(out_h),
            static_cast<int>(out_w), static_cast<int>(kernel.size(0)), static_cast<int>(kernel.size(1)),
            static_cast<int>(up_x), static_cast<int>(up_y), static_cast<int>(down_x), static_cast<int>(down_y),
            static_cast<int>(px0), static_cast<int>(py0));
    });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return out;
}
