#!/usr/bin/env python3
"""The C ABI of libedgeroute as text, and a check that it only grows.

  abi.py dump --lib libedgeroute.so --header edgeroute.h [--cc CC]
  abi.py check --lib ... --header ... --baseline edgeroute-0.2.abi

`dump` prints one fact per line: every function the library exports, the
parameter and result types of each function the header declares, the
value of every integer constant of the header (except the version macros,
which grow), and the size of every struct the header defines with the
offset and size of each member, measured by compiling a small C program
against the header (so the compiler, not a parser, decides the layout).

`check` compares with a baseline dumped from the previous release: each of
its functions must still be exported with the same types, each constant keep its value, each
member its offset and size, each struct be at least as large (fields are
only appended; see "Growing the ABI" in bindings/README.md). New facts are
listed and allowed. Exit 1 on a break.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile


def exported_functions(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] in ("T", "W", "i"):
            names.add(fields[2].split("@")[0])
    return sorted(names)


def strip_comments(text):
    return re.sub(r"/\*.*?\*/", " ", re.sub(r"//[^\n]*", " ", text), flags=re.S)


def header_structs(text):
    """{struct name: [member, ...]} for `typedef struct X {...} X;`."""
    structs = {}
    for match in re.finditer(r"typedef\s+struct\s+(\w+)\s*\{(.*?)\}\s*(\w+)\s*;",
                             text, re.S):
        members = []
        for decl in match.group(2).split(";"):
            decl = decl.strip()
            if not decl:
                continue
            if "(" in decl or "," in decl:
                raise SystemExit("abi.py: cannot read member '%s' of %s; "
                                 "declare one plain member per line"
                                 % (decl, match.group(3)))
            name = re.search(r"(\w+)\s*(\[[^\]]*\])?$", decl).group(1)
            members.append(name)
        structs[match.group(3)] = members
    return structs


def header_constants(text):
    names = []
    for match in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+(EDGEROUTE_\w+)(\(?)[ \t]*([^\n]*)$",
                             text, re.M):
        name, function_like, value = match.groups()
        if function_like or not value.strip() or value.strip().startswith('"'):
            continue
        if name.startswith("EDGEROUTE_VERSION") or name == "EDGEROUTE_EXPORT":
            continue
        names.append(name)
    return names


def header_signatures(text):
    """{function: 'return(type,type)'} for every EDGEROUTE_EXPORT
    declaration, whitespace and parameter names dropped, so that only a
    change of types counts."""
    signatures = {}
    for match in re.finditer(r"EDGEROUTE_EXPORT\s+([^;{]*?)\b(edgeroute_\w+)"
                             r"\s*\(([^;{]*)\)\s*;", text, re.S):
        result, name, params = match.groups()
        types = []
        for param in params.split(","):
            param = " ".join(param.replace("*", " * ").split())
            words = param.split(" ")
            if len(words) > 1 and re.match(r"^\w+$", words[-1]) and \
                    words[-1] not in ("void", "char", "int", "long", "short"):
                words = words[:-1]
            types.append(" ".join(words).replace(" *", "*"))
        result = " ".join(result.replace("*", " * ").split()).replace(" *", "*")
        signatures[name] = "%s(%s)" % (result, ",".join(types))
    return signatures


def dump(lib, header, cc):
    with open(header) as f:
        text = strip_comments(f.read())
    lines = ["function %s" % name for name in exported_functions(lib)]
    lines += ["signature %s %s" % item
              for item in sorted(header_signatures(text).items())]
    program = ["#include <stddef.h>", "#include <stdio.h>",
               '#include "%s"' % os.path.abspath(header), "int main(void) {"]
    for name in header_constants(text):
        program.append('  printf("constant %s %%lld\\n", (long long)(%s));'
                       % (name, name))
    for struct, members in sorted(header_structs(text).items()):
        program.append('  printf("struct %s size %%zu\\n", sizeof(%s));'
                       % (struct, struct))
        for member in members:
            program.append(
                '  printf("member %s.%s offset %%zu size %%zu\\n", '
                'offsetof(%s, %s), sizeof(((%s*)0)->%s));'
                % (struct, member, struct, member, struct, member))
    program += ["  return 0;", "}"]
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "layout.c")
        binary = os.path.join(tmp, "layout")
        with open(source, "w") as f:
            f.write("\n".join(program) + "\n")
        subprocess.run([cc, "-std=c99", "-o", binary, source], check=True)
        lines += subprocess.run([binary], check=True, capture_output=True,
                                text=True).stdout.splitlines()
    return lines


def facts(lines):
    """{key: value}: 'function f' -> '', 'struct S size' -> '24', ..."""
    out = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kind, rest = line.split(" ", 1)
        if kind == "function":
            out[line] = ""
        elif kind == "signature":
            name, value = rest.split(" ", 1)
            out["signature " + name] = value
        elif kind == "constant":
            name, value = rest.rsplit(" ", 1)
            out["constant " + name] = value
        elif kind == "struct":
            name = rest.split()[0]
            out["struct %s size" % name] = rest.split()[2]
        elif kind == "member":
            name, _, offset, _, size = rest.split()
            out["member " + name] = "offset %s size %s" % (offset, size)
    return out


def check(current_lines, baseline_lines):
    current, baseline = facts(current_lines), facts(baseline_lines)
    broken = []
    for key, value in sorted(baseline.items()):
        if key not in current:
            broken.append("removed: %s" % key)
        elif key.startswith("struct "):
            if int(current[key]) < int(value):
                broken.append("%s shrank: %s -> %s" % (key, value, current[key]))
        elif current[key] != value:
            broken.append("%s changed: %s -> %s" % (key, value, current[key]))
    added = sorted(k for k in current if k not in baseline)
    grown = sorted(k for k in baseline if k.startswith("struct ") and
                   k in current and current[k] != baseline[k])
    return broken, added, grown


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["dump", "check"])
    parser.add_argument("--lib", required=True)
    parser.add_argument("--header", required=True)
    parser.add_argument("--baseline")
    parser.add_argument("--cc", default=os.environ.get("CC", "cc"))
    args = parser.parse_args()
    lines = dump(args.lib, args.header, args.cc)
    if args.command == "dump":
        print("\n".join(lines))
        return 0
    with open(args.baseline) as f:
        baseline_lines = f.read().splitlines()
    broken, added, grown = check(lines, baseline_lines)
    for key in added:
        print("added: %s" % key)
    for key in grown:
        print("grown: %s" % key)
    if broken:
        print("ABI BREAK against %s (the ABI may only grow):"
              % os.path.basename(args.baseline))
        for line in broken:
            print("  " + line)
        return 1
    print("OK: the ABI of %s keeps every function, constant and struct "
          "layout (%d facts), %d added"
          % (os.path.basename(args.baseline), len(facts(baseline_lines)),
             len(added)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
