#pragma once
// How Megatron divides and mixes indexed datasets (megatron/core/datasets: utils.py,
// blended_megatron_dataset_config.py, blended_megatron_dataset_builder.py, helpers.cpp), the
// arithmetic and rounding included, so the same flags select the same documents and samples.
//   --data-path  "P" | "P1 P2 ..." (mixed by their sizes) | "W1 P1 W2 P2 ..." (mixed by weight)
//   --split      "969,30,1": train / valid / test shares of every dataset's sequences, in order
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace strata::train {

struct DataBlend {
  std::vector<std::string> prefixes;
  std::optional<std::vector<double>> weights;  // as given, not normalised
};

// Megatron's reading of --data-path's words: W1 P1 W2 P2 ... when every other word, from the
// first, is a number; P1 P2 ... when none is. Anything between (an odd count starting with a
// number, some weights missing) is refused, where Megatron would read a number as a prefix or
// fail an assertion. Weights must be finite and positive.
DataBlend parse_blend(const std::vector<std::string>& words);

// Divides by numpy's sum (numpy_sum.h), as Megatron's normalize().
std::vector<double> normalize(const std::vector<double>& weights);

// --split's numbers (every run of digits and dots, as Megatron's regex finds them), padded with
// zeros to three and normalised.
std::array<double, 3> parse_split(const std::string& split);

// The sequences [first, last) of `num_sequences` that split `which` (0 train, 1 valid, 2 test)
// takes; empty when the split's share is 0 (Megatron builds no dataset for it then).
std::pair<int64_t, int64_t> split_range(const std::array<double, 3>& split, int which, int64_t num_sequences);

// How many samples Megatron asks of each dataset of a weighted blend for `target` samples:
// ceil(ceil(target x weight) x (1 + surplus)); with surplus 0, each dataset's share of the blend.
std::vector<int64_t> samples_per_dataset(const std::vector<double>& normalized_weights, int64_t target,
                                         double surplus);

// Megatron's --mid-level-dataset-surplus default.
constexpr double kMidLevelDatasetSurplus = 0.005;

// Which dataset each sample of a blend comes from, and which of that dataset's samples it is.
struct BlendIndex {
  std::vector<int16_t> dataset;
  std::vector<int64_t> sample;
};

// `size` samples, each from the dataset whose count lags its weight most (ties to the first):
// helpers.cpp's build_blending_indices.
BlendIndex blending_index(const std::vector<double>& normalized_weights, int64_t size);

// Exactly sizes[d] samples of every dataset d, interleaved by the same rule (helpers.cpp's
// build_exhaustive_blending_indices): what Megatron blends when neither weights nor a size are given.
BlendIndex exhaustive_blending_index(const std::vector<int64_t>& sizes);

}  // namespace strata::train
