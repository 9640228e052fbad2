#include "strata/text/bpe.h"

#include <cstdio>
#include <mutex>
#include <algorithm>

#include "strata/core/error.h"
#include "strata/text/byte_level.h"
#include "strata/text/utf8.h"

namespace strata::text {

// Merges by the pair of ids they join: an open-addressing table keyed by (left << 32 | right),
// which a merge loop probes several times per character.
struct BpeModel::PairTable {
  struct Slot {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    int32_t merged = 0;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  std::vector<Slot> slots;
  uint64_t mask = 0;
  int shift = 0;

  explicit PairTable(size_t count) {
    size_t capacity = 16;
    shift = 60;
    while (capacity < 2 * count + 2) {
      capacity *= 2;
      --shift;
    }
    slots.resize(capacity);
    mask = capacity - 1;
  }
  static uint64_t key_of(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  size_t home(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift; }
  // A pair listed twice keeps its last rank, as HF's map (built in list order) does.
  void insert(int32_t left, int32_t right, int32_t rank, int32_t merged) {
    const uint64_t key = key_of(left, right);
    for (size_t i = home(key);; i = (i + 1) & mask) {
      if (slots[i].key == key || slots[i].key == kEmpty) {
        slots[i] = {key, rank, merged};
        return;
      }
    }
  }
  const Slot* find(int32_t left, int32_t right) const {
    const uint64_t key = key_of(left, right);
    for (size_t i = home(key);; i = (i + 1) & mask) {
      if (slots[i].key == key) return &slots[i];
      if (slots[i].key == kEmpty) return nullptr;
    }
  }
};

// Words already tokenised, split over shards so that threads rarely wait on one another.
struct BpeModel::Cache {
  static constexpr size_t kShards = 64;
  static constexpr size_t kWordsPerShard = 2048;
  static constexpr size_t kMaxWordBytes = 256;
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> words;
  };
  // Byte-level words and words spelt out live apart: the same bytes mean different words.
  std::array<Shard, kShards> shards[2];
};

namespace {

struct Candidate {
  int32_t rank;
  int32_t position;
  int32_t merged;
  // The heap functions keep the largest on top: the lowest rank, then the leftmost, is the largest.
  bool operator<(const Candidate& other) const {
    return rank != other.rank ? rank > other.rank : position > other.position;
  }
};

}  // namespace

BpeModel::BpeModel(Vocabulary vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                   BpeOptions options, const std::string& where)
    : vocab_(std::move(vocab)), options_(std::move(options)), cache_(std::make_unique<Cache>()) {
  int32_t largest = -1;
  for (const auto& [token, id] : vocab_) {
    if (id < 0) fail(where, ": vocabulary entry '", token, "' has a negative id ", id);
    largest = std::max(largest, id);
  }
  id_to_token_.resize(static_cast<size_t>(largest + 1));
  for (const auto& [token, id] : vocab_) id_to_token_[id] = token;

  merges_ = std::make_unique<PairTable>(merges.size());
  const auto id_of = [&](const std::string& token, size_t rank) {
    const auto it = vocab_.find(token);
    if (it == vocab_.end()) fail(where, ": merge ", rank, " ('", merges[rank].first, "' '", merges[rank].second,
                                 "') uses '", token, "', which is not in the vocabulary");
    return it->second;
  };
  const size_t prefix = options_.continuing_subword_prefix.size();
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    // The merged token drops the right part's continuing_subword_prefix ("##").
    const std::string joined = left + (right.compare(0, prefix, options_.continuing_subword_prefix) == 0
                                           ? right.substr(prefix) : right);
    merges_->insert(id_of(left, rank), id_of(right, rank), static_cast<int32_t>(rank), id_of(joined, rank));
  }

  if (options_.unk_token) {
    const auto it = vocab_.find(*options_.unk_token);
    if (it == vocab_.end()) fail(where, ": unk_token '", *options_.unk_token, "' is not in the vocabulary");
    unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    std::string c;
    append_utf8(c, byte_to_char(static_cast<unsigned char>(b)));
    const auto it = vocab_.find(c);
    byte_level_ids_[b] = it == vocab_.end() ? -1 : it->second;
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    const auto fallback = vocab_.find(std::string_view(name));
    byte_fallback_ids_[b] = fallback == vocab_.end() ? -1 : fallback->second;
  }
  if (options_.ignore_merges) {
    for (const auto& [token, id] : vocab_) {
      std::string raw;
      bool all_bytes = true;
      for (size_t at = 0; at < token.size() && all_bytes;) {
        const auto [c, length] = code_point_at(token, at);
        const auto byte = char_to_byte(c);
        all_bytes = byte.has_value();
        if (byte) raw += static_cast<char>(*byte);
        at += length;
      }
      if (all_bytes) raw_byte_vocab_.emplace(std::move(raw), id);
    }
  }
}

BpeModel::~BpeModel() = default;

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int64_t id) const {
  if (id < 0 || id >= id_end()) return nullptr;
  const auto& token = id_to_token_[static_cast<size_t>(id)];
  // A hole in the ids has an empty entry; no vocabulary entry is empty.
  return token.empty() ? nullptr : &token;
}

