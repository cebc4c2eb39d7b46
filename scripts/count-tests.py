#!/usr/bin/env python3
"""Count test cases in a meson testlog.json: cmocka's own PASSED/FAILED
lines per program; a program that died without a cmocka summary (crash,
sanitizer abort, timeout) counts as one failure. Prints 'N passed, N failed'."""
import json
import re
import sys

passed = failed = 0
with open(sys.argv[1]) as f:
    for line in f:
        t = json.loads(line)
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
