#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""workload_bench.py — real programs under each file-access listener.

What a listener costs the programs that use files, measured with real
programs on a tmpfs this benchmark mounts in its own private mount
namespace (nothing else on the machine is watched or made to wait):

  walk_cold  grep -r for a string that is nowhere in a source tree: every
             file opened and read once, the first walk after the listener
             started (nothing cached yet)
  walk_warm  the same walk again (a verdict cache, if any, is now filled)
  exec       a shell loop that runs a copy of true(1) that lives on the tmpfs
  churn      a Python loop: create, write 1 byte, close, rename, unlink

Placement: first as the scheduler places things ("any"); then, in the
same session, with the program and every thread of the listener pinned
to one CPU ("same": each wake-up is a context switch on that CPU) and to
two different CPUs ("cross": each wake-up crosses CPUs). The pinned
passes run walk_warm, exec and churn (walk_cold is the first pass only).

The listeners, started fresh for each repetition in an order that rotates
from one repetition to the next: none; raw, the floor (a raw fanotify
FAN_OPEN_PERM|FAN_OPEN_EXEC_PERM responder); fltmgr with 1 and 3
pass-through filters and with a cached verdict (bench/listen_host); the
products: fltmgrd + minispy, fltmgrd + scanner (a one-rule YARA set); and
the peers from Debian: fatrace, inotifywait, clamd + clamonacc (a
one-signature database) and fapolicyd (permissive, the sample rules).
A peer that is not installed or cannot run is reported with the reason.

For each listener it also records the resident memory (VmRSS) of its
processes once ready (idle), after the workloads, and their peak (VmHWM).

Writes one JSON file (--json) with every repetition's values; the medians
and the ratios (computed within each repetition) are bench/report's job.
Root only. Run it through bench/run.
"""
import argparse
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

LISTENERS = ["none", "raw", "flt1", "flt3", "cached", "minispy", "scanner",
             "fatrace", "inotifywait", "clamonacc", "fapolicyd"]
WORKLOADS = ["walk_cold", "walk_warm", "exec", "churn"]
PLACEMENTS = ["any", "same", "cross"]
PINNED_WORKLOADS = ["walk_warm", "exec", "churn"]  # after the first pass
NEEDLE = "zz-no-such-text-in-any-header-zz"
# Both the scanner's YARA rule and clamd's signature match this marker; a
# probe file holding it is denied once the listener is really answering.
MARKER = "X5O-FLTMGR-PROBE"
MARKER_HEX = MARKER.encode().hex()

CHURN = r"""
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter_ns()
for i in range(n):
    a = os.path.join(d, "f%d" % i)
    fd = os.open(a, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, b"x")
    os.close(fd)
    os.rename(a, a + ".r")
    os.unlink(a + ".r")
print(time.perf_counter_ns() - t0)
"""

_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when this benchmark dies."""
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def wait_until(pred, timeout_s, step_s=0.01):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step_s)
    return pred()


