#!/usr/bin/env python3
"""Prepares NAB label data for the fast tuning loop of bench_detect.

  detect_tune.py CORPUS OUT.prep

Reads CORPUS/labels/combined_windows.json and the data files with
../shared/tools/nab_score.py (so rows, windows, probation and the
unweighted NAB row values are exactly the scorer's) and writes them in a
binary form `bench_detect eval` reads:
  uint64 total windows in the JSON, uint64 files, then per file:
  "category/name.csv\\n", uint64 rows, float64 probation rows,
  int32[rows] window index or -1, float64[rows] unweighted value.
`bench_detect eval` then scores detector variants with the same sweep as
nab_score.py in about a second per corpus (bench/DETECT.md).
"""
import array
import os
import struct
import sys

sys.path.insert(0, os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "tools")))
sys.path.insert(0, "/work/shared/tools")
import nab_score  # noqa: E402


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    d, out = sys.argv[1:]
    corpus = nab_score.load_corpus(d, os.path.join(d, "labels", "combined_windows.json"))
    with open(out, "wb") as f:
        f.write(struct.pack("<QQ", corpus.n_windows_total, len(corpus.files)))
        for df in corpus.files:
            f.write((df.relpath + "\n").encode())
            f.write(struct.pack("<Qd", df.n_rows, float(df.probation)))
            array.array("i", df.in_window).tofile(f)
            array.array("d", df.unweighted).tofile(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
