"""Copies a kernel file for the CPU emulation (emulation.h): each launch
`kernel<<<grid, threads, shared, host::as_cuda(stream)>>>(args);` becomes
`emu::launch(dim3(grid), threads, [&] { kernel(args); });`, and each OLD text given becomes NEW
(shared arrays into the emulation's buffer or into statics: one block runs at a time).
  python3 emulated_launches.py SOURCE DESTINATION LAUNCHES [OLD NEW]...
LAUNCHES is how many launches SOURCE must hold (a check that the pattern still matches them all)."""
import re
import sys

LAUNCH = re.compile(r'(\w+(?:<[^<>]*>)?)\s*<<<(.*?),\s*(\w+),\s*([^,]+?),\s*host::as_cuda\(stream\)>>>\((.*?)\);', re.S)

source, destination, launches, *replacements = sys.argv[1:]
text = open(source).read()
text, count = LAUNCH.subn(r'emu::launch(dim3(\2), \3, [&] { \1(\5); });', text)
if count != int(launches):
    sys.exit(f"expected {launches} launches in {source}, found {count}")
for old, new in zip(replacements[::2], replacements[1::2]):
    if old not in text:
        sys.exit(f"{source} no longer holds {old!r}")
    text = text.replace(old, new)
open(destination, 'w').write(text)
