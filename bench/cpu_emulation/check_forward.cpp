// The forward's standalone check (bench/gdn_fused_check.cu) on the CPU emulation, at sizes the
// emulation runs in seconds: the passes' arrays (prepare, states, output), then the output and
// final state for odd lengths, strong and weak gates, packed documents, float32 q and k and value
// heads sharing key heads.
// Prints PASS or FAIL.
#define main standalone_main
#include "gdn_fused_check.cu"
#undef main

int main() {
  bool pass = check_passes(random_inputs(1, 150, 2, 0.5, 0.0, true, {}, 99u));
  for (int seq : {1, 65, 200})
    pass &= check_case("mixed gates, initial state", 1, seq, 2, 0.5, 0.0, true, false);
  pass &= check_case("gates near 1 (g ~ -1e-4), beta near 1", 1, 130, 1, 1e-4, 4.0, true, false);
  pass &= check_case("strong decay (g ~ -5), beta near 0", 1, 70, 1, 5.0, -4.0, true, false);
  pass &= check_case("no initial state, q and k float32", 1, 300, 1, 0.5, 0.0, false, true);
  pass &= check_case("packed documents", 1, 200, 1, 0.5, 0.0, true, false, {0, 1, 65, 200});
  pass &= check_case("two value heads a key head", 1, 100, 4, 0.5, 0.0, true, false, {}, 2);
  std::printf("%s (CPU emulation, forward)\n", pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}
