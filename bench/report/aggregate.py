# SPDX-License-Identifier: MIT
"""aggregate.py — turns the JSON files one bench/run wrote into the
report's data: one table per workload (median, min-max, ratio to the floor
and to no listener, both taken within each repetition), the memory table,
the goals with met/missed, and which peers ran and why not.

Input: a results directory with machine.json and any of ports.json,
engine.json, minispy.json, scanner.json, workload.json (a benchmark that
did not run is listed as missing). Output: a plain dict (bench/results/performance.json).
"""
import json
import os

from stats import median, ratio_summary, summary

# The goals stated in the issues (quoted in bench/README.md): ratio key,
# comparison, target.
LISTENER_LABELS = {
    "none": "no listener",
    "raw": "raw fanotify responder (floor)",
    "flt1": "fltmgr, 1 filter",
    "flt3": "fltmgr, 3 filters",
    "cached": "fltmgr, 1 filter, cached verdicts",
    "minispy": "fltmgrd + minispy",
    "scanner": "fltmgrd + scanner (YARA)",
    "fatrace": "fatrace",
    "inotifywait": "inotifywait -m -r",
    "clamonacc": "clamd + clamonacc",
    "fapolicyd": "fapolicyd (permissive)",
}


def load(results, name):
    path = os.path.join(results, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def make_table(tid, title, what, unit, values, labels, floor=None, none=None,
               better="lower", scale=1.0, source="", notes=None):
    """values: row key -> per-repetition list (None where missing)."""
    rows = []
    for key, per_rep in values.items():
        v = [x * scale if x is not None else None for x in per_rep]
        s = summary(v)
        if s is None:
            continue
        row = {"key": key, "label": labels.get(key, key), **s, "values": v}
        if floor and key != floor and floor in values:
            row["ratio_floor"] = ratio_summary(per_rep, values[floor])
        if none and key != none and none in values:
            row["ratio_none"] = ratio_summary(per_rep, values[none])
        rows.append(row)
    return {"id": tid, "title": title, "what": what, "unit": unit,
            "better": better, "floor": floor, "none": none, "source": source,
            "rows": rows, "notes": notes or []}


def goal(name, source, ratio, op, target, how):
    """ratio: a ratio_summary (or None when it could not be measured)."""
    value = ratio["median"] if ratio else None
    if value is None:
        met = None
    elif op == "<=":
        met = value <= target
    elif op == "<":
        met = value < target
    else:
        met = value >= target
    return {"goal": name, "source": source, "op": op, "target": target,
            "value": value, "min": ratio["min"] if ratio else None,
            "max": ratio["max"] if ratio else None, "met": met, "how": how}


def row(table, key):
    for r in table["rows"]:
        if r["key"] == key:
            return r
    return None


# ---- per benchmark ----

def ports(d, out):
    p = d["per_rep"]
    src = "port_bench (bench/run-ports)"
    rtt = make_table(
        "port_rtt", "Port round trip (send with reply)",
        "flt_send_message() with a 16-byte reply from a user-mode service, "
        "next to a raw SOCK_SEQPACKET ping-pong between the same two "
        "processes; p50 of %d timed round trips per side and repetition"
        % d["rtt_count"], "µs (p50)",
        {"raw": p["raw_rtt_p50_ns"], "fltmgr": p["fltmgr_rtt_p50_ns"]},
        {"raw": "raw SOCK_SEQPACKET (floor)", "fltmgr": "fltmgr port"},
        floor="raw", scale=1e-3, source=src)
    p99 = make_table(
        "port_rtt_p99", "Port round trip, p99",
        "the same round trips, 99th percentile (hypervisor and scheduler "
        "noise: informative only)", "µs (p99)",
        {"raw": p["raw_rtt_p99_ns"], "fltmgr": p["fltmgr_rtt_p99_ns"]},
        {"raw": "raw SOCK_SEQPACKET (floor)", "fltmgr": "fltmgr port"},
        floor="raw", scale=1e-3, source=src)
    tput = make_table(
        "port_tput", "Port notification throughput",
        "%d one-way 64-byte messages per side and repetition "
        "(flt_send_message without a reply vs send())" % d["msg_count"],
        "messages/s",
        {"raw": p["raw_msgs_per_s"], "fltmgr": p["fltmgr_msgs_per_s"]},
        {"raw": "raw SOCK_SEQPACKET (floor)", "fltmgr": "fltmgr port"},
        floor="raw", better="higher", source=src)
    same = p.get("raw_rtt_same_cpu"), p.get("fltmgr_rtt_same_cpu")
    if same[0] and same[1]:
        rtt["notes"].append(
            "share of round trips answered on the same CPU, median over the "
            "reps: raw %.0f%%, fltmgr %.0f%% (see \"How to read this\")"
            % (100 * median(same[0]), 100 * median(same[1])))
    out["tables"] += [rtt, p99, tput]
    how = "median of the per-repetition ratios fltmgr / raw"
    out["goals"] += [
        goal("port round trip p50 ≤ 1.25× raw SEQPACKET", "ports issue (bench/README.md)",
             row(rtt, "fltmgr")["ratio_floor"], "<=", 1.25, how),
        goal("port round trip p99 ≤ 1.25× raw SEQPACKET (informative)",
             "ports issue (bench/README.md)", row(p99, "fltmgr")["ratio_floor"],
             "<=", 1.25, how),
        goal("port notifications ≥ 0.50× raw SEQPACKET throughput",
             "ports issue (bench/README.md)", row(tput, "fltmgr")["ratio_floor"],
             ">=", 0.50, how),
    ]


def engine(d, out):
    p = d["per_rep"]
    labels = {"a": "no listener", "b": "raw FAN_OPEN_PERM responder (floor)",
              "c": "fltmgr, 1 filter", "d": "fltmgr, 3 filters",
              "e": "fltmgr, 1 filter, cached verdict"}
    t = make_table(
        "open_loop", "Open+close loop (one file, every open to user space; "
        "and cached)",
        "open(O_RDONLY)+close of one 4 KiB file on a tmpfs, %d timed calls "
        "per configuration and repetition; (b)-(d) answer every open in user "
        "space, (e) answers the first and the kernel cache the rest"
        % d["opens"], "ns per open+close",
        {k: p["%s_ns_per_call" % k] for k in "abcde"}, labels,
        floor="b", none="a", source="engine_bench (bench/run-engine)")
    sc = [p.get("%s_same_cpu" % k) for k in "bcd"]
    if all(sc):
        t["notes"].append(
            "share of calls answered on the opener's CPU, median over the "
            "reps: raw %.0f%%, 1 filter %.0f%%, 3 filters %.0f%%"
            % tuple(100 * median(x) for x in sc))
    if not d.get("cache_effective", True):
        t["notes"].append("the verdict cache did NOT work in this run (see "
                          "engine_bench's checks)")
    n = make_table(
        "notif_engine", "Notification throughput (engine, file churn)",
        "a worker churns (create, write, close, rename, unlink: 5 events an "
        "iteration, %d iterations); events/s delivered to one fltmgr filter "
        "vs a raw fanotify reader doing the same path work" % d["churn"],
        "events/s",
        {"raw": p["raw_events_per_s"], "fltmgr": p["fltmgr_events_per_s"]},
        {"raw": "raw fanotify reader (floor)", "fltmgr": "fltmgr, 1 filter"},
        floor="raw", better="higher", source="engine_bench (bench/run-engine)")
    # A reader that keeps pace delivers at the churn's rate (5 events and
    # 5 operations an iteration), so its events/s is the churn's speed
    # under it, not what it could read.
    kept = {}
    for side in ("raw", "fltmgr"):
        ev, ops = p["%s_events_per_s" % side], p["%s_churn_ops_per_s" % side]
        kept[side] = sum(1 for e, o in zip(ev, ops)
                         if e is not None and o and e >= 0.95 * o)
    n["notes"].append(
        "reps in which the reader kept pace with the churn (events/s within "
        "5%% of the churn's operations/s): raw %d of %d, fltmgr %d of %d. "
        "Where both kept pace, the ratio compares how fast the churn ran "
        "under each listener, not how fast each can read"
        % (kept["raw"], d["reps"], kept["fltmgr"], d["reps"]))
    out["tables"] += [t, n]
    src = "engine issue (bench/README.md)"
    how = "median of the per-repetition ratios"
    loss = d.get("loss", {})
    out["goals"] += [
        goal("1 pass-through filter ≤ 1.15× raw responder", src,
             row(t, "c")["ratio_floor"], "<=", 1.15, how),
        goal("3 pass-through filters ≤ 1.30× raw responder", src,
             row(t, "d")["ratio_floor"], "<=", 1.30, how),
        goal("cached verdict ≤ 1.30× no listener", src,
             row(t, "e")["ratio_none"], "<=", 1.30, how),
        goal("notifications ≥ 0.80× raw reader", src,
             row(n, "fltmgr")["ratio_floor"], ">=", 0.80, how),
        {"goal": "engine: no unreported notification loss", "source": src,
         "op": "==", "target": 0, "value": loss.get("unreported_reps"),
         "min": None, "max": None,
         "met": None if loss.get("unreported_reps") is None
         else loss["unreported_reps"] == 0,
         "how": "repetitions with events missing and no overflow or drop counted"},
    ]


def minispy(d, out):
    src = "minispy_bench (bench/run-minispy)"
    labels = {"none": "churn alone", "minispy": "fltmgrd + minispy service",
              "fatrace": "fatrace", "inotifywait": "inotifywait -m -r",
              "minispy-noproc": "minispy, param.process = false"}
    tables = {}
    for mode in ("flat-out", "paced"):
        ls = d["modes"][mode]["listeners"]
        ran = {k: v["per_rep"] for k, v in ls.items()
               if any(r.get("ran") for r in v["per_rep"])}

        def col(field, keys):
            return {k: [r.get(field) if r.get("ran") else None for r in ran[k]]
                    for k in keys if k in ran}
        tools = [k for k in ("minispy", "minispy-noproc", "fatrace",
                             "inotifywait") if k in ran]
        what = ("the real programs on a churn of %d iterations (6 events "
                "each: create, open, write, close_write, rename, delete), "
                % d["config"]["churn"] if mode == "flat-out" else
                "the churn paced at %d iterations/s for %d ms, "
                % (d["config"]["rate"], d["config"]["paced_ms"]))
        if mode == "flat-out":
            tables["ev"] = make_table(
                "minispy_events", "Activity monitors: events/s delivered "
                "(flat out)", what + "events that reached each tool's output",
                "events/s", col("events_per_s", tools), labels,
                floor="fatrace", better="higher", source=src,
                notes=["ratio column: to fatrace, the issue's reference; "
                       "fatrace's count excludes the events the kernel "
                       "merged away (see the loss table)"])
        tables["cpu-" + mode] = make_table(
            "minispy_cpu_" + mode.replace("-", "_"),
            "Activity monitors: CPU per delivered event (%s)" % mode,
            what + "CPU time of the tool's processes (fltmgrd + service for "
            "minispy) per delivered event", "µs CPU per event",
            col("cpu_us_per_event", tools), labels, floor="fatrace",
            source=src)
        tables["loss-" + mode] = make_table(
            "minispy_loss_" + mode.replace("-", "_"),
            "Activity monitors: events lost without a report (%s)" % mode,
            what + "expected events that never arrived and that no loss "
            "record or overflow notice covered", "events per run",
            col("unreported", tools), labels, source=src)
        tables["gen-" + mode] = make_table(
            "minispy_churn_" + mode.replace("-", "_"),
            "File churn under activity monitors (%s)" % mode,
            what + "the churn's own rate while each tool listens",
            "operations/s", col("gen_ops_per_s", ["none"] + tools), labels,
            floor=None, none="none", better="higher", source=src)
    out["tables"] += [tables["ev"], tables["cpu-flat-out"],
                      tables["cpu-paced"], tables["loss-flat-out"],
                      tables["gen-flat-out"]]
    src = "minispy issue"
    how = "median of the per-repetition ratios minispy / fatrace"
    ev = row(tables["ev"], "minispy")
    cf = row(tables["cpu-flat-out"], "minispy")
    cp = row(tables["cpu-paced"], "minispy")
    out["goals"] += [
        goal("minispy events/s ≥ fatrace (flat out)", src,
             ev and ev.get("ratio_floor"), ">=", 1.0, how),
        goal("minispy CPU per event < fatrace (flat out)", src,
             cf and cf.get("ratio_floor"), "<", 1.0, how),
        goal("minispy CPU per event < fatrace (paced)", src,
             cp and cp.get("ratio_floor"), "<", 1.0, how),
        {"goal": "minispy: no unreported loss", "source": src, "op": "==",
         "target": 0, "value": d.get("minispy_unreported_loss_runs"),
         "min": None, "max": None,
         "met": None if not d.get("minispy_runs")
         else d["minispy_unreported_loss_runs"] == 0,
         "how": "minispy runs (both modes, %s) with loss no record covers"
         % d.get("minispy_runs")},
    ]


def scanner(d, out):
    p = d["per_rep"]
    t = make_table(
        "scanner_open", "Open+close with the on-access scanner (first open "
        "and cached)",
        "first: %d fresh files, each opened once and scanned by the scanner "
        "service (fltmgrd + scanner.so + YARA); raw: the same with a raw "
        "fanotify listener forwarding each fd over SOCK_SEQPACKET to a "
        "second process (the floor for first opens); cached: %d opens of one "
        "clean, already scanned file" % (d["files"], d["opens"]),
        "ns per open+close",
        {k: p[k] for k in ("none", "raw", "first", "cached")},
        {"none": "no listener", "raw": "raw fanotify + SEQPACKET forwarder "
         "(floor)", "first": "scanner, first open", "cached":
         "scanner, cached clean open"},
        floor="raw", none="none", source="scanner_bench (bench/run-scanner)")
    out["tables"].append(t)
    src = "scanner issue"
    out["goals"] += [
        goal("scanner: cached clean open ≤ 1.30× no listener", src,
             row(t, "cached")["ratio_none"], "<=", 1.30,
             "median of the per-repetition ratios"),
        goal("scanner: first open ≤ 1.15× raw SEQPACKET forwarder", src,
             row(t, "first")["ratio_floor"], "<=", 1.15,
             "median of the per-repetition ratios"),
    ]


def workload(d, out):
    cfg, wl = d["config"], d["workloads"]
    ran = [k for k, v in d["listeners"].items() if v["ran"]]
    skipped = {k: v["why"] for k, v in d["listeners"].items() if not v["ran"]}
    titles = {"walk_cold": "Tree walk, first pass (grep -r)",
              "walk_warm": "Tree walk, second pass (grep -r)",
              "exec": "Exec loop", "churn": "File churn (cost to the program)"}
    errors = {}
    for rep in d["per_rep"]:
        for k, r in rep.items():
            if not r.get("ok"):
                errors.setdefault(k, []).append(r.get("error", "?"))
    for w in ("walk_cold", "walk_warm", "exec", "churn"):
        n = wl[w]["count"]
        vals = {k: [rep[k].get(w + "_ns") / n / 1e3
                    if k in rep and rep[k].get(w + "_ns") is not None else None
                    for rep in d["per_rep"]] for k in ran}
        what = wl[w]["what"]
        if w.startswith("walk"):
            what += " (%d files, %.1f MB: %s)" % (cfg["files"],
                                                  cfg["bytes"] / 1e6,
                                                  cfg["tree"])
        else:
            what += " (%d per run)" % n
        notes = ["%s: failed in %d of %d reps (%s)" % (k, len(e), cfg["reps"],
                                                       e[0][:160])
                 for k, e in errors.items()]
        out["tables"].append(make_table(
            "work_" + w, titles[w], what, "µs per " + wl[w]["per"], vals,
            LISTENER_LABELS, floor="raw" if "raw" in ran else None,
            none="none" if "none" in ran else None,
            source="workload_bench.py", notes=notes))
    # The same workloads again with program and listener pinned: on one
    # CPU, then on two (runs without the pinned passes have no such keys).
    where = {"same": "program and every listener thread on CPU %s",
             "cross": "program on CPU %s, every listener thread on CPU %s"}
    cpus = cfg.get("cpus", {})
    for pl in cfg.get("placements", ["any"])[1:]:
        for w in ("walk_warm", "exec", "churn"):
            key, n = "%s@%s_ns" % (w, pl), wl[w]["count"]
            vals = {k: [rep[k].get(key) / n / 1e3
                        if k in rep and rep[k].get(key) is not None else None
                        for rep in d["per_rep"]] for k in ran}
            cpu_text = (where[pl] % (cpus.get("program"),) if pl == "same" else
                        where[pl] % (cpus.get("program"), cpus.get("cross")))
            out["tables"].append(make_table(
                "work_%s_%s" % (w, pl),
                "%s, %s CPU" % (titles[w], "one" if pl == "same" else "two"),
                "%s, pinned: %s" % (wl[w]["what"], cpu_text),
                "µs per " + wl[w]["per"], vals, LISTENER_LABELS,
                floor="raw" if "raw" in ran else None,
                none="none" if "none" in ran else None,
                source="workload_bench.py --placements"))
    # Memory: per process of each listener.
    mem = {}
    for rep in d["per_rep"]:
        for k, r in rep.items():
            for proc, m in (r.get("memory") or {}).items():
                if m:
                    e = mem.setdefault((k, proc), {"idle": [], "after": [],
                                                   "peak": []})
                    e["idle"].append(m["idle_rss_kb"])
                    e["after"].append(m["after_rss_kb"])
                    e["peak"].append(m["peak_kb"])
    out["memory"] = {
        "what": "resident memory (VmRSS) of each listener's processes, "
                "median over the reps: once ready (idle), after the walks, "
                "the exec loop and the churn, and the peak (VmHWM) over its "
                "life",
        "rows": [{"listener": k, "label": LISTENER_LABELS.get(k, k),
                  "process": proc,
                  "idle_kb": median(e["idle"]), "after_kb": median(e["after"]),
                  "peak_kb": median(e["peak"]), "n": len(e["idle"])}
                 for (k, proc), e in mem.items()],
    }
    for k in ran:
        out["peers"].append({"name": k, "label": LISTENER_LABELS.get(k, k),
                             "ran": k not in errors or
                             len(errors[k]) < cfg["reps"],
                             "why": "; ".join(sorted(set(errors.get(k, []))))
                             or None})
    for k, why in skipped.items():
        out["peers"].append({"name": k, "label": LISTENER_LABELS.get(k, k),
                             "ran": False, "why": why})


def aggregate(results):
    out = {"machine": load(results, "machine.json") or {}, "tables": [],
           "goals": [], "memory": None, "peers": [], "missing": []}
    for name, fn in (("ports.json", ports), ("engine.json", engine),
                     ("scanner.json", scanner), ("workload.json", workload),
                     ("minispy.json", minispy)):
        d = load(results, name)
        if d is None:
            out["missing"].append(name)
        else:
            fn(d, out)
    return out
