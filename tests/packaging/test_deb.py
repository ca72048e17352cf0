# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks the .deb packages `make deb` built (BZS_DEB_DIR): lintian on all three, the
same phone app and the right machine code in each, and the amd64 package installed,
upgraded, removed and purged in a clean Debian bookworm root (debootstrap minbase,
created once and kept in BZS_DEB_DIR/debroot-bookworm).

The maintainer scripts run for real in the root (chroot); systemd is not running
there, so they must enable the service without starting it, as Debian's helpers do.
Needs root (chroot, file owners) and the Debian mirror (debootstrap, apt).
"""
import glob
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

DEB_DIR = os.environ.get("BZS_DEB_DIR", "")
MIRROR = os.environ.get("BZS_DEBIAN_MIRROR", "http://deb.debian.org/debian")
ARCHES = {"amd64": 62, "arm64": 183, "armhf": 40}  # ELF e_machine
APP = "usr/share/bluezscript/app/"
UNIT = "bluezscriptd.service"
CONFFILES = ["/etc/bluezscript/bluezscript.toml",
             "/etc/bluezscript/actions.d/hello", "/etc/bluezscript/actions.d/hello.toml",
             "/etc/bluezscript/actions.d/gpio-status",
             "/etc/bluezscript/actions.d/gpio-status.toml"]


def run(args, timeout=900, check=True, **kw):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def package(arch):
    found = glob.glob(os.path.join(DEB_DIR, f"bluezscript_*_{arch}.deb"))
    if len(found) != 1:
        raise AssertionError(f"expected one bluezscript_*_{arch}.deb in {DEB_DIR}, found {found}")
    return found[0]


def md5sums(deb):
    """path -> md5 from the package's md5sums control file."""
    with tempfile.TemporaryDirectory() as d:
        run(["dpkg-deb", "--control", deb, d])
        with open(os.path.join(d, "md5sums"), encoding="utf-8") as f:
            return {line.split(None, 1)[1].strip(): line.split()[0] for line in f if line.strip()}


def setUpModule():
    if not DEB_DIR or not os.path.isdir(DEB_DIR):
        raise AssertionError("BZS_DEB_DIR must name the folder `make deb` filled")


class Packages(unittest.TestCase):
    def test_lintian_reports_no_errors(self):
        for arch in ARCHES:
            with self.subTest(arch=arch):
                p = run(["lintian", "--fail-on", "error", "--display-info", package(arch)],
                        check=False)
                print(f"\nlintian {arch}:\n{p.stdout}{p.stderr}", end="")
                self.assertEqual(p.returncode, 0, f"lintian found errors in the {arch} package")
                self.assertNotRegex(p.stdout, r"(?m)^E: ")

    def test_control_fields(self):
        for arch in ARCHES:
            with self.subTest(arch=arch):
                deb = package(arch)
                fields = run(["dpkg-deb", "--field", deb, "Architecture", "Depends"]).stdout
                self.assertIn(f"Architecture: {arch}\n", fields)
                # From dpkg-shlibdeps on the binaries of this architecture.
                for dep in ("libc6 (>=", "libstdc++6 (>=", "libssl3 (>=", "libsqlite3-0 (>=",
                            "libsystemd0", "libqrencode4", "libcpp-httplib0.11",
                            "libtomlplusplus3", "adduser", "init-system-helpers"):
                    self.assertIn(dep, fields)

    def test_binaries_are_stripped_code_for_the_architecture(self):
        for arch, machine in ARCHES.items():
            with self.subTest(arch=arch), tempfile.TemporaryDirectory() as d:
                run(["dpkg-deb", "--extract", package(arch), d])
                for name in ("bluezscriptd", "bluezscript"):
                    path = os.path.join(d, "usr/bin", name)
                    with open(path, "rb") as f:
                        head = f.read(20)
                    self.assertEqual(head[:4], b"\x7fELF")
                    self.assertEqual(int.from_bytes(head[18:20], "little"), machine, path)
                    sections = run(["readelf", "--section-headers", "--wide", path]).stdout
                    self.assertNotIn(".symtab", sections, f"{path} is not stripped")
                    self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o755)

    def test_phone_app_is_the_same_in_every_package(self):
        sums = {arch: {p: m for p, m in md5sums(package(arch)).items() if p.startswith(APP)}
                for arch in ARCHES}
        self.assertIn(APP + "index.html", sums["amd64"])
        self.assertEqual(sums["amd64"], sums["arm64"])
        self.assertEqual(sums["amd64"], sums["armhf"])


