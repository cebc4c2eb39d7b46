# SPDX-License-Identifier: MIT
"""charts.py — the key comparisons of the aggregated report drawn as PNG
bar charts with gnuplot (Debian package gnuplot-nox, pngcairo terminal):
bars are medians of the per-repetition ratios, whiskers their min - max.
Writes bench/results/perf/*.png; returns (file name, caption) pairs for the
Markdown. Without gnuplot it draws nothing and says so."""
import os
import shutil
import subprocess
import tempfile


def _q(s):
    return '"%s"' % s.replace('"', "'")


def bar_chart(path, title, ylabel, categories, series, log=False, hline=None):
    """categories: x labels; series: [(name, [(median, min, max) or None
    per category])]. Writes the PNG at path."""
    with tempfile.TemporaryDirectory() as tmp:
        dat = os.path.join(tmp, "data")
        with open(dat, "w") as f:
            for i, cat in enumerate(categories):
                cells = [_q(cat)]
                for _, vals in series:
                    v = vals[i]
                    cells += (["%.6g" % x for x in v] if v and None not in v
                              else ["?", "?", "?"])
                f.write(" ".join(cells) + "\n")
        plots = []
        for k, (name, _) in enumerate(series):
            c = 2 + 3 * k
            plots.append("%s using %d:%d:%d%s title %s" % (
                _q(dat) if k == 0 else "''", c, c + 1, c + 2,
                ":xtic(1)" if k == 0 else "", _q(name)))
        width = max(640, 110 * len(categories) * max(1, len(series)) // 2 + 200)
        gp = [
            "set terminal pngcairo size %d,420 font 'sans,9'" % min(width, 1400),
            "set output %s" % _q(path),
            "set title %s" % _q(title),
            "set ylabel %s" % _q(ylabel),
            "set datafile missing '?'",
            "set style data histogram",
            "set style histogram errorbars gap 1 lw 1",
            "set style fill solid 0.6 border -1",
            "set boxwidth 0.9",
            "set xtics rotate by -25 scale 0",
            "set key top left",
            "set grid ytics",
            "set yrange [%s:*]" % ("*" if log else "0"),
        ]
        if log:
            gp.append("set logscale y")
        if hline is not None:
            gp.append("set arrow from graph 0, first %g to graph 1, first %g "
                      "nohead dt 2 lw 1.5 lc rgb 'black'" % (hline, hline))
        gp.append("plot " + ", ".join(plots))
        script = os.path.join(tmp, "chart.gp")
        with open(script, "w") as f:
            f.write("\n".join(gp) + "\n")
        r = subprocess.run(["gnuplot", script], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("gnuplot: %s" % r.stderr.strip()[-400:])


def _ratio(row, which):
    r = row.get(which) if row else None
    return (r["median"], r["min"], r["max"]) if r else None


def draw(agg, outdir, rel):
    """Draws what the aggregate has; rel is outdir as the Markdown links it."""
    if not shutil.which("gnuplot"):
        return [], "gnuplot is not installed (scripts/deps.sh bench): no charts"
    os.makedirs(outdir, exist_ok=True)
    byid = {t["id"]: t for t in agg["tables"]}
    rows = {tid: {r["key"]: r for r in t["rows"]} for tid, t in byid.items()}
    charts = []

    def emit(name, caption, *args, **kw):
        bar_chart(os.path.join(outdir, name), caption, *args, **kw)
        charts.append((os.path.join(rel, name), caption))

    # 1. Opens: fltmgr against its floors.
    cats, vals = [], []
    e, s = rows.get("open_loop", {}), rows.get("scanner_open", {})
    for key, label, which in (("c", "1 filter / raw", "ratio_floor"),
                              ("d", "3 filters / raw", "ratio_floor"),
                              ("e", "cached / none", "ratio_none")):
        if key in e:
            cats.append(label)
            vals.append(_ratio(e[key], which))
    for key, label, which in (("first", "scanner first / raw fwd", "ratio_floor"),
                              ("cached", "scanner cached / none", "ratio_none")):
        if key in s:
            cats.append(label)
            vals.append(_ratio(s[key], which))
    if cats:
        emit("opens.png", "Open+close: fltmgr over its floor (1 = as cheap)",
             "ratio (lower is better)", cats, [("median [min-max]", vals)],
             hline=1.0)

    # 2. Real programs under each listener, over no listener.
    work = [("work_walk_cold", "walk, 1st"), ("work_walk_warm", "walk, 2nd"),
            ("work_exec", "exec loop"), ("work_churn", "churn")]
    listeners = []
    for tid, _ in work:
        for r in byid.get(tid, {"rows": []})["rows"]:
            if r["key"] != "none" and r["key"] not in listeners:
                listeners.append(r["key"])
    if listeners:
        labels = {}
        for tid, _ in work:
            for r in byid.get(tid, {"rows": []})["rows"]:
                labels[r["key"]] = r["key"]
        series = [(wlabel, [_ratio(rows.get(tid, {}).get(k), "ratio_none")
                            for k in listeners]) for tid, wlabel in work]
        emit("workloads.png", "Real programs under each listener: time over "
             "no listener", "ratio (log scale, lower is better)",
             [labels[k] for k in listeners], series, log=True, hline=1.0)

    # 3. Activity monitors against fatrace.
    ev, cf = rows.get("minispy_events", {}), rows.get("minispy_cpu_flat_out", {})
    tools = [k for k in ("minispy", "minispy-noproc", "inotifywait")
             if k in ev or k in cf]
    if tools:
        emit("monitors.png", "Activity monitors over fatrace (flat-out churn)",
             "ratio to fatrace", tools,
             [("events/s (higher is better)",
               [_ratio(ev.get(k), "ratio_floor") for k in tools]),
              ("CPU per event (lower is better)",
               [_ratio(cf.get(k), "ratio_floor") for k in tools])],
             log=True, hline=1.0)

    # 4. Ports against raw SEQPACKET.
    cats, vals = [], []
    for tid, label in (("port_rtt", "round trip p50"),
                       ("port_rtt_p99", "round trip p99"),
                       ("port_tput", "notifications/s")):
        r = rows.get(tid, {}).get("fltmgr")
        if r:
            cats.append(label)
            vals.append(_ratio(r, "ratio_floor"))
    if cats:
        emit("ports.png", "Communication port over raw SOCK_SEQPACKET",
             "fltmgr / raw", cats, [("median [min-max]", vals)], hline=1.0)

    # 5. Memory per listener (processes summed).
    mem = agg.get("memory") or {"rows": []}
    per = {}
    for r in mem["rows"]:
        e = per.setdefault(r["listener"], [0, 0])
        e[0] += r["idle_kb"] / 1024
        e[1] += r["peak_kb"] / 1024
    if per:
        names = list(per)
        emit("memory.png", "Resident memory per listener (all its processes)",
             "MiB", names,
             [("idle", [(per[k][0],) * 3 for k in names]),
              ("peak", [(per[k][1],) * 3 for k in names])])
    return charts, None
