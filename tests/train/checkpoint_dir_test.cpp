// Checkpoint folders change atomically: a writer killed at any instant (after each step that
// checkpoint_dir.cpp names, and partway through writing its files) leaves the previous checkpoint
// or the new one loadable and whole, and the next saves clean up after it. Trackers and
// state.json are read strictly; --load folders that hold no checkpoint are told apart; weights
// that hold NaN or infinity are not saved.
//
// The writer that gets killed is this test binary run again on the same test, as
// parallel/rank_harness.h does (fork() is unsafe with LibTorch's thread pools): one process per
// kill point, all started at once through parallel::launch_ranks, each finding its point by RANK.
#include "strata/train/checkpoint_dir.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include "strata/core/parse_number.h"
#include "strata/model/build_model.h"
#include "strata/parallel/launcher.h"
#include "strata/train/train_checkpoint.h"
#include "test_util.h"

namespace strata::train {
namespace {

namespace fs = std::filesystem;
using strata::testing::error_of;


void write_text(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::set<std::string> entries(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename().string());
  return names;
}

void copy_folder(const fs::path& from, const fs::path& to) { fs::copy(from, to, fs::copy_options::recursive); }

// ---- Checkpoints made from a seed

// Which checkpoint a save writes; everything in it follows from these two numbers.
struct Save {
  int64_t iteration;
  uint64_t seed;
};

// What one save writes: a one-layer model, its AdamW after one step (so the moments are not
// zero), a data position and run identity of its own, and the CPU RNG state at the save.
struct Snapshot {
  std::shared_ptr<LanguageModel> model;
  std::shared_ptr<AdamW> optimizer;
  TrainingState state;
  at::Tensor rng;
};

std::shared_ptr<const TransformerConfig> tiny_config() {
  auto c = testing::small_config();
  c->num_layers = 1;
  return c;
}

Snapshot snapshot(Save save) {
  at::manual_seed(save.seed);
  auto model = build_language_model(tiny_config());
  auto params = model->canonical_state_dict();
  auto optimizer = std::make_shared<AdamW>(params, AdamWOptions{});
  for (auto& [name, p] : params) p.mutable_grad() = at::randn_like(p);
  optimizer->step(1e-2);
  const TrainingState state{save.iteration, 1000 * save.seed + static_cast<uint64_t>(save.iteration),
                            {{"seed", save.seed}}};
  return {model, optimizer, state, at::detail::getDefaultCPUGenerator().get_state()};
}

// Saves right after making the snapshot, so that the RNG state saved is the snapshot's.
void save_snapshot(const fs::path& dir, Save save, const std::function<void(std::string_view)>& after_step = {}) {
  const auto s = snapshot(save);
  save_training_checkpoint(dir, *s.model, *s.optimizer, s.state, after_step);
}

// What a checkpoint folder loads as, into a model and optimizer of another seed.
struct Loaded {
  TrainingState state;
  std::map<std::string, at::Tensor> weights, optimizer;
  at::Tensor rng;
};

Loaded load(const fs::path& dir) {
  at::manual_seed(12345);
  auto model = build_language_model(tiny_config());
  AdamW optimizer(model->canonical_state_dict(), {});
  auto state = load_training_checkpoint(dir, *model, optimizer);
  return {state, model->canonical_state_dict(), optimizer.state(), at::detail::getDefaultCPUGenerator().get_state()};
}

bool bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const auto x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) == 0;
}

// How `loaded` differs from the checkpoint `expected` describes; "" when it is that checkpoint,
// every tensor bitwise (so a folder mixing two saves differs from both).
std::string differences(const Loaded& loaded, const Snapshot& expected) {
  std::ostringstream out;
  if (loaded.state.iteration != expected.state.iteration) out << "iteration " << loaded.state.iteration << "; ";
  if (loaded.state.data_position != expected.state.data_position)
    out << "data position " << loaded.state.data_position << "; ";
  if (loaded.state.run != expected.state.run) out << "run " << loaded.state.run.dump() << "; ";
  auto compare = [&](const char* what, const std::map<std::string, at::Tensor>& got,
                     const std::map<std::string, at::Tensor>& want) {
    if (got.size() != want.size()) out << got.size() << " " << what << " tensors, not " << want.size() << "; ";
    for (const auto& [name, tensor] : want) {
      const auto it = got.find(name);
      if (it == got.end() || !bitwise_equal(it->second, tensor)) out << what << " " << name << " differs; ";
    }
  };
  compare("weight", loaded.weights, expected.model->canonical_state_dict());
  compare("optimizer", loaded.optimizer, expected.optimizer->state());
  if (!bitwise_equal(loaded.rng, expected.rng)) out << "RNG state differs; ";
  return out.str();
}

