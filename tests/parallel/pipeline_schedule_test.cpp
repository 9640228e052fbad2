// The pipeline schedules as lists, without processes: hand-computed orders for small cases, and a
// simulation of every rank with blocking receives (as pipeline.cpp runs them) that must finish.
#include "strata/parallel/pipeline_schedule.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <tuple>

#include "strata/core/error.h"

namespace strata::parallel {
namespace {

std::string order(const std::vector<PipelineStep>& steps) {
  std::string out;
  for (const auto& s : steps) {
    if (!out.empty()) out += ' ';
    out += describe(s);
  }
  return out;
}

TEST(PipelineSchedule, OneChunkIsOneFOneB) {
  // pp 3, 4 micro-batches: rank r warms up with 3 - r - 1 forwards.
  EXPECT_EQ(order(training_schedule(3, 0, 1, 4)), "F0.0 F0.1 F0.2 B0.0 F0.3 B0.1 B0.2 B0.3");
  EXPECT_EQ(order(training_schedule(3, 1, 1, 4)), "F0.0 F0.1 B0.0 F0.2 B0.1 F0.3 B0.2 B0.3");
  EXPECT_EQ(order(training_schedule(3, 2, 1, 4)), "F0.0 B0.0 F0.1 B0.1 F0.2 B0.2 F0.3 B0.3");
  // Fewer micro-batches than warm-up forwards: all forwards, then all backwards.
  EXPECT_EQ(order(training_schedule(3, 0, 1, 1)), "F0.0 B0.0");
}

TEST(PipelineSchedule, TwoChunksInterleave) {
  // pp 2 x vp 2, 4 micro-batches (two groups of 2). Rank 0 warms up with 2 * 1 + 1 * 2 = 4
  // forwards, rank 1 with 0 + 2; backwards run chunk 1 before chunk 0 within each group.
  EXPECT_EQ(order(training_schedule(2, 0, 2, 4)),
            "F0.0 F0.1 F1.0 F1.1 F0.2 B1.0 F0.3 B1.1 F1.2 B0.0 F1.3 B0.1 B1.2 B1.3 B0.2 B0.3");
  EXPECT_EQ(order(training_schedule(2, 1, 2, 4)),
            "F0.0 F0.1 F1.0 B1.0 F1.1 B1.1 F0.2 B0.0 F0.3 B0.1 F1.2 B1.2 F1.3 B1.3 B0.2 B0.3");
  // One group: rank 0's warm-up covers every forward.
  EXPECT_EQ(order(training_schedule(2, 0, 2, 2)), "F0.0 F0.1 F1.0 F1.1 B1.0 B1.1 B0.0 B0.1");
  EXPECT_EQ(order(training_schedule(2, 1, 2, 2)), "F0.0 F0.1 F1.0 B1.0 F1.1 B1.1 B0.0 B0.1");
}

TEST(PipelineSchedule, ForwardOnlyTakesAnyNumberOfMicroBatches) {
  EXPECT_EQ(order(forward_only_schedule(2, 2, 3)), "F0.0 F0.1 F1.0 F1.1 F0.2 F1.2");
  EXPECT_EQ(order(forward_only_schedule(2, 1, 3)), "F0.0 F0.1 F0.2");
  EXPECT_TRUE(forward_only_schedule(2, 2, 0).empty());
}

TEST(PipelineSchedule, InterleavingRefusesMicroBatchesThatAreNotAMultipleOfPp) {
  try {
    training_schedule(2, 0, 2, 3);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "interleaved pipeline schedule: 3 micro-batches per step is not a multiple of the pipeline-parallel "
              "size 2 (with virtual stages the micro-batches go through the model chunks in groups of pp)");
  }
  EXPECT_THROW(training_schedule(2, 2, 1, 4), Error);
  EXPECT_THROW(training_schedule(2, 0, 0, 4), Error);
  EXPECT_THROW(training_schedule(2, 0, 1, 0), Error);
}

// Runs every rank's schedule as pipeline.cpp does: sends never wait, a forward past the first
// virtual stage waits for its input activation, a backward before the last one for its output's
// gradient. Returns the steps each rank completed; all of them unless the ranks deadlock.
std::vector<size_t> simulate(int pp, int vp, int64_t micro_batches) {
  std::vector<std::vector<PipelineStep>> schedules;
  for (int r = 0; r < pp; ++r) schedules.push_back(training_schedule(pp, r, vp, micro_batches));
  const int stages = pp * vp;
  std::set<std::tuple<PipelinePass, int, int64_t>> done;  // (pass, virtual stage, micro-batch)
  std::vector<size_t> next(pp, 0);
  for (bool progress = true; progress;) {
    progress = false;
    for (int r = 0; r < pp; ++r) {
      while (next[r] < schedules[r].size()) {
        const auto& step = schedules[r][next[r]];
        const int stage = step.model_chunk * pp + r;
        const bool forward = step.pass == PipelinePass::forward;
        const bool ready = forward ? stage == 0 || done.count({PipelinePass::forward, stage - 1, step.micro_batch})
                                   : done.count({PipelinePass::forward, stage, step.micro_batch}) &&
                                         (stage == stages - 1 ||
                                          done.count({PipelinePass::backward, stage + 1, step.micro_batch}));
        if (!ready) break;
        done.insert({step.pass, stage, step.micro_batch});
        ++next[r];
        progress = true;
      }
    }
  }
  return next;
}

TEST(PipelineSchedule, EveryStepRunsOnceAndNoRankWaitsForever) {
  for (int pp = 2; pp <= 4; ++pp)
    for (int vp = 1; vp <= 3; ++vp)
      for (int64_t m = 1; m <= 3 * pp; ++m) {
        if (vp > 1 && m % pp != 0) continue;
        const auto completed = simulate(pp, vp, m);
        for (int r = 0; r < pp; ++r) {
          const auto steps = training_schedule(pp, r, vp, m);
          EXPECT_EQ(completed[r], steps.size()) << "pp " << pp << " vp " << vp << " m " << m << " rank " << r;
          std::map<std::tuple<PipelinePass, int, int64_t>, int> seen;
          for (const auto& s : steps) {
            if (s.pass == PipelinePass::backward) {
              EXPECT_EQ(seen.count({PipelinePass::forward, s.model_chunk, s.micro_batch}), 1u) << describe(s);
            }
            ++seen[{s.pass, s.model_chunk, s.micro_batch}];
          }
          EXPECT_EQ(seen.size(), static_cast<size_t>(2 * vp * m));
          for (const auto& [step, count] : seen) EXPECT_EQ(count, 1);
        }
      }
}

}  // namespace
}  // namespace strata::parallel
