// DeepSeek sparse attention: dense MLA when every key is selected, HF DeepSeek-V3.2's layer 0
// (its indexer's choices and the attention output), decoding, and the 'D' pattern symbol.
#include "strata/layers/dsa.h"

#include <gtest/gtest.h>

#include "strata/backends/local_backend.h"
#include "strata/hf/architecture.h"
#include "strata/hf/hf_check.h"
#include "strata/io/safetensors.h"
#include "strata/layers/top_k_selection.h"
#include "strata/model/language_model.h"
#include "strata/model/layer_specs.h"
#include "test_util.h"

namespace strata {
namespace {

std::shared_ptr<TransformerConfig> dsa_config(int64_t topk) {
  auto c = testing::small_config();  // hidden 32, 4 heads
  c->q_lora_rank = 12;
  c->kv_lora_rank = 10;
  c->qk_head_dim = 6;
  c->qk_pos_emb_head_dim = 4;
  c->v_head_dim = 5;
  c->dsa_indexer_n_heads = 2;
  c->dsa_indexer_head_dim = 8;
  c->dsa_indexer_topk = topk;
  return c;
}

std::shared_ptr<SequenceMixer> build(const MlaSubmodules& sub, std::shared_ptr<TransformerConfig> config) {
  return MultiLatentAttention::builder(sub)(LayerArgs{.config = config, .layer_number = 1});
}

// `to` takes the values of `from`'s parameters of the same names (norm weights made non-trivial first).
void copy_parameters(torch::nn::Module& from, torch::nn::Module& to) {
  at::NoGradGuard no_grad;
  auto target = to.named_parameters();
  for (auto& p : from.named_parameters()) {
    if (p.key().find("layernorm") != std::string::npos) p.value().normal_(1.0, 0.1);
    target[p.key()].copy_(p.value());
  }
}

TEST(DeepSeekSparseAttention, SelectingEveryKeyIsDenseLatentAttentionExactly) {
  const int64_t T = 11;
  auto config = dsa_config(/*topk=*/T);
  auto dense = build(mla_submodules(LocalBackend{}), config);
  auto sparse = build(dsa_submodules(LocalBackend{}), config);
  copy_parameters(*dense, *sparse);
  auto sparse_params = sparse->named_parameters();
  auto x = at::randn({2, T, config->hidden_size});
  auto x_dense = x.clone().requires_grad_(), x_sparse = x.clone().requires_grad_();
  ForwardContext ctx_dense, ctx_sparse;
  auto out_dense = dense->forward(x_dense, ctx_dense).output;
  auto out_sparse = sparse->forward(x_sparse, ctx_sparse).output;
  EXPECT_TRUE(at::equal(out_sparse, out_dense)) << (out_sparse - out_dense).abs().max();

  auto grad_out = at::randn_like(out_dense);
  out_dense.backward(grad_out);
  out_sparse.backward(grad_out);
  EXPECT_TRUE(at::equal(x_sparse.grad(), x_dense.grad())) << (x_sparse.grad() - x_dense.grad()).abs().max();
  for (auto& p : dense->named_parameters())
    EXPECT_TRUE(at::equal(sparse_params[p.key()].grad(), p.value().grad())) << p.key();
  // The language-model loss does not reach the indexer.
  for (auto& p : sparse_params) {
    if (p.key().find("indexer") != std::string::npos) {
      EXPECT_FALSE(p.value().grad().defined()) << p.key();
    }
  }
}

TEST(DeepSeekSparseAttention, FewerKeysThanVisibleChangesTheOutput) {
  const int64_t T = 11;
  auto full = dsa_config(/*topk=*/T), sparse_config = dsa_config(/*topk=*/3);
  auto sparse = build(dsa_submodules(LocalBackend{}), sparse_config);
  auto dense = build(dsa_submodules(LocalBackend{}), full);
  copy_parameters(*sparse, *dense);
  auto x = at::randn({2, T, full->hidden_size});
  ForwardContext a, b;
  auto out_sparse = sparse->forward(x, a).output, out_dense = dense->forward(x, b).output;
  // The first 3 queries see at most 3 keys, so they read all of them; later ones read fewer.
  EXPECT_TRUE(at::allclose(out_sparse.narrow(1, 0, 3), out_dense.narrow(1, 0, 3), 1e-6, 1e-6));
  EXPECT_FALSE(at::allclose(out_sparse.narrow(1, 3, T - 3), out_dense.narrow(1, 3, T - 3), 1e-3, 1e-3));
}

TEST(DeepSeekSparseAttention, DecodingWithCachedIndexerKeysMatchesTheFullSequence) {
  // Fixed inputs: with random ones two indexer scores can tie to rounding, and decoding (which
  // scores one query at a time) may then pick the other key.
  at::manual_seed(11);
  auto config = dsa_config(/*topk=*/3);
  auto dsa = build(dsa_submodules(LocalBackend{}), config);
  const int64_t B = 2, T = 9, prefill = 4;
  auto x = at::randn({B, T, config->hidden_size});
  ForwardContext full_ctx;
  auto full = dsa->forward(x, full_ctx).output;

  InferenceCache cache;
  std::vector<at::Tensor> steps;
  for (int64_t start = 0; start < T;) {
    const int64_t len = start == 0 ? prefill : 1;
    ForwardContext ctx{.cache = &cache};
    steps.push_back(dsa->forward(x.narrow(1, start, len), ctx).output);
    cache.advance(len);
    start += len;
  }
  auto decoded = at::cat(steps, 1);
  EXPECT_TRUE(at::allclose(decoded, full, 1e-5, 1e-5)) << (decoded - full).abs().max();
  EXPECT_EQ(cache.state<LatentAttentionState>(1).indexer_keys.sizes(), at::IntArrayRef({B, T, 8}));
}

// HF DeepSeek-V3.2's layer 0 (index_topk 16 over 100 positions): its input is the captured
// input_layernorm output, its attention output and the indexer's top-k indices are captured too.
class HfDeepseekV32Layer0 : public ::testing::Test {
 protected:
  void SetUp() override {
    hf_ = hf::load_hf_model(testing::fixture("deepseek_v32") + "/model");
    ref_ = std::make_unique<io::SafetensorsFile>(
        io::SafetensorsFile::open(testing::fixture("deepseek_v32") + "/reference.safetensors"));
    modules_ = hf_.model->named_modules();
    hidden_ = ref_->load("capture.model.layers.0.input_layernorm.out0");
  }
  template <class M>
  std::shared_ptr<M> module(const std::string& name) {
    auto m = std::dynamic_pointer_cast<M>(modules_["decoder.layers.0.self_attention" + name]);
    if (!m) throw Error("no module decoder.layers.0.self_attention" + name + " of the expected type");
    return m;
  }