// ---- Killed writers

// Where a writer dies: inside its after_step hook once `value` steps are done (0: right after the
// first), or, for a file size limit, as soon as a file it writes would grow past `value` bytes.
struct KillPoint {
  enum Kind { after_steps, file_size_limit } kind;
  int64_t value;

  std::string encode() const { return (kind == after_steps ? "steps:" : "bytes:") + std::to_string(value); }
  static KillPoint decode(const std::string& text) {
    const auto colon = text.find(':');
    return {text.substr(0, colon) == "steps" ? after_steps : file_size_limit,
            parse_int64(text.substr(colon + 1), "kill point")};
  }
};

constexpr const char* kWriterDirsEnv = "STRATA_KILLED_WRITER_DIRS";  // one folder per rank, ';'-separated
constexpr const char* kWriterSaveEnv = "STRATA_KILLED_WRITER_SAVE";  // "<iteration>:<seed>"
constexpr const char* kWriterPointsEnv = "STRATA_KILLED_WRITER_POINTS";  // one kill point per rank, ';'-separated

bool in_killed_writer() { return std::getenv(kWriterDirsEnv) != nullptr; }

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, separator);) parts.push_back(part);
  return parts;
}

// The kernel stops a process whose file would grow past RLIMIT_FSIZE with SIGXFSZ, whose default
// action also dumps core; SIGKILL is what the parent expects of every writer.
void die_when_a_file_grows_past(int64_t bytes) {
  struct sigaction action {};
  action.sa_handler = [](int) { ::raise(SIGKILL); };
  ::sigaction(SIGXFSZ, &action, nullptr);
  rlimit limit{};
  ::getrlimit(RLIMIT_FSIZE, &limit);
  limit.rlim_cur = static_cast<rlim_t>(bytes);
  ::setrlimit(RLIMIT_FSIZE, &limit);
}

// The body of a killed writer: the save the environment names, into this rank's folder, dying at
// this rank's kill point.
void run_killed_writer() {
  const auto rank = static_cast<size_t>(parse_int64(std::getenv("RANK"), "RANK"));
  const auto dir = split(std::getenv(kWriterDirsEnv), ';').at(rank);
  const auto point = KillPoint::decode(split(std::getenv(kWriterPointsEnv), ';').at(rank));
  const auto save = split(std::getenv(kWriterSaveEnv), ':');
  const auto s = snapshot({parse_int64(save.at(0), "iteration"), parse_uint64(save.at(1), "seed")});
  int64_t steps_done = 0;
  std::function<void(std::string_view)> after_step;
  if (point.kind == KillPoint::after_steps) {
    after_step = [&](std::string_view) {
      if (steps_done++ == point.value) ::raise(SIGKILL);
    };
  } else {
    die_when_a_file_grows_past(point.value);
  }
  save_training_checkpoint(dir, *s.model, *s.optimizer, s.state, after_step);
  rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
  ::setrlimit(RLIMIT_FSIZE, &unlimited);  // lets the failure below reach the log
  ADD_FAILURE() << "the writer was to die at " << point.encode() << " but finished its save";
}

