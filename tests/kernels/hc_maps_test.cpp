// mHC's post and res maps from the projection f: the twin (ATen ops) against the formula and
// float64 anywhere, the dispatch, the CUDA entry point's errors, and (on the GPU machine, with
// STRATA_TEST_DEVICE=cuda in a -DSTRATA_CUDA=ON build) the one-kernel op against the twin and
// float64, its determinism, and recompute staying bitwise with it.
#include "strata/kernels/hc_maps.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "kernel_test_util.h"
#include "strata/core/error.h"
#include "strata/layers/bias_dropout_add.h"
#include "strata/layers/hyper_connection.h"
#include "strata/layers/hyper_connection_maps.h"
#include "strata/layers/sinkhorn.h"
#include "test_util.h"

namespace strata::kernels {
namespace {

using testing::relative_error;

const double kEps = 1e-6;

// What reaches the loss: post's gradient, res's, or both.
enum class Probe { Post, Res, Both };

const char* name_of(Probe probe) {
  switch (probe) {
    case Probe::Post:
      return "d post only";
    case Probe::Res:
      return "d res only";
    case Probe::Both:
      return "d post and d res";
  }
  return "";
}

// f [batch..., n (n + 2)], base, scale as the layers draw them: f of a normalised projection,
// base and scale off their init so that every term matters.
struct Inputs {
  at::Tensor f, base, scale;
};

Inputs random_inputs(const std::vector<int64_t>& batch, int64_t n, at::Device device) {
  const auto options = at::TensorOptions().device(device).dtype(at::kFloat);
  auto shape = batch;
  shape.push_back(n * (n + 2));
  return {at::randn(shape, options), at::randn({n * (n + 2)}, options) * 0.5, at::randn({3}, options) + 1.0};
}

// post, res, then the gradients of f, base and scale for the loss sum(post * g_post) +
// sum(res * g_res) (the terms `probe` names; the other output gets no gradient at all).
using PostRes = std::function<HcPostRes(const at::Tensor&, const at::Tensor&, const at::Tensor&)>;

std::vector<at::Tensor> run(const PostRes& op, const Inputs& in, const at::Tensor& g_post, const at::Tensor& g_res,
                            Probe probe) {
  auto f = in.f.detach().clone().requires_grad_(true);
  auto base = in.base.detach().clone().requires_grad_(true);
  auto scale = in.scale.detach().clone().requires_grad_(true);
  const auto maps = op(f, base, scale);
  at::Tensor loss;
  if (probe != Probe::Res) loss = (maps.post * g_post.to(maps.post.scalar_type())).sum();
  if (probe != Probe::Post) {
    auto term = (maps.res * g_res.to(maps.res.scalar_type())).sum();
    loss = loss.defined() ? loss + term : term;
  }
  loss.backward();
  return {maps.post.detach(), maps.res.detach(), f.grad(), base.grad(), scale.grad()};
}

const char* const kNames[] = {"post", "res", "d f", "d base", "d scale"};

PostRes twin(int64_t n, int64_t iters) {
  return [=](const at::Tensor& f, const at::Tensor& base, const at::Tensor& scale) {
    return hyper_connection_post_res_reference(f, base, scale, n, iters, kEps);
  };
}

Inputs as_float64(const Inputs& in) {
  return {in.f.to(at::kDouble), in.base.to(at::kDouble), in.scale.to(at::kDouble)};
}

// The twin is the maps' formula: post = 2 sigmoid(scale[1] f_post + base_post) and res Sinkhorn-
// Knopp's twin on scale[2] f_res + base_res, the same ops (so the same bits).
TEST(HcMaps, TwinIsTheFormula) {
  at::manual_seed(21);
  const auto device = strata::testing::test_device();
  for (int64_t n : {1, 3, 4}) {
    const auto in = random_inputs({2, 7}, n, device);
    const auto maps = hyper_connection_post_res_reference(in.f, in.base, in.scale, n, 20, kEps);
    auto post = 2 * at::sigmoid(in.f.narrow(-1, n, n) * in.scale[1] + in.base.narrow(0, n, n));
    auto logits = (in.f.narrow(-1, 2 * n, n * n) * in.scale[2] + in.base.narrow(0, 2 * n, n * n)).unflatten(-1, {n, n});
    EXPECT_TRUE(at::equal(maps.post, post)) << "n " << n;
    EXPECT_TRUE(at::equal(maps.res, sinkhorn_knopp_unrolled(logits, 20, kEps))) << "n " << n;
    EXPECT_EQ(maps.post.sizes(), (std::vector<int64_t>{2, 7, n}));
    EXPECT_EQ(maps.res.sizes(), (std::vector<int64_t>{2, 7, n, n}));
  }
}

// The twin's float32 gradients against its float64 ones (what the kernel's are judged by too):
// f's pre columns get none, base's pre entries none, scale[0] none.
TEST(HcMaps, TwinGradientsMatchFloat64) {
  at::manual_seed(22);
  const auto device = strata::testing::test_device();
  for (int64_t n : {1, 2, 4})
    for (Probe probe : {Probe::Post, Probe::Res, Probe::Both}) {
      const auto in = random_inputs({3, 5}, n, device);
      auto g_post = at::randn({3, 5, n}, in.f.options());
      auto g_res = at::randn({3, 5, n, n}, in.f.options());
      const auto got = run(twin(n, 20), in, g_post, g_res, probe);
      const auto reference = run(twin(n, 20), as_float64(in), g_post, g_res, probe);
      const std::string what = strata::cat("n ", n, ", ", name_of(probe));
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_TRUE(got[i].defined()) << what << " " << kNames[i];
        EXPECT_LE(relative_error(got[i], reference[i]), 1e-5) << what << " " << kNames[i];
      }
      EXPECT_EQ(at::count_nonzero(got[2].narrow(-1, 0, n)).item<int64_t>(), 0) << what;
      EXPECT_EQ(at::count_nonzero(got[3].narrow(0, 0, n)).item<int64_t>(), 0) << what;
      EXPECT_EQ(got[4][0].item<float>(), 0.0f) << what;
    }
}

// Off CUDA (and for float64 f, or n > 8) the layer op is the twin, bit for bit.
TEST(HcMaps, DispatchRunsTheTwinWhereTheKernelDoesNotApply) {
  at::manual_seed(23);
  const auto in = random_inputs({2, 3}, 4, at::kCPU);
  EXPECT_FALSE(hc_post_res_maps_applies(in.f, 4));
  const auto a = hyper_connection_post_res(in.f, in.base, in.scale, 4, 20, kEps);
  const auto b = hyper_connection_post_res_reference(in.f, in.base, in.scale, 4, 20, kEps);
  EXPECT_TRUE(at::equal(a.post, b.post));
  EXPECT_TRUE(at::equal(a.res, b.res));
  const auto device = strata::testing::test_device();
  EXPECT_FALSE(hc_post_res_maps_applies(random_inputs({2}, 4, device).f.to(at::kDouble), 4));
  EXPECT_FALSE(hc_post_res_maps_applies(random_inputs({2}, 9, device).f, 9));
  EXPECT_FALSE(hc_post_res_maps_applies(random_inputs({2}, 4, device).f, 3));  // f's width is not n (n + 2)
}

TEST(HcMaps, CudaEntryPointRefusesCpuTensorsByName) {
  const auto in = random_inputs({2, 3}, 4, at::kCPU);
  const auto message = strata::testing::error_of([&] { hc_post_res_maps(in.f, in.base, in.scale, 4, 20, kEps); });
  EXPECT_NE(message.find("hc_post_res_maps"), std::string::npos) << message;
  EXPECT_TRUE(message.find("no CUDA kernels") != std::string::npos ||
              message.find("expected a CUDA tensor") != std::string::npos)
      << message;
}

#ifdef STRATA_CUDA
// Exists only in -DSTRATA_CUDA=ON builds, which run on the GPU machine.

PostRes kernel(int64_t n, int64_t iters) {
  return [=](const at::Tensor& f, const at::Tensor& base, const at::Tensor& scale) {
    return hc_post_res_maps(f, base, scale, n, iters, kEps);
  };
}

// The kernel's maps within 1e-6 of the twin's, its gradients within 1e-5 of the twin's plus twice
// the twin's own distance from float64 (relative, over each tensor: the base and scale gradients
// are sums over tokens in another order, whose rounding the twin shares), each as close to
// float64 as the twin's; f's pre columns, base's pre entries and
// scale[0] get exact zeros, and every result has the twin's dtype.
void expect_kernel_matches_twin(const Inputs& in, int64_t n, int64_t iters, Probe probe, const std::string& what) {
  const auto& options = in.f.options();
  auto batch = in.f.sizes().vec();
  batch.pop_back();
  auto with = [&](std::initializer_list<int64_t> tail) {
    auto shape = batch;
    shape.insert(shape.end(), tail);
    return shape;
  };
  auto g_post = at::randn(with({n}), options);
  auto g_res = at::randn(with({n, n}), options);
  const auto got = run(kernel(n, iters), in, g_post, g_res, probe);
  const auto twin_result = run(twin(n, iters), in, g_post, g_res, probe);
  const auto reference = run(twin(n, iters), as_float64(in), g_post, g_res, probe);
  for (size_t i = 0; i < got.size(); ++i) {
    const std::string name = what + " " + kNames[i];
    ASSERT_TRUE(got[i].defined()) << name;
    ASSERT_EQ(got[i].sizes(), twin_result[i].sizes()) << name;
    const double tolerance = i < 2 ? 1e-6 : 1e-5 + 2 * relative_error(twin_result[i], reference[i]);
    EXPECT_LE(relative_error(got[i], twin_result[i]), tolerance)
        << name << ": kernel vs twin " << relative_error(got[i], twin_result[i]) << ", twin vs float64 "
        << relative_error(twin_result[i], reference[i]);
    testing::expect_as_accurate_as_twin(got[i], twin_result[i], reference[i], name);
  }
  EXPECT_EQ(at::count_nonzero(got[2].narrow(-1, 0, n)).item<int64_t>(), 0) << what << ": f's pre columns";
  EXPECT_EQ(at::count_nonzero(got[3].narrow(0, 0, n)).item<int64_t>(), 0) << what << ": base's pre entries";
  EXPECT_EQ(got[4][0].item<float>(), 0.0f) << what << ": scale[0]";
}

// Non-powers of two leave lanes of each token's group idle; 1, 185 and 4099 tokens fill no block
// of 128 lanes exactly (a block holds 128 / n tokens, n rounded up to a power of two), so the
// last block's spare lanes shuffle and add zeros to the block's partial sums. n = 8 at 20
// iterations fills 45 KB of shared memory with Sinkhorn's checkpoints.
TEST(HcMaps, CudaKernelMatchesTheTwinAndFloat64) {
  ASSERT_TRUE(at::hasCUDA()) << "a -DSTRATA_CUDA=ON build runs its tests on a machine with a GPU";
  at::manual_seed(24);
  for (int64_t n : {1, 2, 3, 4, 8})
    for (const std::vector<int64_t>& batch : {std::vector<int64_t>{1}, {5, 37}, {4099}})
      for (int64_t iters : {1, 3, 20})
        for (Probe probe : {Probe::Post, Probe::Res, Probe::Both}) {
          const auto in = random_inputs(batch, n, at::kCUDA);
          expect_kernel_matches_twin(
              in, n, iters, probe,
              strata::cat("n ", n, " batch ", at::IntArrayRef(batch), " iters ", iters, ", ", name_of(probe)));
        }
}

// 150 iterations are more checkpoints than a block's shared memory holds at these n, so the
// backward keeps them in the global scratch after its partial sums.
TEST(HcMaps, LongRunsKeepTheirCheckpointsInTheGlobalScratch) {
  at::manual_seed(25);
  for (int64_t n : {4, 8}) {
    EXPECT_GT(launch::sinkhorn_scratch_floats(1, n, 150), 0) << "n " << n << ": the tape fits in shared memory";
    expect_kernel_matches_twin(random_inputs({333}, n, at::kCUDA), n, 150, Probe::Both, strata::cat("n ", n));
  }
}

// bfloat16 base and scale (read as float32): gradients in their dtype, as the twin's.
TEST(HcMaps, CudaKernelTakesBfloat16BaseAndScale) {
  at::manual_seed(26);
  auto in = random_inputs({3, 11}, 4, at::kCUDA);
  in.base = in.base.to(at::kBFloat16);
  in.scale = in.scale.to(at::kBFloat16);
  auto g_post = at::randn({3, 11, 4}, in.f.options());
  auto g_res = at::randn({3, 11, 4, 4}, in.f.options());
  const auto got = run(kernel(4, 20), in, g_post, g_res, Probe::Both);
  const auto twin_result = run(twin(4, 20), in, g_post, g_res, Probe::Both);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].scalar_type(), twin_result[i].scalar_type()) << kNames[i];
    EXPECT_LE(relative_error(got[i], twin_result[i]), testing::dtype_tolerance(got[i].scalar_type())) << kNames[i];
  }
}