void BpeModel::tokenize(const Piece& word, std::vector<int64_t>& out) const {
  if (word.text.empty()) return;
  const bool fast_byte_level = word.byte_level && options_.continuing_subword_prefix.empty() &&
                               options_.end_of_word_suffix.empty();
  if (!fast_byte_level && word.byte_level) {
    Piece spelt = word;
    materialize_byte_level(spelt);
    tokenize(spelt, out);
    return;
  }
  if (options_.ignore_merges) {
    const auto& table = word.byte_level ? raw_byte_vocab_ : vocab_;
    const auto it = table.find(std::string_view(word.text));
    if (it != table.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.text.size() < Cache::kMaxWordBytes;
  auto& shard = cache_->shards[word.byte_level][StringHash{}(word.text) % Cache::kShards];
  if (cacheable) {
    std::lock_guard lock(shard.mutex);
    const auto hit = shard.words.find(std::string_view(word.text));
    if (hit != shard.words.end()) {
      out.insert(out.end(), hit->second.begin(), hit->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  merge_word(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard lock(shard.mutex);
    if (shard.words.size() < Cache::kWordsPerShard) shard.words.emplace(word.text, std::move(ids));
  }
}

void BpeModel::merge_word(const Piece& word, std::vector<int32_t>& ids) const {
  if (!word.byte_level || !initial_symbols_from_bytes(word.text, ids)) {
    ids.clear();
    Piece spelt = word;
    materialize_byte_level(spelt);
    initial_symbols(spelt.text, ids);
  }
  apply_merges(ids);
}

bool BpeModel::initial_symbols_from_bytes(std::string_view bytes, std::vector<int32_t>& ids) const {
  ids.reserve(bytes.size());
  for (unsigned char b : bytes) {
    const int32_t id = byte_level_ids_[b];
    // A byte whose character the vocabulary lacks takes the general path (byte fallback, unk).
    if (id < 0) return false;
    ids.push_back(id);
  }
  return true;
}

void BpeModel::initial_symbols(std::string_view chars, std::vector<int32_t>& ids) const {
  // A run of unknown characters waiting to become one unk (fuse_unk) or one unk each.
  bool unk_pending = false;
  std::string symbol;
  for (size_t at = 0; at < chars.size();) {
    const int length = code_point_at(chars, at).length;
    const bool first = at == 0, last = at + length == chars.size();
    symbol.assign(first ? "" : options_.continuing_subword_prefix);
    symbol.append(chars.substr(at, length));
    if (last) symbol += options_.end_of_word_suffix;
    at += length;
    if (const auto it = vocab_.find(std::string_view(symbol)); it != vocab_.end()) {
      if (unk_pending) ids.push_back(*unk_id_);
      unk_pending = false;
      ids.push_back(it->second);
      continue;
    }
    if (options_.byte_fallback) {
      bool all_found = true;
      for (unsigned char b : symbol) all_found = all_found && byte_fallback_ids_[b] >= 0;
      if (all_found) {
        // As HF: the byte tokens go in ahead of an unk still pending.
        for (unsigned char b : symbol) ids.push_back(byte_fallback_ids_[b]);
        continue;
      }
    }
    // Without an unk_token an unknown character is dropped, as HF drops it.
    if (!unk_id_) continue;
    if (unk_pending && !options_.fuse_unk) ids.push_back(*unk_id_);
    unk_pending = true;
  }
  if (unk_pending) ids.push_back(*unk_id_);
}

void BpeModel::apply_merges(std::vector<int32_t>& ids) const {
  const int32_t n = static_cast<int32_t>(ids.size());
  if (n < 2) return;
  // Symbols as a doubly linked list over positions; a merged symbol keeps the left position.
  thread_local std::vector<int32_t> prev, next;
  thread_local std::vector<Candidate> heap;
  prev.resize(n);
  next.resize(n);
  heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  for (int32_t i = 0; i + 1 < n; ++i)
    if (const auto* m = merges_->find(ids[i], ids[i + 1])) heap.push_back({m->rank, i, m->merged});
  std::make_heap(heap.begin(), heap.end());
  const auto push = [&](const Candidate& c) {
    heap.push_back(c);
    std::push_heap(heap.begin(), heap.end());
  };
  constexpr int32_t kGone = -2;  // prev[] of a symbol merged into its left neighbour
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Candidate top = heap.back();
    heap.pop_back();
    const int32_t at = top.position;
    if (prev[at] == kGone || next[at] == -1) continue;
    const int32_t right = next[at];
    // A candidate is stale once either symbol changed. HF compares the merge's result, not the
    // pair, and so would fire a stale candidate whose new pair merges into the same token at the
    // stale rank; doing the same keeps the ids equal to HF's in that corner too.
    const auto* m = merges_->find(ids[at], ids[right]);
    if (!m || m->merged != top.merged) continue;
    ids[at] = top.merged;
    next[at] = next[right];
    prev[right] = kGone;
    if (next[at] != -1) prev[next[at]] = at;
    if (prev[at] >= 0)
      if (const auto* left = merges_->find(ids[prev[at]], ids[at])) push({left->rank, prev[at], left->merged});
    if (next[at] != -1)
      if (const auto* after = merges_->find(ids[at], ids[next[at]])) push({after->rank, at, after->merged});
  }
  int32_t kept = 0;
  for (int32_t i = 0; i != -1; i = next[i]) ids[kept++] = ids[i];
  ids.resize(kept);
}

}  // namespace strata::text