// Runs `save` into each of `dirs` in processes of their own, killing the i-th at points[i]; fails
// the test for every writer that did not die of SIGKILL, with its output.
void run_killed_writers(const std::vector<fs::path>& dirs, Save save, const std::vector<KillPoint>& points,
                        const std::vector<std::string>& labels, const fs::path& logs) {
  std::string dir_list, point_list;
  for (size_t i = 0; i < dirs.size(); ++i) {
    if (i > 0) dir_list += ';', point_list += ';';
    dir_list += dirs[i].string();
    point_list += points[i].encode();
  }
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  parallel::LaunchOptions options{
      .nproc = static_cast<int>(dirs.size()),
      .argv = {parallel::current_executable(),
               "--gtest_filter=" + std::string(test->test_suite_name()) + "." + test->name(), "--gtest_brief=1"},
      .env = {{"OMP_NUM_THREADS", "1"},
              {kWriterDirsEnv, dir_list},
              {kWriterPointsEnv, point_list},
              {kWriterSaveEnv, std::to_string(save.iteration) + ":" + std::to_string(save.seed)}},
      .timeout = std::chrono::seconds(60),
      .grace = std::chrono::seconds(60),
      .log_dir = logs.string(),
  };
  const auto exits = parallel::launch_ranks(options);
  for (size_t i = 0; i < exits.size(); ++i) {
    if (exits[i].signaled && exits[i].code == SIGKILL) continue;
    ADD_FAILURE() << "the writer " << labels[i] << ": " << exits[i].describe() << "; its output:\n"
                  << read_text(logs / ("rank" + std::to_string(i) + ".log"));
  }
}

int64_t largest_file_size(const fs::path& dir) {
  int64_t largest = 0;
  for (const auto& entry : fs::directory_iterator(dir))
    largest = std::max(largest, static_cast<int64_t>(fs::file_size(entry.path())));
  return largest;
}

// Whether `dir` holds a temporary folder of `iteration` that `before` (its earlier state) did not.
bool holds_a_new_temporary_folder(const fs::path& dir, const fs::path& before, int64_t iteration) {
  const auto earlier = before.empty() ? std::set<std::string>() : entries(before);
  for (const auto& name : entries(dir))
    if (name.starts_with(iteration_dir_name(iteration) + ".tmp-") && !earlier.contains(name)) return true;
  return false;
}

// The checkpoint folders in `dir` that later saves must keep: the complete ones, including one a
// killed replacement moved aside (it is all there is of that iteration).
std::set<std::string> checkpoint_folders(const fs::path& dir) {
  static const std::regex kCheckpoint("(iter_[0-9]{7})(\\.previous)?");
  std::set<std::string> folders;
  std::smatch match;
  for (const auto& name : entries(dir))
    if (std::regex_match(name, match, kCheckpoint)) folders.insert(match[1]);
  return folders;
}

// After whatever a kill left in `dir` (which was `prepared` before the killed save of
// `iteration`): saving `iteration` again and then the next one both work, and leave the tracker
// and checkpoint folders only.
void expect_later_saves_clean_up(const fs::path& dir, const fs::path& prepared, int64_t iteration) {
  for (const Save save : {Save{iteration, 7}, Save{iteration + 1, 8}}) {
    save_snapshot(dir, save);
    EXPECT_EQ(differences(load(dir), snapshot(save)), "") << "after saving iteration " << save.iteration;
  }
  auto expected = checkpoint_folders(prepared);
  expected.insert({kTrackerFile, iteration_dir_name(iteration), iteration_dir_name(iteration + 1)});
  EXPECT_EQ(entries(dir), expected);
}

