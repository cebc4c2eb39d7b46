#!/usr/bin/env python3
"""perm-cpu.py — the permission path per event: listener CPU, grep -r walk,
syscalls and user-space instructions, raw responder vs fltmgr (root only).

usage: bench/perm-cpu.py BUILD REPS MODES [--strace] [--callgrind]

MODES is a comma-separated list of listen_host modes (raw, flt1, flt3,
cached, lean) and "none"; a mode written old-MODE runs the listen_host
named by $OLD_LISTEN_HOST (another build, for before/after). In a private
mount namespace it copies /usr/include onto a tmpfs, then for each of REPS
repetitions runs every mode in an order that rotates by one each time:
start the listener, wait for "ready", time two `grep -r` walks of the tree
and read the listener's CPU time (the sum of /proc/PID/task/*/schedstat)
around each; the events come from listen_host's counters. Ratios to raw
are taken within each repetition, then summarised as median [min - max].
--strace: strace -f -c of each listener over one walk (syscalls per
event). --callgrind: each listener under callgrind for one walk and for
three; the difference over the difference in events is Ir per event.
"""
import os, subprocess, sys, time, tempfile, statistics, json, shutil, glob, signal

if os.environ.get("PP_NS") != "1":
    os.environ["PP_NS"] = "1"
    os.execvp("unshare", ["unshare", "--mount", "--propagation", "private",
                          sys.executable] + sys.argv)

build, reps, modes = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
do_strace = "--strace" in sys.argv
do_cg = "--callgrind" in sys.argv
extra_env = {}
for a in sys.argv:
    if a.startswith("--env="):
        k, v = a[6:].split("=", 1)
        extra_env[k] = v
host = os.path.join(build, "bench/listen_host")
top = tempfile.mkdtemp(prefix="pp-")
watch, out = top + "/watch", top + "/out"
os.makedirs(watch); os.makedirs(out)
subprocess.check_call(["mount", "-t", "tmpfs", "tmpfs", watch])
subprocess.check_call(["mount", "-t", "tmpfs", "tmpfs", out])
subprocess.check_call(["cp", "-r", "/usr/include", watch + "/tree"])
nfiles = int(subprocess.check_output(f"find {watch}/tree -type f | wc -l", shell=True))
print(f"tree: {nfiles} files", flush=True)

def cpu_ns(pid):
    t = 0
    for f in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            t += int(open(f).read().split()[0])
        except OSError:
            pass
    return t

def walk():
    t0 = time.monotonic_ns()
    r = subprocess.run(["grep", "-r", "-q", "-F", "zq9xnotfoundanywhere", watch + "/tree"])
    assert r.returncode == 1, r.returncode
    return time.monotonic_ns() - t0

sess = 0
def session(mode, walks=2, wrap=None):
    global sess
    sess += 1
    if mode == "none":
        return {"walk": [walk() for _ in range(walks)], "cpu": [0]*walks, "events": 0}
    rd = f"{out}/run{sess}"
    os.makedirs(rd)
    h = host
    mm = mode
    if mode.startswith("old-"):
        h = os.environ["OLD_LISTEN_HOST"]; mm = mode[4:]
    cmd = [h, mm, watch] + ([rd] if mm != "raw" else [])
    if wrap:
        cmd = wrap + cmd
    env = dict(os.environ, **extra_env)
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    line = p.stdout.readline()
    assert line.strip() == "ready", line
    time.sleep(0.3)
    res = {"walk": [], "cpu": []}
    for _ in range(walks):
        c0 = cpu_ns(p.pid); w = walk(); c1 = cpu_ns(p.pid)
        res["walk"].append(w); res["cpu"].append(c1 - c0)
    p.stdin.close()
    j = json.loads(p.stdout.readline())
    p.wait()
    res["events"] = j["events"]
    return res

try:
    if do_strace:
        for mode in modes:
            if mode == "none": continue
            rd = f"{out}/st{mode}"; os.makedirs(rd)
            cmd = [host, mode, watch] + ([rd] if mode != "raw" else [])
            p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 env=dict(os.environ, **extra_env))
            assert p.stdout.readline().strip() == "ready"
            time.sleep(0.3)
            so = f"{out}/strace-{mode}.txt"
            st = subprocess.Popen(["strace", "-f", "-c", "-o", so, "-p", str(p.pid)])
            time.sleep(1.0)
            walk()
            time.sleep(0.3)
            st.send_signal(signal.SIGINT); st.wait()
            p.stdin.close(); j = json.loads(p.stdout.readline()); p.wait()
            print(f"== strace {mode}: listener events={j['events']} (files {nfiles})")
            print(open(so).read())
    if do_cg:
        for mode in modes:
            if mode == "none": continue
            irs = {}
            for walks in (1, 3):
                cgo = f"{out}/cg-{mode}-{walks}.out"
                r = session(mode, walks, ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + cgo])
                ir = 0
                for l in open(cgo):
                    if l.startswith("summary:") or l.startswith("totals:"):
                        ir = int(l.split()[1])
                irs[walks] = (ir, r["events"])
            d_ir = irs[3][0] - irs[1][0]; d_ev = irs[3][1] - irs[1][1]
            print(f"== callgrind {mode}: {d_ir} Ir over {d_ev} events = {d_ir/max(d_ev,1):.0f} Ir/event")
    if reps:
        rows = []
        for rep in range(reps):
            order = modes[rep % len(modes):] + modes[:rep % len(modes)]
            row = {}
            for m in order:
                row[m] = session(m)
            rows.append(row)
            ev = {m: row[m]["events"] / 2 for m in modes}
            print(f"rep {rep}: " + "  ".join(
                f"{m}: walk1 {row[m]['walk'][0]/1e6:.1f}ms walk2 {row[m]['walk'][1]/1e6:.1f}ms "
                f"cpu/ev {(row[m]['cpu'][0]/ev[m]/1e3 if ev[m] else 0):.2f}us ev {ev[m]:.0f}"
                for m in order), flush=True)
        def summ(vals):
            return f"{statistics.median(vals):.2f} [{min(vals):.2f} - {max(vals):.2f}]"
        base = "raw"
        for m in modes:
            if m in ("none", base): continue
            cpu_r = [(r[m]["cpu"][0] / r[m]["events"]) / (r[base]["cpu"][0] / r[base]["events"]) for r in rows]
            cpu_r_all = [(sum(r[m]["cpu"]) / r[m]["events"]) / (sum(r[base]["cpu"]) / r[base]["events"]) for r in rows]
            w1 = [r[m]["walk"][0] / r[base]["walk"][0] for r in rows]
            print(f"{m}/raw: listener CPU/event (walk1) {summ(cpu_r)}; both walks {summ(cpu_r_all)}; grep -r first walk {summ(w1)}  (N={reps})")
        for m in modes:
            if m == "none": continue
            print(f"{m}: cpu/event us walk1 median {statistics.median([r[m]['cpu'][0]/(r[m]['events']/2)/1e3 for r in rows]):.2f}; walk1 ms median {statistics.median([r[m]['walk'][0]/1e6 for r in rows]):.1f}")
finally:
    subprocess.call(["umount", "-l", watch]); subprocess.call(["umount", "-l", out])
    shutil.rmtree(top, ignore_errors=True)
