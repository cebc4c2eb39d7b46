#!/usr/bin/env python3
"""Count test cases in a meson testlog.json: cmocka's own PASSED/FAILED
lines per program; a program that died without a cmocka summary (crash,
sanitizer abort, timeout) counts as one failure. Prints 'N passed, N failed'.

With --per-program, each program counts once: passed if meson says OK,
failed otherwise (skips count as neither). scripts/test uses that for the
valgrind step, where a program's verdict is valgrind's."""
import json
import re
import sys

args = [a for a in sys.argv[1:] if a != "--per-program"]
per_program = len(args) != len(sys.argv) - 1
passed = failed = 0
with open(args[0]) as f:
    for line in f:
        t = json.loads(line)
        if per_program:
            if t.get("result") == "OK":
                passed += 1
            elif t.get("result") != "SKIP":
                failed += 1
            continue
        out = (t.get("stdout") or "") + (t.get("stderr") or "")
        p = sum(int(m) for m in re.findall(r"\[  PASSED  \] (\d+) test", out))
        fl = sum(int(m) for m in re.findall(r"\[  FAILED  \] (\d+) test", out))
        if t.get("result") == "OK":
            passed += p if p or fl else 1
            failed += fl
        elif t.get("result") == "SKIP":
            pass
        else:
            passed += p
            failed += fl if fl else 1
print(f"{passed} passed, {failed} failed")
