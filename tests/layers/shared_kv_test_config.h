#pragma once
// The small DeepSeek-V4 attention (W/C/H kinds) the layer and model tests build on.
#include "test_util.h"

namespace strata::testing {

// small_config() (hidden 32, 4 heads) with one KV head, a low-rank query, a sliding window of 6,
// compression rates 4 (C) and 8 (H), 2 output groups and a 3-of-n indexer.
inline std::shared_ptr<TransformerConfig> small_shared_kv_config() {
  auto c = small_config();
  c->num_query_groups = 1;
  c->kv_channels = 8;
  c->q_lora_rank = 12;
  c->qk_pos_emb_head_dim = 4;
  c->sliding_window_size = 6;
  c->csa_compress_rate = 4;
  c->hca_compress_rate = 8;
  c->attention_output_groups = 2;
  c->attention_output_lora_rank = 5;
  c->dsa_indexer_n_heads = 2;
  c->dsa_indexer_head_dim = 6;
  c->dsa_indexer_topk = 3;
  return c;
}

}  // namespace strata::testing