def proc_status(pid):
    """VmRSS and VmHWM of a process in kB, or None once it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return {"rss_kb": int(fields["VmRSS"].split()[0]),
                "hwm_kb": int(fields["VmHWM"].split()[0])}
    except (OSError, KeyError, ValueError):
        return None


def text_of(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return None


def probe_denied(path):
    """True once opening the marker file fails with EPERM."""
    try:
        os.close(os.open(path, os.O_RDONLY))
        return False
    except PermissionError:
        return True
    except OSError:
        return False


class Bench:
    def __init__(self, args):
        self.a = args
        self.build = os.path.abspath(args.build)
        self.n_session = 0
        self.prog_cpus = None  # the workload's CPUs; None: unpinned
        allowed = sorted(os.sched_getaffinity(0))
        self.all_cpus = set(allowed)
        self.cpu_a, self.cpu_b = allowed[0], allowed[-1]

    def placement_usable(self, p):
        """None if placement p can be measured here, else why not."""
        if p == "cross" and self.cpu_a == self.cpu_b:
            return "one CPU only"
        return None

    def place(self, p):
        """Pins every thread of the listener's processes and the workloads
        for placement p ("any" undoes the pinning)."""
        lcpus = {"any": self.all_cpus, "same": {self.cpu_a},
                 "cross": {self.cpu_b}}[p]
        self.prog_cpus = None if p == "any" else {self.cpu_a}
        for _, proc in self.procs:
            try:
                tids = os.listdir("/proc/%d/task" % proc.pid)
            except OSError:
                continue
            for t in tids:
                try:
                    os.sched_setaffinity(int(t), lcpus)
                except OSError:
                    pass  # a thread that just exited

    # ---- the scratch file systems ----

    def setup(self):
        self.root = tempfile.mkdtemp(prefix="fltmgr-workbench.", dir="/tmp")
        os.chmod(self.root, 0o755)
        self.watch = os.path.join(self.root, "watch")
        self.out = os.path.join(self.root, "out")
        for d in (self.watch, self.out):
            os.mkdir(d)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755",
                            "fltmgr-workbench", d], check=True)
        self.tree = os.path.join(self.watch, "tree")
        self.files, self.bytes = self.make_tree()
        bindir = os.path.join(self.watch, "bin")
        os.mkdir(bindir)
        self.true = os.path.join(bindir, "true")
        shutil.copy2(shutil.which("true") or "/bin/true", self.true)
        os.chmod(self.true, 0o755)
        self.probe_dir = os.path.join(self.watch, "probe")
        os.mkdir(self.probe_dir)
        self.probe = os.path.join(self.probe_dir, "marker")
        with open(self.probe, "w") as f:
            f.write("probe: %s\n" % MARKER)
        self.filters = os.path.join(self.out, "filters")
        os.mkdir(self.filters)
        for so in ("minispy.so", "scanner.so"):
            dst = os.path.join(self.filters, so)
            shutil.copy(os.path.join(self.build, "filters", so), dst)
            os.chmod(dst, 0o644)
        self.rules = os.path.join(self.out, "rules.yar")
        with open(self.rules, "w") as f:
            f.write('rule fltmgr_probe { strings: $a = "%s" condition: $a }\n'
                    % MARKER)

    def tree_sources(self):
        """The headers of libc6-dev and linux-libc-dev (on every Debian
        machine that builds C), or --tree DIR."""
        if self.a.tree:
            src = os.path.abspath(self.a.tree)
            for d, _, names in os.walk(src):
                for n in sorted(names):
                    yield src, os.path.join(d, n)
            return
        for pkg in ("libc6-dev", "linux-libc-dev"):
            r = subprocess.run(["dpkg", "-L", pkg], capture_output=True,
                               text=True)
            for p in r.stdout.splitlines():
                if p.startswith("/usr/include/"):
                    yield "/usr/include", p

    def make_tree(self):
        srcs = [(base, p) for base, p in self.tree_sources()
                if os.path.isfile(p) and not os.path.islink(p)]
        if not srcs:
            raise SystemExit("workload_bench: no tree to walk (dpkg -L "
                             "libc6-dev found nothing; try --tree DIR)")
        files = size = 0
        for c in range(self.a.copies):
            for base, p in srcs:
                dst = os.path.join(self.tree, "copy%d" % c,
                                   os.path.relpath(p, base))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(p, dst)
                files += 1
                size += os.path.getsize(dst)
        return files, size

    def teardown(self):
        for d in (self.watch, self.out):
            subprocess.run(["umount", "-l", d], check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- the workloads ----

    def timed(self, argv):
        cpus = self.prog_cpus

        def pin():
            if cpus:
                os.sched_setaffinity(0, cpus)
        t0 = time.perf_counter_ns()
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=self.a.timeout, preexec_fn=pin)
        return time.perf_counter_ns() - t0, r

    def run_workload(self, w, session_dir):
        if w in ("walk_cold", "walk_warm"):
            ns, r = self.timed(["grep", "-r", "-q", "-F", NEEDLE, self.tree])
            if r.returncode != 1:  # 1: read everything, found nothing
                raise RuntimeError("grep exit %d: %s" % (
                    r.returncode, r.stderr.decode(errors="replace")[:200]))
            return ns
        if w == "exec":
            ns, r = self.timed(["sh", "-c",
                                'i=0; while [ $i -lt "$1" ]; do "$0" || exit 1; '
                                'i=$((i+1)); done', self.true, str(self.a.execs)])
            if r.returncode != 0:
                raise RuntimeError("exec loop failed: %s" %
                                   r.stderr.decode(errors="replace")[:200])
            return ns
        if w == "churn":
            d = os.path.join(session_dir, "churn")
            _, r = self.timed([sys.executable, "-c", CHURN, d,
                               str(self.a.churn)])
            if r.returncode != 0:
                raise RuntimeError("churn failed: %s" %
                                   r.stderr.decode(errors="replace")[:200])
            return int(r.stdout.split()[0])  # the loop only, not Python's start
        raise ValueError(w)

    # ---- the listeners ----

    def spawn(self, name, argv, log_path, **kw):
        lf = open(log_path, "ab")
        p = subprocess.Popen(argv, stdin=kw.pop("stdin", subprocess.DEVNULL),
                             stdout=kw.pop("stdout", lf), stderr=lf,
                             preexec_fn=die_with_parent, **kw)
        lf.close()
        self.procs.append((name, p))
        return p

    def available(self, name):
        """None if the listener can run here, else why not."""
        need = {"raw": [os.path.join(self.build, "bench/listen_host")],
                "minispy": [os.path.join(self.build, "src/daemon/fltmgrd"),
                            os.path.join(self.build,
                                         "filters/minispy/service/minispy")],
                "scanner": [os.path.join(self.build, "src/daemon/fltmgrd"),
                            os.path.join(self.build,
                                         "filters/scanner/service/scanner")],
                "fatrace": ["fatrace"], "inotifywait": ["inotifywait"],
                "clamonacc": ["clamd", "clamonacc"],
                "fapolicyd": ["fapolicyd", "fagenrules", "fapolicyd-cli"]}
        for k in ("flt1", "flt3", "cached"):
            need[k] = need["raw"]
        pkg = {"fatrace": "fatrace", "inotifywait": "inotify-tools",
               "clamonacc": "clamav-daemon", "fapolicyd": "fapolicyd"}
        for exe in need.get(name, []):
            if not (os.access(exe, os.X_OK) if os.path.isabs(exe)
                    else shutil.which(exe)):
                if name in pkg:
                    return "not installed (Debian package %s)" % pkg[name]
                return "%s not built" % exe
        if name == "clamonacc":
            try:
                import pwd
                pwd.getpwnam("clamav")
            except KeyError:
                return "no clamav user (clamd must not run as the opener's user)"
        return None

    def start(self, name, sd):
        """Starts listener `name` with session directory sd (on out)."""
        logp = os.path.join(sd, "log")
        if name == "none":
            return
        if name in ("raw", "flt1", "flt3", "cached"):
            run = os.path.join(sd, "run")
            os.mkdir(run)
            p = self.spawn(name, [os.path.join(self.build, "bench/listen_host"),
                                  name, self.watch, run], logp,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            line = p.stdout.readline().decode().strip()
            if line != "ready":
                raise RuntimeError("listen_host: %s" % text_of(logp)[-300:])
            self.host = p
            return
        if name in ("minispy", "scanner"):
            run = os.path.join(sd, "run")
            daemon = os.path.join(self.build, "src/daemon/fltmgrd")
            if name == "minispy":
                argv = [daemon, "-f", "--runtime-dir", run, "--filter-dir",
                        self.filters, "--attach", self.watch]
            else:
                conf = os.path.join(sd, "fltmgr.conf")
                with open(conf, "w") as f:
                    f.write("[fltmgrd]\nfilter_dir = %s\n[filter scanner]\n"
                            "altitude = 325000\ndeadline_ms = 5000\n"
                            "attach = %s\n" % (self.filters, self.watch))
                argv = [daemon, "-f", "--runtime-dir", run, "--config", conf]
            self.spawn("fltmgrd", argv, logp)
            if not wait_until(lambda: os.path.exists(os.path.join(run, "control")),
                              15):
                raise RuntimeError("fltmgrd did not start: %s" %
                                   text_of(logp)[-300:])
            slog = os.path.join(sd, "service.log")
            if name == "minispy":
                self.output = os.path.join(sd, "minispy.json")
                sargv = [os.path.join(self.build, "filters/minispy/service/minispy"),
                         "--json", "--output", self.output, "--runtime-dir", run,
                         "--no-reconnect"]
            else:
                sargv = [os.path.join(self.build, "filters/scanner/service/scanner"),
                         "--rules", self.rules, "--runtime-dir", run]
            self.spawn(name, sargv, slog)
            if not wait_until(lambda: "connected to" in text_of(slog), 15):
                raise RuntimeError("%s service did not connect: %s" %
                                   (name, text_of(slog)[-300:]))
            if name == "scanner" and not wait_until(
                    lambda: probe_denied(self.probe), 15):
                raise RuntimeError("scanner: the probe was never denied")
            return
        if name == "fatrace":
            self.output = os.path.join(sd, "fatrace.txt")
            self.spawn(name, ["fatrace", "-c", "-o", self.output], logp,
                       cwd=self.watch)
            if not wait_until(lambda: os.path.exists(self.output), 15):
                raise RuntimeError("fatrace did not start: %s" % text_of(logp))
            return
        if name == "inotifywait":
            self.output = os.path.join(sd, "inotify.txt")
            self.spawn(name, ["inotifywait", "-m", "-r", "-o", self.output,
                              self.watch], logp)
            if not wait_until(lambda: "Watches established" in text_of(logp), 30):
                raise RuntimeError("inotifywait did not start: %s" %
                                   text_of(logp))
            return
        if name == "clamonacc":
            return self.start_clamonacc(sd, logp)
        if name == "fapolicyd":
            return self.start_fapolicyd(sd, logp)
        raise ValueError(name)

    def start_clamonacc(self, sd, logp):
        # clamd runs as clamav and clamonacc excludes that user (it refuses
        # to start otherwise), so this root opener's files are scanned.
        db, run = os.path.join(sd, "db"), os.path.join(sd, "crun")
        os.mkdir(db)
        os.mkdir(run)
        shutil.chown(run, "clamav")
        with open(os.path.join(db, "local.ndb"), "w") as f:
            f.write("fltmgr_probe:0:*:%s\n" % MARKER_HEX)
        conf = os.path.join(sd, "clamd.conf")
        sock = os.path.join(run, "clamd.sock")
        with open(conf, "w") as f:
            f.write("LocalSocket %s\nDatabaseDirectory %s\nForeground yes\n"
                    "User clamav\nOnAccessIncludePath %s\n"
                    "OnAccessPrevention yes\nOnAccessExcludeUname clamav\n"
                    % (sock, db, self.watch))
        self.spawn("clamd", ["clamd", "-c", conf], logp)
        if not wait_until(lambda: os.path.exists(sock), 60, 0.05):
            raise RuntimeError("clamd did not start: %s" % text_of(logp)[-300:])
        self.spawn("clamonacc", ["clamonacc", "-c", conf, "--foreground",
                                 "--fdpass"], os.path.join(sd, "onacc.log"))
        if not wait_until(lambda: probe_denied(self.probe), 30, 0.05):
            raise RuntimeError("clamonacc never denied the probe: %s" %
                               text_of(os.path.join(sd, "onacc.log"))[-300:])

    def start_fapolicyd(self, sd, logp):
        # fapolicyd's paths are fixed (/etc/fapolicyd, /var/lib/fapolicyd,
        # /run/fapolicyd): bind-mount private ones over them, in this
        # benchmark's own mount namespace only. It marks every mount of the
        # types in watch_fs, so watch_fs = tmpfs: its marks land on this
        # namespace's copies of the tmpfs mounts, nothing else.
        etc, lib, run = (os.path.join(sd, x) for x in ("etc", "lib", "frun"))
        for d in (etc, lib, run, os.path.join(etc, "rules.d"),
                  os.path.join(etc, "trust.d")):
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(etc, "fapolicyd.conf"), "w") as f:
            # uid/gid root: in this container fapolicyd cannot switch to
            # its own user ("Cannot change to uid"); permissive: decide and
            # count, never deny this benchmark's own processes.
            f.write("permissive = 1\nnice_val = 0\nq_size = 640\nuid = root\n"
                    "gid = root\ndo_stat_report = 1\ndetailed_report = 1\n"
                    "db_max_size = 50\nsubj_cache_size = 1549\n"
                    "obj_cache_size = 8191\nwatch_fs = tmpfs\ntrust = file\n"
                    "integrity = none\nsyslog_format = rule,dec,perm,auid,pid,"
                    "exe,:,path,ftype,trust\nrpm_sha256_only = 0\n"
                    "allow_filesystem_mark = 0\n")
        open(os.path.join(etc, "fapolicyd.trust"), "w").close()
        # The sample policy "known-libs" (README-rules of the package).
        sample = "/usr/share/fapolicyd/sample-rules"
        for r in ("10-languages", "20-dracut", "21-updaters", "30-patterns",
                  "40-bad-elf", "41-shared-obj", "42-trusted-elf",
                  "70-trusted-lang", "72-shell", "90-deny-execute",
                  "95-allow-open"):
            shutil.copy(os.path.join(sample, r + ".rules"),
                        os.path.join(etc, "rules.d"))
        for src, dst in ((etc, "/etc/fapolicyd"), (lib, "/var/lib/fapolicyd"),
                         (run, "/run/fapolicyd")):
            os.makedirs(dst, exist_ok=True)
            subprocess.run(["mount", "--bind", src, dst], check=True)
            self.binds.append(dst)
        for argv in (["fagenrules", "--load"],
                     ["fapolicyd-cli", "--file", "add", self.true]):
            r = subprocess.run(argv, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr[-300:]))
        # --debug-deny keeps it in the foreground and logs its start-up,
        # but (permissive, and the workloads match allow rules) not every
        # decision.
        self.spawn("fapolicyd", ["fapolicyd", "--debug-deny"], logp)
        if not wait_until(lambda: "Starting to listen for events" in text_of(logp),
                          60, 0.05):
            raise RuntimeError("fapolicyd did not start: %s" %
                               text_of(logp)[-300:])

    def stop(self, name):
        """Stops every process of the session; returns what it reported."""
        info = {}
        if self.host is not None:
            self.host.stdin.close()
            out = self.host.stdout.read().decode()
            self.host.wait(timeout=30)
            try:
                info = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                info = {"error": "no counters from listen_host"}
        sig = {"fatrace": signal.SIGINT}
        for pname, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(sig.get(pname, signal.SIGTERM))
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for d in reversed(self.binds):
            subprocess.run(["umount", "-l", d], check=False)
        if self.output:
            info["output_lines"] = count_lines(self.output)
        return info

    def session(self, name):
        """One listener: start, idle memory, the workloads, memory, stop."""
        self.n_session += 1
        sd = os.path.join(self.out, "s%03d-%s" % (self.n_session, name))
        os.mkdir(sd)
        wd = os.path.join(self.watch, "s%03d" % self.n_session)
        os.mkdir(wd)
        os.mkdir(os.path.join(wd, "churn"))
        self.procs, self.binds, self.host, self.output = [], [], None, None
        res = {"ok": False}
        try:
            self.start(name, sd)
            time.sleep(self.a.settle)
            mem = {pn: proc_status(p.pid) for pn, p in self.procs}
            for w in WORKLOADS:
                res[w + "_ns"] = self.run_workload(w, wd)
            for pl in self.placements[1:]:
                self.place(pl)
                for w in PINNED_WORKLOADS:
                    res["%s@%s_ns" % (w, pl)] = self.run_workload(w, wd)
            self.place("any")
            for pn, p in self.procs:
                st = proc_status(p.pid)
                if mem.get(pn) and st:
                    mem[pn] = {"idle_rss_kb": mem[pn]["rss_kb"],
                               "after_rss_kb": st["rss_kb"],
                               "peak_kb": st["hwm_kb"]}
                else:
                    mem[pn] = None
            res["memory"] = mem
            res["ok"] = True
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            res["error"] = str(e)
            log("workload_bench: %s: %s" % (name, e))
        finally:
            self.prog_cpus = None
            res["counters"] = self.stop(name)
            shutil.rmtree(wd, ignore_errors=True)
        return res


def in_private_namespace(argv):
    """Re-runs this program in its own mount namespace, / made private."""
    if os.environ.get("WORKLOAD_BENCH_NS") == "1":
        return
    env = dict(os.environ, WORKLOAD_BENCH_NS="1")
    os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private",
                           sys.executable, os.path.abspath(__file__)] + argv,
               env)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", required=True, help="the release build tree")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--copies", type=int, default=3,
                    help="copies of the header tree to walk (default 3)")
    ap.add_argument("--tree", help="walk a copy of this directory instead")
    ap.add_argument("--execs", type=int, default=1000)
    ap.add_argument("--churn", type=int, default=5000)
    ap.add_argument("--listeners", default=",".join(LISTENERS),
                    help="comma-separated subset of: " + ", ".join(LISTENERS))
    ap.add_argument("--placements", default=",".join(PLACEMENTS),
                    help="any first, then pinned passes: same (program and "
                    "listener on one CPU), cross (on two); default %(default)s")
    ap.add_argument("--settle", type=float, default=0.3,
                    help="seconds between ready and the workloads")
    ap.add_argument("--timeout", type=float, default=300,
                    help="seconds one workload may take")
    ap.add_argument("--json", required=True, help="where to write results")
    a = ap.parse_args()
    wanted = [x for x in a.listeners.split(",") if x]
    bad = [x for x in wanted if x not in LISTENERS]
    placements = [x for x in a.placements.split(",") if x]
    if not placements or placements[0] != "any" or any(
            x not in PLACEMENTS for x in placements):
        ap.error("--placements: 'any' first, then same and/or cross")
    if bad or a.reps < 1 or a.copies < 1 or a.execs < 1 or a.churn < 1:
        ap.error("bad listener %s or count" % bad)
    if os.geteuid() != 0:
        sys.exit("workload_bench: must run as root (fanotify, mounts)")
    in_private_namespace(sys.argv[1:])

    b = Bench(a)
    b.placements = []
    for p in placements:
        why_not = b.placement_usable(p)
        if why_not:
            log("workload_bench: placement %s skipped: %s" % (p, why_not))
        else:
            b.placements.append(p)
    b.setup()
    try:
        why = {n: b.available(n) for n in wanted}
        runnable = [n for n in wanted if why[n] is None]
        log("workload_bench: %d files (%d bytes) to walk, %d execs, %d churn "
            "iterations, %d reps; listeners: %s" % (
                b.files, b.bytes, a.execs, a.churn, a.reps, " ".join(runnable)))
        for n in wanted:
            if why[n]:
                log("workload_bench: %s: skipped: %s" % (n, why[n]))
        reps, orders = [], []
        for i in range(a.reps):
            k = i % len(runnable) if runnable else 0
            order = runnable[k:] + runnable[:k]
            orders.append(order)
            rep = {}
            for n in order:
                rep[n] = b.session(n)
                r = rep[n]
                log("rep %d %-12s %s" % (i + 1, n, "  ".join(
                    "%s %.1f ms" % (k[:-3], v / 1e6)
                    for k, v in r.items() if k.endswith("_ns"))
                    or r.get("error")))
            reps.append(rep)
    finally:
        b.teardown()
    result = {
        "config": {"reps": a.reps, "files": b.files, "bytes": b.bytes,
                   "copies": a.copies,
                   "tree": a.tree or "headers of libc6-dev and linux-libc-dev",
                   "execs": a.execs, "churn": a.churn, "settle_s": a.settle,
                   "placements": b.placements,
                   "cpus": {"program": b.cpu_a, "same": b.cpu_a,
                            "cross": b.cpu_b}},
        "workloads": {
            "walk_cold": {"count": b.files, "per": "file",
                          "what": "grep -r over the tree, first walk"},
            "walk_warm": {"count": b.files, "per": "file",
                          "what": "grep -r over the tree, second walk"},
            "exec": {"count": a.execs, "per": "exec",
                     "what": "sh loop running a copy of true(1)"},
            "churn": {"count": a.churn, "per": "iteration",
                      "what": "Python: create, write, close, rename, unlink"},
        },
        "listeners": {n: {"ran": why[n] is None, "why": why[n]} for n in wanted},
        "order": orders,
        "per_rep": reps,
    }
    with open(a.json, "w") as f:
        json.dump(result, f, indent=1)
    log("workload_bench: wrote %s" % a.json)


if __name__ == "__main__":
    main()
