#!/usr/bin/env python3
"""Turn line protocol (gen_fleet.py or nab_convert.py output, seconds) into
per-series binary columns for bench/bench_codec.

One series per (measurement + tags, field). Output layout, little-endian:

  magic     8 bytes  b"MKCOLS1\\n"
  n_series  u32
  then per series, in first-seen order:
    name_len u16, name (UTF-8: "<measurement,tags> <field>")
    n        u32
    ts       n x i64   milliseconds (seconds * 1000), ascending
    vals     n x f64   parsed with float(), which rounds correctly like strtod

Duplicate timestamps keep the last value (as the stores do). Only the
standard library is used.

  python3 bench/fleet_columns.py /tmp/fleet-small.lp /tmp/fleet-small.cols
"""
import struct
import sys
from array import array


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    series = {}
    order = []
    with open(argv[1], "r") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            # key fields ts; no escaped spaces in these datasets' keys.
            key, fields, ts = line.rsplit(" ", 2)
            t_ms = int(ts) * 1000
            for kv in fields.split(","):
                k, v = kv.split("=", 1)
                if v.endswith("i"):
                    v = v[:-1]
                name = key + " " + k
                s = series.get(name)
                if s is None:
                    s = {}
                    series[name] = s
                    order.append(name)
                s[t_ms] = float(v)
    with open(argv[2], "wb") as out:
        out.write(b"MKCOLS1\n")
        out.write(struct.pack("<I", len(order)))
        for name in order:
            s = series[name]
            ts = sorted(s)
            nb = name.encode()
            out.write(struct.pack("<H", len(nb)))
            out.write(nb)
            out.write(struct.pack("<I", len(ts)))
            out.write(array("q", ts).tobytes())
            out.write(array("d", [s[t] for t in ts]).tobytes())
    n = sum(len(series[x]) for x in order)
    sys.stderr.write("%d series, %d samples -> %s\n" % (len(order), n, argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
