#include "strata/train/megatron_blend.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "strata/core/error.h"
#include "strata/train/numpy_sum.h"

namespace strata::train {

namespace {

// A whole word read as a number, as Python's float() would take it; nullopt when it is not one.
std::optional<double> as_number(const std::string& word) {
  if (word.empty()) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(word.c_str(), &end);
  if (end != word.c_str() + word.size()) return std::nullopt;
  return value;
}

std::string joined(const std::vector<std::string>& words) {
  std::string text;
  for (const auto& w : words) text += (text.empty() ? "" : " ") + w;
  return text;
}

}  // namespace

DataBlend parse_blend(const std::vector<std::string>& words) {
  if (words.empty()) fail("--data-path: no dataset given");
  size_t numbers = 0;  // of the words where weights would stand
  for (size_t i = 0; i < words.size(); i += 2) numbers += as_number(words[i]).has_value();
  DataBlend blend;
  if (numbers == 0) {
    blend.prefixes = words;
    return blend;
  }
  if (words.size() % 2 == 1 || numbers != (words.size() + 1) / 2)
    fail("--data-path ", joined(words), ": some words read as weights and some as prefixes; give a weight before ",
         "every prefix (W1 P1 W2 P2 ...), or none");
  std::vector<double> weights;
  for (size_t i = 0; i < words.size(); i += 2) {
    const double weight = *as_number(words[i]);
    if (!std::isfinite(weight) || weight <= 0.0)
      fail("--data-path: weight ", words[i], " of ", words[i + 1], " must be a finite number above 0");
    weights.push_back(weight);
    blend.prefixes.push_back(words[i + 1]);
  }
  blend.weights = weights;
  return blend;
}

std::vector<double> normalize(const std::vector<double>& weights) {
  const double sum = numpy_sum(weights);
  std::vector<double> normalized;
  for (const auto w : weights) normalized.push_back(w / sum);
  return normalized;
}

std::array<double, 3> parse_split(const std::string& split) {
  std::vector<double> shares;
  for (size_t i = 0; i < split.size();) {
    if (!(std::isdigit(static_cast<unsigned char>(split[i])) || split[i] == '.')) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < split.size() && (std::isdigit(static_cast<unsigned char>(split[end])) || split[end] == '.')) ++end;
    const auto number = as_number(split.substr(i, end - i));
    if (!number) fail("--split ", split, ": '", split.substr(i, end - i), "' is not a number");
    shares.push_back(*number);
    i = end;
  }
  if (shares.size() > 3)
    fail("--split ", split, ": ", shares.size(), " shares, expected at most 3 (train, valid, test)");
  shares.resize(3, 0.0);
  if (numpy_sum(shares) <= 0.0) fail("--split ", split, ": the shares add up to 0; expected e.g. 969,30,1");
  const auto normalized = normalize(shares);
  return {normalized[0], normalized[1], normalized[2]};
}

std::pair<int64_t, int64_t> split_range(const std::array<double, 3>& split, int which, int64_t num_sequences) {
  // Book-ends are running sums, as Megatron adds them; a split is absent when its book-ends meet.
  double begin = 0.0;
  for (int i = 0; i < which; ++i) begin = begin + split[i];
  const double end = begin + split[which];
  if (end <= begin) return {0, 0};
  // Python's round(): halves to even, as nearbyint does in the default rounding mode.
  const auto bound = [&](double share) {
    return static_cast<int64_t>(std::nearbyint(share * static_cast<double>(num_sequences)));
  };
  return {bound(begin), bound(end)};
}

std::vector<int64_t> samples_per_dataset(const std::vector<double>& normalized_weights, int64_t target,
                                         double surplus) {
  std::vector<int64_t> sizes;
  for (const auto weight : normalized_weights) {
    const double share = std::ceil(static_cast<double>(target) * weight);
    sizes.push_back(static_cast<int64_t>(std::ceil(share * (1.0 + surplus))));
  }
  return sizes;
}

BlendIndex blending_index(const std::vector<double>& weights, int64_t size) {
  BlendIndex index;
  index.dataset.resize(static_cast<size_t>(size));
  index.sample.resize(static_cast<size_t>(size));
  std::vector<int64_t> taken(weights.size(), 0);
  for (int64_t s = 0; s < size; ++s) {
    const double at = std::max(static_cast<double>(s), 1.0);
    size_t lagging = 0;
    double most = weights[0] * at - static_cast<double>(taken[0]);
    for (size_t d = 1; d < weights.size(); ++d) {
      const double error = weights[d] * at - static_cast<double>(taken[d]);
      if (error > most) {
        most = error;
        lagging = d;
      }
    }
    index.dataset[s] = static_cast<int16_t>(lagging);
    index.sample[s] = taken[lagging]++;
  }
  return index;
}

BlendIndex exhaustive_blending_index(const std::vector<int64_t>& sizes) {
  int64_t total = 0;
  for (const auto size : sizes) total += size;
  std::vector<double> weights;
  for (const auto size : sizes) weights.push_back(static_cast<double>(size) / static_cast<double>(total));
  BlendIndex index;
  std::vector<int64_t> taken(sizes.size(), 0);
  for (int64_t s = 0; s < total; ++s) {
    const double at = std::max(static_cast<double>(s), 1.0);
    int64_t lagging = -1;
    double most = std::numeric_limits<double>::lowest();
    for (size_t d = 0; d < sizes.size(); ++d) {
      if (taken[d] == sizes[d]) continue;  // spent
      const double error = weights[d] * at - static_cast<double>(taken[d]);
      if (error > most) {
        most = error;
        lagging = static_cast<int64_t>(d);
      }
    }
    index.dataset.push_back(static_cast<int16_t>(lagging));
    index.sample.push_back(taken[lagging]++);
  }
  return index;
}

}  // namespace strata::train