class CleanRoot(unittest.TestCase):
    """The amd64 package in a fresh copy of a debootstrapped bookworm root."""

    @classmethod
    def setUpClass(cls):
        pristine = os.path.join(DEB_DIR, "debroot-bookworm")
        if not os.path.exists(os.path.join(pristine, ".bzs-complete")):
            shutil.rmtree(pristine, ignore_errors=True)
            run(["debootstrap", "--variant=minbase", "bookworm", pristine, MIRROR], timeout=1800)
            # A chroot must not start services: the standard policy-rc.d for that.
            run(["chroot", pristine, "apt-get", "clean"])
            with open(os.path.join(pristine, "usr/sbin/policy-rc.d"), "w") as f:
                f.write("#!/bin/sh\nexit 101\n")
            os.chmod(os.path.join(pristine, "usr/sbin/policy-rc.d"), 0o755)
            run(["chroot", pristine, "apt-get", "update", "-qq"])
            open(os.path.join(pristine, ".bzs-complete"), "w").close()
        cls.root = os.path.join(DEB_DIR, "debroot-test")
        shutil.rmtree(cls.root, ignore_errors=True)
        run(["cp", "-a", pristine, cls.root])
        # Downloaded dependencies are kept between runs.
        cls.archives = os.path.join(DEB_DIR, "apt-archives")
        os.makedirs(cls.archives, exist_ok=True)
        for deb in glob.glob(os.path.join(cls.archives, "*.deb")):
            shutil.copy(deb, os.path.join(cls.root, "var/cache/apt/archives"))
        cls.deb = "/tmp/" + os.path.basename(package("amd64"))
        shutil.copy(package("amd64"), cls.root + cls.deb)
        # The first installation: apt resolves Depends in the clean root.
        cls.install = cls.chroot("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install",
                                 "-y", "--no-install-recommends", cls.deb)
        for deb in glob.glob(os.path.join(cls.root, "var/cache/apt/archives/*.deb")):
            shutil.copy(deb, cls.archives)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    @classmethod
    def chroot(cls, *args, check=True):
        return run(["chroot", cls.root, *args], check=check)

    def path(self, p):
        return self.root + p

    def ids(self, kind):
        """name -> id from the root's passwd or group file."""
        with open(self.path(f"/etc/{kind}"), encoding="utf-8") as f:
            return {line.split(":")[0]: int(line.split(":")[2]) for line in f if line.count(":") >= 3}

    def assertOwnedMode(self, p, user, group, mode, kind=stat.S_ISREG):
        st = os.lstat(self.path(p))
        self.assertTrue(kind(st.st_mode), f"{p} has the wrong file type")
        self.assertEqual(st.st_uid, self.ids("passwd")[user], f"{p} owner")
        self.assertEqual(st.st_gid, self.ids("group")[group], f"{p} group")
        self.assertEqual(stat.S_IMODE(st.st_mode), mode, f"{p} mode {oct(st.st_mode)}")

    def test_1_files_owners_and_modes(self):
        R, D = stat.S_ISREG, stat.S_ISDIR
        for p, u, g, m, k in [
            ("/usr/bin/bluezscriptd", "root", "root", 0o755, R),
            ("/usr/bin/bluezscript", "root", "root", 0o755, R),
            ("/lib/systemd/system/" + UNIT, "root", "root", 0o644, R),
            ("/usr/share/dbus-1/system.d/bluezscript.conf", "root", "root", 0o644, R),
            ("/etc/bluezscript", "root", "root", 0o755, D),
            ("/etc/bluezscript/bluezscript.toml", "root", "root", 0o644, R),
            ("/etc/bluezscript/actions.d", "root", "root", 0o755, D),
            ("/etc/bluezscript/actions.d/hello", "root", "root", 0o755, R),
            ("/etc/bluezscript/actions.d/hello.toml", "root", "root", 0o644, R),
            ("/etc/bluezscript/actions.d/gpio-status", "root", "root", 0o755, R),
            ("/etc/bluezscript/actions.d/gpio-status.toml", "root", "root", 0o644, R),
            ("/var/lib/bluezscript", "bluezscript", "bluezscript", 0o700, D),
            ("/usr/share/bluezscript/app/index.html", "root", "root", 0o644, R),
            ("/usr/share/doc/bluezscript/install.md", "root", "root", 0o644, R),
            ("/usr/share/doc/bluezscript/examples/gpio.conf", "root", "root", 0o644, R),
            ("/usr/share/doc/bluezscript/copyright", "root", "root", 0o644, R),
        ]:
            with self.subTest(path=p):
                self.assertOwnedMode(p, u, g, m, k)
        conffiles = self.chroot("dpkg-query", "-W", "-f=${Conffiles}", "bluezscript").stdout
        for c in CONFFILES:
            self.assertIn(" " + c + " ", conffiles)

    def test_2_system_user_in_group_bluetooth(self):
        entry = self.chroot("getent", "passwd", "bluezscript").stdout.strip().split(":")
        self.assertLess(int(entry[2]), 1000, "not a system user")
        self.assertEqual(entry[5], "/var/lib/bluezscript")
        self.assertEqual(entry[6], "/usr/sbin/nologin")
        groups = self.chroot("id", "-nG", "bluezscript").stdout.split()
        self.assertEqual(sorted(groups), ["bluetooth", "bluezscript"])

    def test_3_enabled_but_not_started_without_systemd(self):
        link = self.path("/etc/systemd/system/multi-user.target.wants/" + UNIT)
        self.assertEqual(os.readlink(link), "/lib/systemd/system/" + UNIT)
        self.assertFalse(os.path.exists(self.path("/run/systemd/system")))
        # No process runs the root's daemon (the chroot has no /proc: look from outside).
        daemon = os.path.realpath(self.path("/usr/bin/bluezscriptd"))
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            self.assertNotEqual(exe, daemon, f"process {pid} runs the daemon")

    def test_4_binaries_run_and_read_the_installed_defaults(self):
        # As the daemon's user, as docs/install.md tells owners to run the CLI.
        out = self.chroot("runuser", "-u", "bluezscript", "--", "bluezscript",
                          "--config", "/etc/bluezscript/bluezscript.toml",
                          "actions", "list").stdout
        self.assertRegex(out, r"(?m)^  hello +10s ")
        self.assertRegex(out, r"(?m)^  gpio-status +10s ")
        self.assertNotIn("refused", out)
        # The example action runs as the daemon's user, whose state directory takes
        # the audit row (and the master key, created on first use).
        out = self.chroot("runuser", "-u", "bluezscript", "--", "bluezscript",
                          "actions", "run", "hello").stdout
        self.assertIn("Hello from", out)
        self.assertOwnedMode("/var/lib/bluezscript/bluezscript.db", "bluezscript", "bluezscript",
                             0o600)
        self.chroot("bluezscriptd", "--help")

    def test_5_upgrade_keeps_an_edited_config(self):
        conf = self.path("/etc/bluezscript/bluezscript.toml")
        with open(conf, "a", encoding="utf-8") as f:
            f.write("# edited by the owner\n")
        with open(self.path("/var/lib/bluezscript/keep-me"), "w") as f:
            f.write("state")
        self.chroot("dpkg", "--force-confold", "-i", self.deb)
        with open(conf, encoding="utf-8") as f:
            self.assertIn("# edited by the owner", f.read())
        self.assertTrue(os.path.exists(self.path("/var/lib/bluezscript/keep-me")))
        self.assertOwnedMode("/var/lib/bluezscript", "bluezscript", "bluezscript", 0o700,
                             stat.S_ISDIR)

    def test_6_remove_keeps_config_state_and_user(self):
        self.chroot("dpkg", "--remove", "bluezscript")
        self.assertFalse(os.path.exists(self.path("/usr/bin/bluezscriptd")))
        self.assertTrue(os.path.exists(self.path("/etc/bluezscript/bluezscript.toml")))
        self.assertTrue(os.path.exists(self.path("/var/lib/bluezscript/keep-me")))
        self.assertIn("bluezscript", self.ids("passwd"))
        # Masked until purge or reinstall (deb-systemd-helper).
        self.assertEqual(os.readlink(self.path("/etc/systemd/system/" + UNIT)), "/dev/null")

    def test_7_purge_deletes_config_and_state(self):
        with open(self.path("/etc/bluezscript/actions.d/mine"), "w") as f:
            f.write("#!/bin/sh\n")
        self.chroot("dpkg", "--purge", "bluezscript")
        for p in ("/etc/bluezscript", "/var/lib/bluezscript", "/etc/systemd/system/" + UNIT,
                  "/etc/systemd/system/multi-user.target.wants/" + UNIT):
            with self.subTest(path=p):
                self.assertFalse(os.path.lexists(self.path(p)))
        status = self.chroot("dpkg-query", "-W", "-f=${Status}", "bluezscript", check=False)
        self.assertNotIn("installed", status.stdout.replace("not-installed", ""))

    def test_8_reinstall_after_purge(self):
        self.chroot("dpkg", "-i", self.deb)
        self.assertOwnedMode("/var/lib/bluezscript", "bluezscript", "bluezscript", 0o700,
                             stat.S_ISDIR)
        self.assertTrue(os.path.islink(
            self.path("/etc/systemd/system/multi-user.target.wants/" + UNIT)))


if __name__ == "__main__":
    unittest.main()
