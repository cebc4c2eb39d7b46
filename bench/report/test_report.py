#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test_report.py — checks bench/report on recorded results (no timing):
a recorded `bench/run --quick` renders every table and goal; ratios are
taken within each repetition, not between medians; goal verdicts follow
their comparison; missing benchmarks and peers that did not run are
reported with the reason. Run by `meson test` (suite report)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import aggregate  # noqa: E402
import render_md  # noqa: E402
from stats import per_rep_ratios, ratio_summary  # noqa: E402

RECORDED = os.path.join(HERE, "testdata", "quick-run")


def write(d, name, obj):
    with open(os.path.join(d, name), "w") as f:
        json.dump(obj, f)


def ports_json(raw, flt):
    return {"rtt_count": 10, "msg_count": 10, "per_rep": {
        "raw_rtt_p50_ns": raw, "fltmgr_rtt_p50_ns": flt,
        "raw_rtt_p99_ns": raw, "fltmgr_rtt_p99_ns": flt,
        "raw_msgs_per_s": raw, "fltmgr_msgs_per_s": flt}}


class RecordedRun(unittest.TestCase):
    def test_every_table_and_goal(self):
        agg = aggregate.aggregate(RECORDED)
        self.assertEqual(agg["missing"], [])
        ids = {t["id"] for t in agg["tables"]}
        for tid in ("open_loop", "scanner_open", "work_walk_cold",
                    "work_walk_warm", "work_exec", "work_churn",
                    "notif_engine", "minispy_events", "minispy_cpu_flat_out",
                    "port_rtt", "port_tput"):
            self.assertIn(tid, ids)
        self.assertEqual(len(agg["goals"]), 14)
        for g in agg["goals"]:
            self.assertIn(g["met"], (True, False), g["goal"])
        md = render_md.render(agg, [], [])
        for t in agg["tables"]:
            self.assertIn("### " + t["title"], md)
        self.assertEqual(md.count("**met**") + md.count("**missed**"), 14)
        self.assertIn("load average at start | 16.09", md)

    def test_engine_ratio_matches_its_reps(self):
        # The 1-filter ratio is the median of c/b over the recorded reps.
        with open(os.path.join(RECORDED, "engine.json")) as f:
            p = json.load(f)["per_rep"]
        want = sorted(c / b for c, b in zip(p["c_ns_per_call"],
                                            p["b_ns_per_call"]))[1]
        agg = aggregate.aggregate(RECORDED)
        t = next(t for t in agg["tables"] if t["id"] == "open_loop")
        c = next(r for r in t["rows"] if r["key"] == "c")
        self.assertAlmostEqual(c["ratio_floor"]["median"], want)

    def test_command_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            res = os.path.join(tmp, "results")
            shutil.copytree(RECORDED, res)
            r = subprocess.run([sys.executable, os.path.join(HERE, "report.py"),
                                res, "--no-charts"], capture_output=True,
                               text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(res, "performance.json")) as f:
                self.assertEqual(len(json.load(f)["goals"]), 14)
            with open(os.path.join(res, "performance.md")) as f:
                self.assertIn("## How to read this", f.read())
            r = subprocess.run([sys.executable, os.path.join(HERE, "report.py"),
                                tmp, "--no-charts"], capture_output=True,
                               text=True)
            self.assertEqual(r.returncode, 1, "no results must be an error")


class Ratios(unittest.TestCase):
    def test_within_each_repetition(self):
        # Per rep: 3, 3, 0.2 -> median 3. The ratio of the medians would
        # be 20 / 10 = 2: the report must not compare across repetitions.
        with tempfile.TemporaryDirectory() as tmp:
            write(tmp, "ports.json", ports_json([1, 10, 100], [3, 30, 20]))
            agg = aggregate.aggregate(tmp)
        t = next(t for t in agg["tables"] if t["id"] == "port_rtt")
        flt = next(r for r in t["rows"] if r["key"] == "fltmgr")
        self.assertAlmostEqual(flt["ratio_floor"]["median"], 3.0)
        self.assertAlmostEqual(flt["ratio_floor"]["min"], 0.2)
        self.assertAlmostEqual(flt["median"], 20 * 1e-3)  # µs
        g = agg["goals"][0]
        self.assertAlmostEqual(g["value"], 3.0)
        self.assertFalse(g["met"])
        self.assertEqual(sorted(agg["missing"]), ["engine.json", "minispy.json",
                                                  "scanner.json",
                                                  "workload.json"])

    def test_missing_values_skip_only_their_repetition(self):
        self.assertEqual(per_rep_ratios([2, None, 6], [1, 5, 0]),
                         [2.0, None, None])
        s = ratio_summary([2, None, 9], [1, 5, 3])
        self.assertEqual((s["median"], s["n"]), (2.5, 2))
        self.assertIsNone(ratio_summary([None], [1]))

    def test_goal_boundaries(self):
        r = {"median": 1.25, "min": 1.0, "max": 2.0}
        self.assertTrue(aggregate.goal("g", "s", r, "<=", 1.25, "")["met"])
        self.assertFalse(aggregate.goal("g", "s", dict(r, median=1.0), "<",
                                        1.0, "")["met"])
        self.assertTrue(aggregate.goal("g", "s", dict(r, median=0.8), ">=",
                                       0.8, "")["met"])
        self.assertIsNone(aggregate.goal("g", "s", None, ">=", 1, "")["met"])