TEST(HcMaps, CudaKernelTakesNoTokens) {
  const auto in = random_inputs({0}, 4, at::kCUDA);
  const auto got =
      run(kernel(4, 20), in, at::zeros({0, 4}, in.f.options()), at::zeros({0, 4, 4}, in.f.options()), Probe::Both);
  EXPECT_EQ(got[0].sizes(), (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(got[1].sizes(), (std::vector<int64_t>{0, 4, 4}));
  ASSERT_TRUE(got[3].defined() && got[4].defined());
  EXPECT_EQ(at::count_nonzero(got[3]).item<int64_t>(), 0);  // sums over no tokens
  EXPECT_EQ(at::count_nonzero(got[4]).item<int64_t>(), 0);
}

// The base and scale gradients are sums over tokens in a fixed order: the same bits every run.
TEST(HcMaps, CudaBackwardIsDeterministic) {
  at::manual_seed(27);
  for (int64_t n : {4, 8}) {
    const auto in = random_inputs({8, 2048}, n, at::kCUDA);
    auto g_post = at::randn({8, 2048, n}, in.f.options());
    auto g_res = at::randn({8, 2048, n, n}, in.f.options());
    const auto a = run(kernel(n, 20), in, g_post, g_res, Probe::Both);
    const auto b = run(kernel(n, 20), in, g_post, g_res, Probe::Both);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << "n " << n << " " << kNames[i];
  }
}

TEST(HcMaps, LayerOpRunsTheKernelOnFloat32Cuda) {
  at::manual_seed(28);
  const auto in = random_inputs({4, 6}, 4, at::kCUDA);
  EXPECT_TRUE(hc_post_res_maps_applies(in.f, 4));
  const auto a = hyper_connection_post_res(in.f, in.base, in.scale, 4, 20, kEps);
  const auto b = hc_post_res_maps(in.f, in.base, in.scale, 4, 20, kEps);
  EXPECT_TRUE(at::equal(a.post, b.post));
  EXPECT_TRUE(at::equal(a.res, b.res));
}

// Two halves of hyper-connections on CUDA, the second's maps from the first's fused boundary
// (RecomputedMapsFunction over the post and res kernel when recompute is on) and unfused:
// recompute changes no bit of the output or of any gradient.
TEST(HcMaps, CudaRecomputeIsBitwiseEqual) {
  auto config = strata::testing::small_config();
  LayerArgs args{.config = config};
  const int64_t H = config->hidden_size;
  at::manual_seed(29);
  auto streams = at::randn({2, 6, 4, H}, at::kCUDA);
  auto w = at::randn({H, H}, at::kCUDA) / std::sqrt(static_cast<double>(H));
  auto bias = at::randn({H}, at::kCUDA);
  auto probe = at::randn({2, 6, 4, H}, at::kCUDA);
  struct Run {
    at::Tensor output;
    std::vector<at::Tensor> grads;
  };
  auto run_halves = [&](bool recompute, bool fused) {
    HyperConnectionOptions options{.num_residual_streams = 4, .init_gating_factor = 1.0, .recompute = recompute};
    at::manual_seed(30);
    auto first = std::make_shared<HyperConnection>(args, options);
    auto second = std::make_shared<HyperConnection>(args, options);
    BiasDropoutAdd bda(args);
    std::vector<at::Tensor> parameters;
    for (const auto& half : {first, second}) {
      half->to(at::kCUDA);
      at::NoGradGuard no_grad;
      for (auto& p : half->parameters()) {
        if (p.dim() == 1) p.normal_(0.0, 1.0);  // base and scale off their symmetric init
        parameters.push_back(p);
      }
    }
    if (fused) first->set_next(second);
    auto x = streams.clone().requires_grad_(true), wx = w.clone().requires_grad_(true);
    auto h = first->combine(x, {at::tanh(at::matmul(first->sublayer_input(x), wx)), bias}, bda);
    auto output = second->combine(h, {at::tanh(at::matmul(second->sublayer_input(h), wx)), bias}, bda);
    (output * probe).sum().backward();
    Run r{output.detach(), {x.grad(), wx.grad()}};
    for (const auto& p : parameters) r.grads.push_back(p.grad());
    return r;
  };
  for (bool fused : {true, false}) {
    const auto off = run_halves(false, fused), on = run_halves(true, fused);
    EXPECT_TRUE(at::equal(off.output, on.output)) << (fused ? "fused" : "unfused");
    ASSERT_EQ(off.grads.size(), on.grads.size());
    for (size_t i = 0; i < off.grads.size(); ++i)
      EXPECT_TRUE(at::equal(off.grads[i], on.grads[i])) << (fused ? "fused" : "unfused") << " gradient " << i;
  }
}
#endif

}  // namespace
}  // namespace strata::kernels