// Kills the writer of `saved` into copies of `prepared` (which loads as `before`) at every point:
// after each step its hook names (recorded from one save that runs to the end, so steps added
// later are covered too), and partway through writing its files. Each folder must then load as
// `before` or `saved`, never go back to `before` once a kill point gave `saved`, and recover.
void kill_the_writer_at_every_point(const fs::path& prepared, Save before, Save saved) {
  const auto root = prepared.parent_path();
  ASSERT_EQ(differences(load(prepared), snapshot(before)), "") << "the prepared folder";

  const auto recorded = root / "recorded";
  copy_folder(prepared, recorded);
  std::vector<std::string> steps;
  save_snapshot(recorded, saved, [&](std::string_view step) { steps.emplace_back(step); });
  ASSERT_FALSE(steps.empty());
  ASSERT_EQ(differences(load(recorded), snapshot(saved)), "") << "a save that was not killed";

  std::vector<KillPoint> points = {{KillPoint::file_size_limit, 0},
                                   {KillPoint::file_size_limit,
                                    largest_file_size(recorded / iteration_dir_name(saved.iteration)) / 2}};
  std::vector<std::string> labels = {"killed at its first byte written",
                                     "killed once a file grew to half the largest file's size"};
  for (size_t k = 0; k < steps.size(); ++k) {
    points.push_back({KillPoint::after_steps, static_cast<int64_t>(k)});
    labels.push_back("killed after step '" + steps[k] + "'");
  }
  std::vector<fs::path> dirs;
  for (size_t i = 0; i < points.size(); ++i) {
    dirs.push_back(root / ("killed" + std::to_string(i)));
    copy_folder(prepared, dirs.back());
  }
  run_killed_writers(dirs, saved, points, labels, root / "logs");

  const auto as_before = snapshot(before), as_saved = snapshot(saved);
  bool gave_saved = false;
  for (size_t i = 0; i < points.size(); ++i) {
    SCOPED_TRACE(labels[i]);
    std::optional<Loaded> loaded;
    try {
      loaded = load(dirs[i]);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not loadable: " << e.what();
      continue;
    }
    const auto from_before = differences(*loaded, as_before), from_saved = differences(*loaded, as_saved);
    EXPECT_TRUE(from_before.empty() || from_saved.empty())
        << "neither checkpoint: differs from the previous in " << from_before << "and from the new in " << from_saved;
    if (gave_saved) {
      EXPECT_EQ(from_saved, "") << "back to the previous checkpoint after an earlier kill gave the new one";
    }
    gave_saved = gave_saved || from_saved.empty();
    if (points[i].kind == KillPoint::file_size_limit) {
      EXPECT_EQ(from_before, "");
      EXPECT_TRUE(holds_a_new_temporary_folder(dirs[i], prepared, saved.iteration)) << "died before it began writing";
    }
    if (i + 1 == points.size()) {
      EXPECT_EQ(from_saved, "") << "killed after its last step";
    }
    expect_later_saves_clean_up(dirs[i], prepared, saved.iteration);
  }
}

// ---- Kill scenarios

TEST(CheckpointDirKill, NewIterationAfterAnExistingOne) {
  if (in_killed_writer()) return run_killed_writer();
  const auto root = testing::fresh_temp_dir("checkpoint_dir_new_iteration");
  save_snapshot(root / "prepared", {1, 1});
  kill_the_writer_at_every_point(root / "prepared", {1, 1}, {2, 2});
  fs::remove_all(root);
}

// The tracker names the iteration being saved (a resumed run saving where it started): the case
// that used to leave the tracker naming a deleted folder.
TEST(CheckpointDirKill, ResavingTheTrackedIteration) {
  if (in_killed_writer()) return run_killed_writer();
  const auto root = testing::fresh_temp_dir("checkpoint_dir_resave");
  save_snapshot(root / "prepared", {2, 1});
  kill_the_writer_at_every_point(root / "prepared", {2, 1}, {2, 2});
  fs::remove_all(root);
}

// What an earlier kill between renaming iteration 2 into place and updating the tracker left: a
// complete iter_0000002 (of another save) that the tracker does not name.
TEST(CheckpointDirKill, StaleUnreferencedFolderOfTheSavedIteration) {
  if (in_killed_writer()) return run_killed_writer();
  const auto root = testing::fresh_temp_dir("checkpoint_dir_stale");
  const auto prepared = root / "prepared";
  save_snapshot(prepared, {1, 1});
  save_snapshot(prepared, {2, 3});
  write_text(prepared / kTrackerFile, "1");
  kill_the_writer_at_every_point(prepared, {1, 1}, {2, 2});
  fs::remove_all(root);
}

// What an earlier kill during a replacement left: the tracker names iteration 2, whose folder is
// aside as iter_0000002.previous, and the killed writer's temporary folder (of another save).
TEST(CheckpointDirKill, ResavingAfterAKilledReplacement) {
  if (in_killed_writer()) return run_killed_writer();
  const auto root = testing::fresh_temp_dir("checkpoint_dir_killed_replacement");
  const auto prepared = root / "prepared";
  save_snapshot(prepared, {2, 1});
  // The first step after which iteration 2 is only there aside, from a save that runs to the end.
  const auto probe = root / "probe";
  copy_folder(prepared, probe);
  std::optional<int64_t> aside;
  int64_t steps_done = 0;
  save_snapshot(probe, {2, 3}, [&](std::string_view) {
    if (!aside && !fs::exists(probe / "iter_0000002") && fs::exists(probe / "iter_0000002.previous"))
      aside = steps_done;
    ++steps_done;
  });
  ASSERT_TRUE(aside) << "no step of a re-save leaves iteration 2 aside";
  run_killed_writers({prepared}, {2, 3}, {{KillPoint::after_steps, *aside}}, {"replacing iteration 2"},
                     root / "logs");
  ASSERT_FALSE(fs::exists(prepared / "iter_0000002"));
  ASSERT_TRUE(fs::exists(prepared / "iter_0000002.previous"));
  ASSERT_TRUE(holds_a_new_temporary_folder(prepared, {}, 2));

  kill_the_writer_at_every_point(prepared, {2, 1}, {2, 2});

  // Saving the next iteration straight away keeps the aside checkpoint, under its own name.
  const auto next = root / "next";
  copy_folder(prepared, next);
  save_snapshot(next, {3, 4});
  EXPECT_EQ(differences(load(next), snapshot({3, 4})), "");
  EXPECT_EQ(entries(next), (std::set<std::string>{kTrackerFile, "iter_0000002", "iter_0000003"}));
  write_text(next / kTrackerFile, "2");
  EXPECT_EQ(differences(load(next), snapshot({2, 1})), "");
  fs::remove_all(root);
}