class Peers(unittest.TestCase):
    def test_skipped_and_failed_peers_say_why(self):
        wl = {"config": {"reps": 2, "files": 10, "bytes": 100, "copies": 1,
                         "tree": "t", "execs": 5, "churn": 5},
              "workloads": {w: {"count": 10, "per": "file", "what": w}
                            for w in ("walk_cold", "walk_warm", "exec",
                                      "churn")},
              "listeners": {"none": {"ran": True, "why": None},
                            "raw": {"ran": True, "why": None},
                            "clamonacc": {"ran": True, "why": None},
                            "fapolicyd": {"ran": False,
                                          "why": "not installed (Debian "
                                                 "package fapolicyd)"}},
              "order": [],
              "per_rep": []}
        ok = {w + "_ns": 1000 for w in ("walk_cold", "walk_warm", "exec",
                                        "churn")}
        for _ in range(2):
            wl["per_rep"].append({
                "none": dict(ok, ok=True, memory={}),
                "raw": dict(ok, ok=True, memory={"raw": {
                    "idle_rss_kb": 1024, "after_rss_kb": 2048,
                    "peak_kb": 4096}}),
                "clamonacc": {"ok": False, "error": "clamd did not start"}})
        with tempfile.TemporaryDirectory() as tmp:
            write(tmp, "workload.json", wl)
            agg = aggregate.aggregate(tmp)
        md = render_md.render(agg, [], [])
        self.assertIn("fapolicyd (permissive)**: did not run: not installed",
                      md)
        self.assertIn("clamd + clamonacc**: did not run: clamd did not start",
                      md)
        self.assertIn("clamonacc: failed in 2 of 2 reps", md)
        self.assertIn("| raw fanotify responder (floor) | raw | 1.0 MiB | "
                      "2.0 MiB | 4.0 MiB |", md)

    def test_pinned_passes_get_tables_of_their_own(self):
        ws = ("walk_cold", "walk_warm", "exec", "churn")
        wl = {"config": {"reps": 2, "files": 10, "bytes": 100, "copies": 1,
                         "tree": "t", "execs": 10, "churn": 10,
                         "placements": ["any", "same", "cross"],
                         "cpus": {"program": 0, "same": 0, "cross": 1}},
              "workloads": {w: {"count": 10, "per": "file", "what": w}
                            for w in ws},
              "listeners": {"none": {"ran": True, "why": None},
                            "raw": {"ran": True, "why": None}},
              "order": [], "per_rep": []}
        for _ in range(2):
            rep = {}
            for k, base in (("none", 1000), ("raw", 2000)):
                r = {w + "_ns": base for w in ws}
                for w in ws[1:]:
                    r[w + "@same_ns"] = base * 2
                    r[w + "@cross_ns"] = base * 3
                rep[k] = dict(r, ok=True, memory={})
            wl["per_rep"].append(rep)
        with tempfile.TemporaryDirectory() as tmp:
            write(tmp, "workload.json", wl)
            agg = aggregate.aggregate(tmp)
        ids = [t["id"] for t in agg["tables"]]
        for w in ws[1:]:
            for pl, mult in (("same", 2), ("cross", 3)):
                t = next(t for t in agg["tables"]
                         if t["id"] == "work_%s_%s" % (w, pl))
                self.assertAlmostEqual(aggregate.row(t, "none")["median"],
                                 0.1 * mult)
                self.assertEqual(aggregate.row(t, "raw")["ratio_none"]
                                 ["median"], 2.0)
        self.assertNotIn("work_walk_cold_same", ids)
        md = render_md.render(agg, [], [])
        self.assertIn("program on CPU 0, every listener thread on CPU 1", md)


if __name__ == "__main__":
    unittest.main(verbosity=2)
