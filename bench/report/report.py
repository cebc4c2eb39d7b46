#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""report.py — builds the performance report from one bench/run's results.

    report.py RESULTS_DIR [--md FILE] [--json FILE] [--charts DIR]
              [--charts-link PATH] [--no-charts]

RESULTS_DIR holds machine.json and the benchmarks' JSON files (ports,
engine, minispy, scanner, workload). Writes the Markdown report, the
aggregated JSON (medians, min-max, per-repetition ratios, goals) and the
PNG charts. Exit status 0, 1 when nothing could be read, 2 on bad usage.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aggregate  # noqa: E402
import charts as charts_mod  # noqa: E402
import render_md  # noqa: E402

# How each peer was run: facts the numbers cannot carry. Shown for the
# peers present in the results.
PEER_NOTES = {
    "clamonacc": (
        "**clamd + clamonacc** (ClamAV): a one-signature database of our own "
        "(the official one needs freshclam and the network), "
        "`OnAccessPrevention yes`, `--fdpass`. clamonacc refuses to start "
        "unless clamd's own user is excluded, so clamd runs as `clamav` "
        "and `OnAccessExcludeUname clamav`: the benchmark's root-owned "
        "opens are really sent to clamd and scanned (an earlier attempt "
        "ran clamd as root, excluded root, and so measured only "
        "clamonacc's fanotify path). Readiness is checked by opening a "
        "file holding the signature until it is denied."),
    "fapolicyd": (
        "**fapolicyd**: runs with the package's sample rules (the "
        "\"known-libs\" set of README-rules), `trust = file` (the exec "
        "loop's binary added with `fapolicyd-cli --file add`), "
        "`integrity = none`, `permissive = 1` (decides and counts, denies "
        "nothing) and `watch_fs = tmpfs`. Its paths are fixed, so private "
        "ones are bind-mounted over /etc/fapolicyd, /var/lib/fapolicyd and "
        "/run/fapolicyd inside the benchmark's own mount namespace, where "
        "its mount marks land on that namespace's copies of the tmpfs "
        "mounts only. It runs as root (`uid = root`): in the container it "
        "cannot switch to its own user (\"Cannot change to uid\"). Most of "
        "its cost on a first open is the file-type lookup (libmagic) its "
        "rules ask for."),
    "scanner": (
        "**fltmgrd + scanner**: scanner.so at altitude 325000 with its "
        "default parameters (clean verdicts cached in the kernel, writes "
        "invalidate), the `scanner` service with a one-rule YARA set."),
    "fatrace": (
        "**fatrace** (`-c`, a filesystem mark on the tmpfs) and "
        "**inotifywait** (`-m -r`) only report; they never hold an open."),
}


def main():
    ap = argparse.ArgumentParser(description="Builds the performance report "
                                 "from one bench/run's JSON results.")
    ap.add_argument("results")
    ap.add_argument("--md", help="Markdown output (default RESULTS/performance.md)")
    ap.add_argument("--json", help="aggregated JSON output "
                    "(default RESULTS/performance.json)")
    ap.add_argument("--charts", help="directory for the PNGs "
                    "(default RESULTS/perf)")
    ap.add_argument("--charts-link", help="the charts directory as the "
                    "Markdown links it (default: relative to --md)")
    ap.add_argument("--no-charts", action="store_true")
    a = ap.parse_args()
    if not os.path.isdir(a.results):
        ap.error("%s is not a directory" % a.results)
    md = a.md or os.path.join(a.results, "performance.md")
    js = a.json or os.path.join(a.results, "performance.json")
    cdir = a.charts or os.path.join(a.results, "perf")

    agg = aggregate.aggregate(a.results)
    if not agg["tables"]:
        print("report: no benchmark results in %s" % a.results, file=sys.stderr)
        return 1
    charts, why = [], None
    if not a.no_charts:
        link = a.charts_link or os.path.relpath(cdir, os.path.dirname(
            os.path.abspath(md)))
        try:
            charts, why = charts_mod.draw(agg, cdir, link)
        except (RuntimeError, OSError) as e:
            why = "charts failed: %s" % e
        if why:
            print("report: %s" % why, file=sys.stderr)
    # the PNGs as seen from the JSON file, which lives beside them
    agg["charts"] = [os.path.relpath(os.path.join(cdir, os.path.basename(c[0])),
                                     os.path.dirname(os.path.abspath(js)))
                     for c in charts]
    present = {p["name"] for p in agg["peers"]}
    notes = [PEER_NOTES[k] for k in PEER_NOTES if k in present]
    peer_notes = ["How the products and peers were run:", ""] + \
        ["- " + n for n in notes] + [""] if notes else []
    with open(md, "w") as f:
        f.write(render_md.render(agg, peer_notes, charts))
    with open(js, "w") as f:
        json.dump(agg, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("report: wrote %s, %s%s" % (md, js, ", %d charts in %s" % (
        len(charts), cdir) if charts else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