// ---- Strict reading

TEST(CheckpointTracker, HoldsOneNonNegativeIntegerAndANewline) {
  const auto dir = testing::fresh_temp_dir("checkpoint_dir_tracker");
  fs::create_directories(dir);
  const auto tracker = dir / kTrackerFile;
  for (const std::string text : {"20", "20\n"}) {
    write_text(tracker, text);
    EXPECT_EQ(tracked_iteration(dir), 20) << "'" << text << "'";
  }
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"2e1", "expected an integer"},     {"20abc", "expected an integer"}, {" 20", "expected an integer"},
      {"+20", "expected an integer"},     {"20 ", "expected an integer"},   {"20\n\n", "expected an integer"},
      {"", "expected an integer"},        {"-3", "iteration -3 is negative"},
      {"99999999999999999999", "out of range"}};
  for (const auto& [text, says] : bad) {
    write_text(tracker, text);
    for (const auto& read : std::vector<std::function<void()>>{[&] { tracked_iteration(dir); },
                                                               [&] { read_checkpoint(dir); }}) {
      const auto error = error_of(read);
      EXPECT_NE(error.find(tracker.string()), std::string::npos) << "'" << text << "': " << error;
      EXPECT_NE(error.find(says), std::string::npos) << "'" << text << "': " << error;
    }
  }
  fs::remove_all(dir);
}

TEST(CheckpointState, IsReadStrictly) {
  const auto dir = testing::fresh_temp_dir("checkpoint_dir_state");
  const auto folder = dir / "iter_0000020";
  fs::create_directories(folder);
  write_text(dir / kTrackerFile, "20\n");
  const auto path = folder / "state.json";
  const nlohmann::json valid = {{"iteration", 20}, {"data_position", 5}, {"config", {{"hidden_size", 32}}}};
  write_text(path, valid.dump());
  const auto saved = read_checkpoint(dir);
  EXPECT_EQ(saved.dir, folder);
  EXPECT_EQ(saved.state.iteration, 20);
  EXPECT_EQ(saved.state.data_position, 5u);
  EXPECT_EQ(saved.config, valid["config"]);
  EXPECT_TRUE(saved.state.run.is_null());

  struct Case {
    std::string what;
    std::function<void(nlohmann::json&)> change;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"iteration 20.5", [](auto& j) { j["iteration"] = 20.5; }, "field 'iteration' (checkpoint state) is"},
      {"iteration a string", [](auto& j) { j["iteration"] = "20"; }, "field 'iteration' (checkpoint state) is"},
      {"negative iteration", [](auto& j) { j["iteration"] = -20; }, "iteration -20 and data_position 5 must be"},
      {"negative data position", [](auto& j) { j["data_position"] = -1; }, "data_position -1 must be non-negative"},
      {"data position 5.5", [](auto& j) { j["data_position"] = 5.5; }, "field 'data_position'"},
      {"no iteration", [](auto& j) { j.erase("iteration"); }, "required field 'iteration'"},
      {"no data position", [](auto& j) { j.erase("data_position"); }, "required field 'data_position'"},
      {"no config", [](auto& j) { j.erase("config"); }, "no model \"config\" object"},
      {"iteration not the tracker's", [](auto& j) { j["iteration"] = 21; }, "iteration 21 but the tracker names 20"},
      {"not an object", [](auto& j) { j = nlohmann::json::array({20, 5}); }, "expected a JSON object"},
  };
  for (const auto& c : cases) {
    auto json = valid;
    c.change(json);
    write_text(path, json.dump());
    const auto error = error_of([&] { read_checkpoint(dir); });
    EXPECT_NE(error.find(path.string() + ": "), std::string::npos) << c.what << ": " << error;
    EXPECT_NE(error.find(c.says), std::string::npos) << c.what << ": " << error;
  }
  write_text(path, "{\"iteration\": 20,");
  EXPECT_NE(error_of([&] { read_checkpoint(dir); }).find(path.string() + ": not valid JSON"), std::string::npos);
  fs::remove(path);
  EXPECT_EQ(error_of([&] { read_checkpoint(dir); }), path.string() + ": cannot open");
  fs::remove_all(folder);
  EXPECT_EQ(error_of([&] { read_checkpoint(dir); }),
            dir.string() + ": the tracker names iteration 20 but " + folder.string() + " is missing");
  fs::remove_all(dir);
}

