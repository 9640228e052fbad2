#!/usr/bin/env python3
"""Where a kernel's warps wait, from Nsight Compute's per-instruction export: for each kernel, the
stall reasons' shares of the sampled warp states, the instructions with the most samples, and (with
--ranges) the samples and executed instructions of SASS line ranges, such as a warp-specialised
kernel's copy warps against its computing warps. The export comes from a report taken with
--set full (or --section WarpStateStats --section SourceCounters) on the GPU machine:

  ncu --set full --import-source yes -k regex:states_kernel -c 1 -o walk BINARY
  ncu -i walk.ncu-rep --page source --csv --print-source sass > walk.csv
  python3 bench/ncu_stalls.py walk.csv --top 20 --ranges 764:1026,1026:1530

Line numbers are the SASS lines' positions in a kernel's table (0-based, as --top prints them)."""
import argparse
import collections
import csv
import io


SAMPLES = "Warp Stall Sampling (All Samples)"
EXECUTED = "Instructions Executed"


def kernels(path):
    """(kernel name, its SASS rows as dicts, its stall-reason columns) for each kernel in the
    export: a "Kernel Name" line, then the kernel's table with its own header."""
    with open(path, encoding="utf-8", errors="replace") as export:
        sections, name = [], None
        for line in export:
            if line.startswith('"Kernel Name"'):
                name = next(csv.reader([line]))[1]
                sections.append((name, []))
            elif name is not None:
                sections[-1][1].append(line)
    for name, lines in sections:
        table = csv.DictReader(io.StringIO("".join(lines)))
        stalls = [k for k in table.fieldnames or [] if k.startswith("stall_") and "(Not Issued)" not in k]
        yield name, [r for r in table if r.get("Source") is not None], stalls


def number(row, key):
    try:
        return float(row.get(key) or 0)
    except ValueError:
        return 0.0


def shares(rows, stalls):
    """The stall reasons' sample counts over rows, largest first."""
    totals = collections.Counter()
    for r in rows:
        for k in stalls:
            totals[k[len("stall_"):]] += number(r, k)
    return totals.most_common()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", help="ncu --page source --csv --print-source sass output")
    parser.add_argument("--top", type=int, default=12, help="instructions with the most samples to print")
    parser.add_argument("--ranges", default="", help="comma-separated SASS line ranges a:b to sum")
    args = parser.parse_args()
    for name, rows, stalls in kernels(args.csv):
        total = sum(number(r, SAMPLES) for r in rows)
        print(f"{name}\n  {total:.0f} samples, {sum(number(r, EXECUTED) for r in rows):.0f} warp instructions executed")
        if total == 0:
            continue
        print("  stalls: " + ", ".join(f"{k} {v / total:.0%}" for k, v in shares(rows, stalls)[:8]))
        ranked = sorted(range(len(rows)), key=lambda i: -number(rows[i], SAMPLES))[: args.top]
        for i in sorted(ranked):
            r = rows[i]
            reason = max(stalls, key=lambda k: number(r, k))[len("stall_"):]
            print(f"  {i:5d} {number(r, SAMPLES):6.0f} {reason:<16} {r['Source'].strip()[:70]}")
        for text in filter(None, args.ranges.split(",")):
            first, last = (int(x) for x in text.split(":"))
            part = rows[first:last]
            samples = sum(number(r, SAMPLES) for r in part)
            top = ", ".join(f"{k} {v:.0f}" for k, v in shares(part, stalls)[:4])
            print(f"  lines {first}:{last}: {samples:.0f} samples ({samples / total:.0%}: {top}), "
                  f"{sum(number(r, EXECUTED) for r in part):.0f} warp instructions")


if __name__ == "__main__":
    main()
