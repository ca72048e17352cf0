# SPDX-License-Identifier: GPL-3.0-or-later
"""The allowed module graph of src/ and a checker for it (docs/architecture.md).

A module is a folder of src/ (core's three sub-folders are modules of their own).
Each may include headers only from itself and from the modules listed for it here,
and third-party headers only where that library is owned: an adapter is the only
place its dependency appears. Each file declares only its own namespace,
bzs::<folder path with '::'>. Run as a program to check the tree:

    python3 tests/architecture/module_graph.py [SRC_DIR]
"""
import os
import re
import sys

# Module -> modules whose headers it may include. Edges point down the layers:
# util and core at the bottom, adapters above them, service above the adapters,
# the two programs (daemon, cli) on top.
ALLOWED = {
    "util": set(),
    "core/crypto": set(),
    "core/protocol": {"core/crypto"},
    "core/auth": {"core/protocol", "core/crypto"},
    "loop": {"util"},
    "dbus": {"util"},
    "store": {"core/auth", "core/protocol", "core/crypto", "util"},
    "config": {"core/auth", "core/protocol", "core/crypto", "util"},
    "actions": {"config", "core/auth", "core/protocol", "core/crypto", "loop", "util"},
    "qr": {"core/protocol", "core/crypto", "util"},
    "service": {"store", "config", "actions", "core/auth", "core/protocol", "core/crypto",
                "loop", "util"},
    "bluez": {"dbus", "core/auth", "core/protocol", "core/crypto", "loop", "util"},
    "client": {"bluez", "dbus", "core/auth", "core/protocol", "core/crypto", "loop", "util"},
    "web": {"service", "store", "config", "actions", "qr", "core/auth", "core/protocol",
            "core/crypto", "loop", "util"},
    "daemon": {"web", "bluez", "service", "store", "config", "actions", "qr", "dbus",
               "core/auth", "core/protocol", "core/crypto", "loop", "util"},
    # The CLI never reaches the web server (it would link the HTTP stack and TLS).
    "cli": {"client", "bluez", "service", "store", "config", "actions", "qr", "dbus",
            "core/auth", "core/protocol", "core/crypto", "loop", "util"},
}

# Third-party header prefix -> the modules that may include it.
OWNED = {
    "openssl/": {"core/crypto"},
    "sqlite3.h": {"store"},
    "systemd/sd-bus": {"dbus"},
    "systemd/sd-event": {"loop", "dbus"},
    "systemd/sd-daemon": {"daemon"},
    "systemd/": {"loop", "dbus", "daemon"},
    "toml++/": {"config"},
    "qrencode.h": {"qr"},
    "httplib.h": {"web"},
    "microhttpd.h": {"web"},
    "nlohmann/": {"service", "client", "web", "daemon", "cli"},
    "CLI/": {"daemon", "cli"},
    "re2/": {"actions"},
}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
NAMESPACE = re.compile(r"^\s*namespace\s+(bzs(?:::\w+)*)\s*\{", re.M)


def module_of(rel):
    """'core/crypto/fernet.cpp' -> 'core/crypto'; 'store/store.cpp' -> 'store'."""
    parts = rel.split("/")
    if parts[0] == "core" and len(parts) > 2:
        return "core/" + parts[1]
    return parts[0]


def sources(src):
    for root, _, files in os.walk(src):
        for name in sorted(files):
            if name.endswith((".h", ".cpp")):
                path = os.path.join(root, name)
                yield os.path.relpath(path, src).replace(os.sep, "/"), path


def check(src):
    """Every violation in the tree under `src`, as 'file: message' strings."""
    problems = []
    for rel, path in sources(src):
        mod = module_of(rel)
        if mod not in ALLOWED:
            problems.append(f"{rel}: folder {mod}/ is not a module of the graph "
                            "(add it to tests/architecture/module_graph.py and "
                            "docs/architecture.md)")
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for kind, target in INCLUDE.findall(text):
            if kind == '"':
                dep = module_of(target)
                if "/" not in target:
                    problems.append(f'{rel}: #include "{target}" names no module folder')
                elif dep != mod and dep not in ALLOWED[mod]:
                    problems.append(f'{rel}: #include "{target}": {mod} may not depend on {dep}')
                continue
            for prefix, owners in OWNED.items():
                if target.startswith(prefix):
                    if mod not in owners:
                        problems.append(f"{rel}: #include <{target}>: only "
                                        f"{', '.join(sorted(owners))} may use it")
                    break
        want = "bzs::" + mod.replace("/", "::")
        for ns in NAMESPACE.findall(text):
            if ns != want and not ns.startswith(want + "::"):
                problems.append(f"{rel}: namespace {ns} in folder {mod}/ (expected {want})")
    return problems


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    src = argv[1] if len(argv) > 1 else os.path.join(here, "..", "..", "src")
    problems = check(src)
    for p in problems:
        print(p)
    if problems:
        print(f"module graph: {len(problems)} violation(s)", file=sys.stderr)
        return 1
    print("module graph: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
