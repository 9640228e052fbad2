#include "strata/kernels/chunk_state_scan.h"

#include <c10/core/DeviceGuard.h>

#include "strata/core/error.h"

namespace strata::kernels {

namespace {

// Contiguous and 16-byte aligned (a view into a larger buffer may start mid-vector).
at::Tensor packed(const at::Tensor& t) {
  auto c = t.contiguous();
  return reinterpret_cast<std::uintptr_t>(c.data_ptr()) % 16 == 0 ? c : c.clone();
}

}  // namespace

bool chunk_state_scan_kernel_applies(const ChunkScanInputs& in) {
  if (!use_cuda_kernels(in.x0) || in.x0.dim() < 2) return false;
  for (const auto* t : {&in.x0, &in.y_init, &in.a, &in.b, &in.decay})
    if (t->scalar_type() != at::kFloat || t->device() != in.x0.device()) return false;
  if (in.x_add.defined() && (in.x_add.scalar_type() != at::kFloat || in.x_add.device() != in.x0.device())) return false;
  return in.a.dim() >= 3 && launch::chunk_state_scan_fits(in.x0.size(-2), in.a.size(-2));
}

ChunkScanResult chunk_state_scan_cuda(const ChunkScanInputs& in) {
  if (!cuda_kernels_built()) fail("chunk_state_scan_cuda: this build of strata has no CUDA kernels (configure with -DSTRATA_CUDA=ON)");
  if (!in.x0.is_cuda()) fail("chunk_state_scan_cuda: x0 is on ", in.x0.device(), "; expected a CUDA tensor");
  if (!chunk_state_scan_kernel_applies(in))
    fail("chunk_state_scan_cuda: x0 ", in.x0.sizes(), " (", in.x0.scalar_type(), "), a ", in.a.sizes(),
         ": expected float32 tensors on one GPU, Dk a multiple of 4 up to ", launch::kMaxScanKeyDim,
         " and chunks up to ", launch::kMaxScanChunk, " (together within the kernel's shared memory)");
  const int64_t key_dim = in.x0.size(-2), value_dim = in.x0.size(-1);
  const int64_t chunks = in.a.size(-3), chunk = in.a.size(-2);
  // The leading (sequence, head) dimensions of the chunk arrays: each pair is scanned on its own.
  const auto pairs_shape = in.a.sizes().slice(0, in.a.dim() - 3);
  const int64_t pairs = c10::multiply_integers(pairs_shape);
  const bool segmented = in.chunk_offsets.defined();
  if (segmented && (in.chunk_offsets.dim() != 1 || in.chunk_offsets.size(0) < 2))
    fail("chunk_state_scan_cuda: chunk_offsets has shape ", in.chunk_offsets.sizes(), "; expected [S + 1], S >= 1");
  const int64_t segments = segmented ? in.chunk_offsets.size(0) - 1 : 1;
  auto with_pairs = [&](std::initializer_list<int64_t> tail) {
    std::vector<int64_t> shape(pairs_shape.begin(), pairs_shape.end());
    shape.insert(shape.end(), tail);
    return shape;
  };
  auto per_segment = [&](std::initializer_list<int64_t> tail) {
    auto shape = with_pairs(tail);
    if (segmented) shape.insert(shape.begin(), segments);
    return shape;
  };
  auto expect = [&](const at::Tensor& t, const std::vector<int64_t>& shape, const char* name) {
    if (t.sizes() != at::IntArrayRef(shape))
      fail("chunk_state_scan_cuda: ", name, " has shape ", t.sizes(), ", expected ", at::IntArrayRef(shape));
  };
  expect(in.x0, per_segment({key_dim, value_dim}), "x0");
  expect(in.y_init, with_pairs({chunks, chunk, value_dim}), "y_init");
  expect(in.b, with_pairs({chunks, chunk, key_dim}), "b");
  expect(in.decay, with_pairs({chunks}), "decay");
  if (in.x_add.defined()) expect(in.x_add, with_pairs({chunks, key_dim, value_dim}), "x_add");

  auto x0 = packed(in.x0), y_init = packed(in.y_init), a = packed(in.a), b = packed(in.b), decay = packed(in.decay);
  auto x_add = in.x_add.defined() ? packed(in.x_add) : at::Tensor();
  auto offsets = segmented ? in.chunk_offsets.to(x0.device(), at::kLong).contiguous() : at::Tensor();
  ChunkScanResult out{at::empty(with_pairs({chunks, key_dim, value_dim}), x0.options()), at::empty_like(y_init),
                      at::empty_like(x0)};
  c10::DeviceGuard guard(x0.device());
  launch::chunk_state_scan(x0.data_ptr<float>(), y_init.data_ptr<float>(), a.data_ptr<float>(), b.data_ptr<float>(),
                           decay.data_ptr<float>(), x_add.defined() ? x_add.data_ptr<float>() : nullptr,
                           segmented ? offsets.data_ptr<int64_t>() : nullptr, segments,
                           out.states.data_ptr<float>(), out.y.data_ptr<float>(), out.x_final.data_ptr<float>(),
                           pairs, chunks, chunk, key_dim, value_dim, static_cast<float>(in.y_sign),
                           static_cast<float>(in.x_sign), in.reverse, current_stream(x0.device()));
  return out;
}

}  // namespace strata::kernels
