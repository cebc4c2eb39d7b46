#!/usr/bin/env python3
"""abi-check.py LIBRARY MAP HEADER... — a shared library exports exactly
its public API.

Three lists must be equal: the functions declared in the public HEADERs,
the global symbols of the version script MAP, and the symbols LIBRARY
exports (nm -D --defined-only, the version node itself aside). Also checks
that every exported symbol carries a version of MAP and that the library
has a versioned soname (lib*.so.N). Prints what differs; exit 0 or 1.
"""
import re
import subprocess
import sys


def header_functions(paths):
    names = set()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        text = re.sub(r"//[^\n]*", "", text)
        # a declaration: a return type, the name, '(' — not a typedef of a
        # function pointer, not a macro
        for m in re.finditer(r"^(?!typedef|#)[A-Za-z_][^;{}()#]*?\b([a-z][a-z0-9_]*)\s*\(",
                             text, flags=re.M):
            names.add(m.group(1))
    return names


def map_symbols(path):
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    nodes, glob = set(), set()
    for node, body in re.findall(r"([A-Za-z0-9_.]+)\s*\{(.*?)\}", text, flags=re.S):
        nodes.add(node)
        part = body.split("local:")[0]
        part = part.replace("global:", "")
        glob.update(s.strip() for s in part.split(";") if s.strip())
    return nodes, glob


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        name, _, version = parts[2].partition("@")
        syms[name] = (parts[1], version.lstrip("@"))
    return syms


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    lib, mapfile, headers = sys.argv[1], sys.argv[2], sys.argv[3:]
    declared = header_functions(headers)
    nodes, listed = map_symbols(mapfile)
    syms = exported(lib)
    exported_names = {n for n, (t, _) in syms.items() if t != "A"}
    ok = True

    def report(what, names):
        nonlocal ok
        if names:
            ok = False
            print(f"{what} ({len(names)}): {' '.join(sorted(names))}")

    report(f"exported by {lib} but not public (an internal name leaks)",
           exported_names - declared)
    report(f"declared in {' '.join(headers)} but not exported by {lib}",
           declared - exported_names)
    report(f"declared in the headers but not listed in {mapfile}: add them "
           "in a new version node", declared - listed)
    report(f"listed in {mapfile} but not declared in the headers", listed - declared)
    unversioned = {n for n in exported_names if syms[n][1] not in nodes}
    report(f"exported without a version node of {mapfile}", unversioned)
    soname = subprocess.run(["readelf", "-d", lib], check=True, capture_output=True,
                            text=True).stdout
    m = re.search(r"Library soname: \[([^\]]+)\]", soname)
    if not m or not re.search(r"\.so\.[0-9]+$", m.group(1)):
        ok = False
        print(f"{lib}: no versioned soname ({m.group(1) if m else 'none'})")
    print(f"{lib}: {len(exported_names)} symbols exported, "
          f"{len(declared)} public functions, soname {m.group(1) if m else '-'}: "
          f"{'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
