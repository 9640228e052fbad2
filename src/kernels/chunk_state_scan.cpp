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
  const int64_t batch_heads = c10::multiply_integers(in.x0.sizes().slice(0, in.x0.dim() - 2));
  auto with_batch = [&](std::initializer_list<int64_t> tail) { return shape_with(in.x0, 2, tail); };
  auto expect = [&](const at::Tensor& t, const std::vector<int64_t>& shape, const char* name) {
    if (t.sizes() != at::IntArrayRef(shape))
      fail("chunk_state_scan_cuda: ", name, " has shape ", t.sizes(), ", expected ", at::IntArrayRef(shape));
  };
  expect(in.a, with_batch({chunks, chunk, key_dim}), "a");
  expect(in.y_init, with_batch({chunks, chunk, value_dim}), "y_init");
  expect(in.b, with_batch({chunks, chunk, key_dim}), "b");
  expect(in.decay, with_batch({chunks}), "decay");
  if (in.x_add.defined()) expect(in.x_add, with_batch({chunks, key_dim, value_dim}), "x_add");

  auto x0 = packed(in.x0), y_init = packed(in.y_init), a = packed(in.a), b = packed(in.b), decay = packed(in.decay);
  auto x_add = in.x_add.defined() ? packed(in.x_add) : at::Tensor();
  ChunkScanResult out{at::empty(with_batch({chunks, key_dim, value_dim}), x0.options()), at::empty_like(y_init),
                      at::empty_like(x0)};
  c10::DeviceGuard guard(x0.device());
  launch::chunk_state_scan(x0.data_ptr<float>(), y_init.data_ptr<float>(), a.data_ptr<float>(), b.data_ptr<float>(),
                           decay.data_ptr<float>(), x_add.defined() ? x_add.data_ptr<float>() : nullptr,
                           out.states.data_ptr<float>(), out.y.data_ptr<float>(), out.x_final.data_ptr<float>(),
                           batch_heads, chunks, chunk, key_dim, value_dim, static_cast<float>(in.y_sign),
                           static_cast<float>(in.x_sign), in.reverse, current_stream(x0.device()));
  return out;
}

}  // namespace strata::kernels