// ---- What a --load folder holds

TEST(LoadFolder, KindsAreToldApart) {
  const auto root = testing::fresh_temp_dir("checkpoint_dir_load_folder");
  fs::create_directories(root / "empty");
  write_text(root / "file.txt", "not a folder");
  fs::create_directories(root / "hf");
  write_text(root / "hf" / "config.json", "{}");
  write_text(root / "hf" / "model-00001-of-00002.safetensors", "");
  fs::create_directories(root / "config_only");
  write_text(root / "config_only" / "config.json", "{}");
  fs::create_directories(root / "notes");
  write_text(root / "notes" / "notes.txt", "");
  save_snapshot(root / "checkpoint", {1, 1});

  const std::string other = "no latest_checkpointed_iteration.txt (not a strata training checkpoint folder)";
  const std::vector<std::tuple<fs::path, LoadFolder, std::string>> cases = {
      {root / "missing", LoadFolder::missing, "no such directory"},
      {root / "empty", LoadFolder::empty, "an empty directory, no checkpoint in it"},
      {root / "file.txt", LoadFolder::not_a_folder, "a file, not a checkpoint folder"},
      {root / "hf", LoadFolder::hf_model,
       "an HF model (config.json and safetensors): start from it with --load-hf"},
      {fs::path(testing::fixture("qwen3_dense")) / "model", LoadFolder::hf_model,
       "an HF model (config.json and safetensors): start from it with --load-hf"},
      {testing::fixture("qwen3_dense"), LoadFolder::hf_check_fixture,
       "an hf-check fixture: start from its model with --load-hf"},
      {root / "config_only", LoadFolder::other, other},
      {root / "notes", LoadFolder::other, other},
      {root / "checkpoint", LoadFolder::strata_checkpoint, "a strata checkpoint"},
  };
  for (const auto& [dir, kind, description] : cases) {
    EXPECT_EQ(inspect_load_folder(dir), kind) << dir;
    EXPECT_EQ(describe_non_checkpoint(dir), description) << dir;
  }
  fs::remove_all(root);
}

// ---- Saving refuses a diverged model

TEST(CheckpointSave, RefusesNonFiniteWeightsAndKeepsThePreviousCheckpoint) {
  const auto dir = testing::fresh_temp_dir("checkpoint_dir_non_finite");
  save_snapshot(dir, {1, 1});
  for (const float bad : {NAN, INFINITY, -INFINITY}) {
    const auto s = snapshot({2, 2});
    const auto weights = s.model->canonical_state_dict();
    const auto& [name, weight] = *weights.rbegin();
    {
      at::NoGradGuard no_grad;
      weight.view(-1)[3].fill_(bad);
    }
    const auto error = error_of([&] { save_training_checkpoint(dir, *s.model, *s.optimizer, s.state); });
    EXPECT_EQ(error, "not saving iteration 2 to " + dir.string() + ": weight " + name +
                         " holds NaN or infinity (the run diverged); the last checkpoint there is kept");
    EXPECT_EQ(entries(dir), (std::set<std::string>{kTrackerFile, "iter_0000001"}));
    EXPECT_EQ(differences(load(dir), snapshot({1, 1})), "");
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace strata::train