  hf::HfModel hf_;
  std::unique_ptr<io::SafetensorsFile> ref_;
  torch::OrderedDict<std::string, std::shared_ptr<torch::nn::Module>> modules_;
  at::Tensor hidden_;
};

// HF's choice among tied scores is torch.topk's on the CPU: the reference tie order gives it; strata's
// own rule (lowest index) keeps the same keys except among those tied at the k-th score.
TEST_F(HfDeepseekV32Layer0, IndexerSelectsTheKeysHfSelects) {
  at::NoGradGuard no_grad;
  const auto& c = hf_.model->config();
  LatentAttentionInputs inputs{.hidden = hidden_};
  inputs.q_latent = module<NormModule>(".q_layernorm")
                        ->forward(module<LinearModule>(".linear_q_down_proj")->forward(hidden_).output);
  std::tie(inputs.rotary_cos, inputs.rotary_sin) =
      RotaryEmbedding(c.qk_pos_emb_head_dim, c.rotary_base).tables(hidden_.size(1), 0, at::kCPU);
  auto indexer = module<LightningIndexer>(".core_attention.indexer");
  auto theirs = ref_->load("capture.model.layers.0.self_attn.indexer.out0").to(at::kLong);
  // Queries with fewer than 16 visible keys pad with invisible ones, in no particular order:
  // compare the sets of visible keys chosen.
  const auto batch = hidden_.size(0), seq = hidden_.size(1);
  auto visible = visible_keys(seq, seq, at::kCPU);
  auto chosen = [&](const at::Tensor& idx) {
    return at::zeros({batch, seq, seq}, at::kBool).scatter(-1, idx, true).logical_and(visible);
  };
  auto reference_order = [&] {
    ReferenceTopKTieOrder reference;
    return indexer->forward(inputs);
  }();
  ASSERT_EQ(reference_order.sizes(), theirs.sizes());
  EXPECT_TRUE(at::equal(chosen(reference_order), chosen(theirs)))
      << chosen(reference_order).ne(chosen(theirs)).sum().item<int64_t>() << " (query, key) choices differ";
  EXPECT_EQ(chosen(reference_order).sum(-1).max().item<int64_t>(), c.dsa_indexer_topk);

  auto ours = indexer->forward(inputs);
  auto scores = indexer->scores(inputs);
  auto kth = std::get<0>(at::topk(scores, c.dsa_indexer_topk, -1)).narrow(-1, c.dsa_indexer_topk - 1, 1);
  auto differ = chosen(ours).ne(chosen(theirs));
  EXPECT_GT(differ.sum().item<int64_t>(), 0);  // the fixture has ties at the k-th place
  EXPECT_TRUE(at::equal(differ.logical_and(scores.ne(kth)), at::zeros_like(differ)));
  EXPECT_TRUE(at::equal(chosen(ours).sum(-1), chosen(theirs).sum(-1)));
}

TEST_F(HfDeepseekV32Layer0, AttentionOutputMatchesHf) {
  at::NoGradGuard no_grad;
  ReferenceTopKTieOrder reference;  // the keys HF's indexer chose among ties
  ForwardContext ctx;
  auto out = module<SequenceMixer>("")->forward(hidden_, ctx).output;
  EXPECT_LE(hf::relative_error(out, ref_->load("capture.model.layers.0.self_attn.out0")), 1e-5);
}

TEST(DeepSeekSparseAttention, PatternSymbolDBuildsMlaWithTheIndexer) {
  auto config = dsa_config(/*topk=*/4);
  config->hybrid_layer_pattern = "[D-]A-";
  config->num_layers = 4;
  auto model = std::make_shared<LanguageModel>(config, decoder_spec(default_layer_registry(LocalBackend{}, *config), *config));
  auto state = model->canonical_state_dict();
  EXPECT_TRUE(state.contains("decoder.layers.0.self_attention.core_attention.indexer.linear_wq_b.weight"));
  EXPECT_TRUE(state.contains("decoder.layers.0.self_attention.core_attention.indexer.k_norm.bias"));
  EXPECT_TRUE(state.contains("decoder.layers.2.self_attention.linear_kv_up_proj.weight"));
  for (const auto& [name, _] : state) EXPECT_EQ(name.find("decoder.layers.2.self_attention.core_attention.indexer"), std::string::npos);
  model->forward(at::randint(config->vocab_size, {2, 7})).sum().backward();
  for (const auto& [name, tensor] : state)
    EXPECT_EQ(tensor.grad().defined(), name.find(".indexer.") == std::string::npos) << name;
}

}  // namespace
}  // namespace strata
