// Deterministic CSR segment-sum, CUDA C++ (earthgraph kernel backend "cuda").
//
// values (B, R, F) contiguous; ptr (S+1,) int64 offsets; order (E,) int64 rows in
// segment order, or an empty tensor when the rows are already sorted.
// out[b, s, f] = sum over k in [ptr[s], ptr[s+1]) of values[b, order[k] (or k), f],
// summed in a fixed order in float32 (float64 for double): no atomics, so the same
// inputs give the same bits on every run.
//
// One thread block per (segment, batch member, feature tile); the threads of a block
// own consecutive features, so every row is read in coalesced, vectorisable runs.
#include <ATen/AccumulateType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

namespace {

constexpr int kThreads = 128;

template <typename scalar_t, typename acc_t, bool kHasOrder>
__global__ void segment_sum_kernel(const scalar_t* __restrict__ values, const int64_t* __restrict__ ptr,
                                   const int64_t* __restrict__ order, scalar_t* __restrict__ out,
                                   int64_t num_features, int64_t values_batch_stride, int64_t out_batch_stride) {
  const int64_t seg = blockIdx.x;
  const int64_t b = blockIdx.y;
  const int64_t f = static_cast<int64_t>(blockIdx.z) * blockDim.x + threadIdx.x;
  if (f >= num_features) return;
  const int64_t start = ptr[seg];
  const int64_t end = ptr[seg + 1];
  const scalar_t* v = values + b * values_batch_stride + f;
  acc_t acc = acc_t(0);
  for (int64_t k = start; k < end; ++k) {
    const int64_t row = kHasOrder ? __ldg(order + k) : k;
    acc += static_cast<acc_t>(v[row * num_features]);
  }
  out[b * out_batch_stride + seg * num_features + f] = static_cast<scalar_t>(acc);
}

}  // namespace

torch::Tensor segment_sum(torch::Tensor values, torch::Tensor ptr, torch::Tensor order) {
  TORCH_CHECK(values.is_cuda() && ptr.is_cuda(), "segment_sum: values and ptr must be CUDA tensors");
  TORCH_CHECK(values.dim() == 3, "segment_sum: values must be (B, R, F), got ", values.sizes());
  TORCH_CHECK(ptr.scalar_type() == torch::kInt64, "segment_sum: ptr must be int64");
  const bool has_order = order.numel() > 0;
  if (has_order) TORCH_CHECK(order.is_cuda() && order.scalar_type() == torch::kInt64, "segment_sum: order must be int64 CUDA");
  const c10::cuda::CUDAGuard guard(values.device());
  values = values.contiguous();
  ptr = ptr.contiguous();
  const int64_t batch = values.size(0), features = values.size(2), segments = ptr.numel() - 1;
  auto out = torch::empty({batch, segments, features}, values.options());
  if (out.numel() == 0) return out;
  const dim3 block(kThreads);
  const dim3 grid(segments, batch, (features + kThreads - 1) / kThreads);
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::ScalarType::Half, at::ScalarType::BFloat16, values.scalar_type(), "segment_sum", [&] {
    using acc_t = at::acc_type<scalar_t, true>;
    const int64_t* order_ptr = has_order ? order.contiguous().data_ptr<int64_t>() : nullptr;
    if (has_order) {
      segment_sum_kernel<scalar_t, acc_t, true><<<grid, block, 0, stream>>>(
          values.data_ptr<scalar_t>(), ptr.data_ptr<int64_t>(), order_ptr, out.data_ptr<scalar_t>(), features,
          values.stride(0), out.stride(0));
    } else {
      segment_sum_kernel<scalar_t, acc_t, false><<<grid, block, 0, stream>>>(
          values.data_ptr<scalar_t>(), ptr.data_ptr<int64_t>(), nullptr, out.data_ptr<scalar_t>(), features,
          values.stride(0), out.stride(0));
    }
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("segment_sum", &segment_sum, "deterministic CSR segment-sum (values (B, R, F), ptr, order)");
}
