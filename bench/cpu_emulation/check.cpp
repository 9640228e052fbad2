// The backward's standalone check (bench/gdn_fused_backward_check.cu) on the CPU emulation, at
// sizes the emulation runs in seconds: the passes' hand-over arrays, then every gradient for odd
// lengths, strong and weak gates, packed documents, float32 q and k and value heads sharing key heads. Prints PASS or FAIL.
#define main standalone_main
#include "gdn_fused_backward_check.cu"
#undef main

int main() {
  bool pass = check_passes();
  pass &= check_case("mixed gates, initial state", 1, 150, 2, 0.5, 0.0, true, false);
  pass &= check_case("one token", 2, 1, 1, 0.5, 0.0, true, false);
  pass &= check_case("gates near 1, beta near 1", 2, 130, 2, 1e-4, 4.0, true, false);
  pass &= check_case("strong decay, beta near 0", 1, 65, 1, 5.0, -4.0, true, false);
  pass &= check_case("packed documents", 1, 200, 1, 0.5, 0.0, true, false, {0, 1, 65, 200});
  pass &= check_case("q and k float32, no initial state", 1, 300, 1, 0.5, 0.0, false, true);
  pass &= check_case("the forward's arrays kept", 1, 100, 2, 0.5, 0.0, true, false, {}, true);
  pass &= check_case("the forward's arrays kept, packed", 1, 150, 1, 0.5, 0.0, true, false, {0, 70, 150}, true);
  pass &= check_case("two value heads a key head", 1, 100, 4, 0.5, 0.0, true, false, {}, false, 2);
  std::printf("%s (CPU emulation)\n", pass ? "PASS" : "FAIL");
  return pass ? 0 : 1;
}
