#!/usr/bin/python3
"""test_package.py - the Debian packages, built and used as an operator would.

Builds the .debs of this build tree with CPack into a temporary directory, extracts each
into a clean root with `dpkg -x`, and then uses only what the packages installed there:

  - the packages' metadata: names, runtime Depends written by dpkg-shlibdeps, the shared
    library's shlibs file and ldconfig trigger;
  - the broker package's systemd unit names the installed binary and holds the hardening;
    `systemd-analyze verify` accepts it without a warning, `security` rates it <= 2.0;
  - the installed man pages name every subcommand and option the installed binaries list;
  - a C program built against liblienthong-dev through liblienthong.pc, linked once with
    the shared library (from liblienthong1) and once statically;
  - the smoke test the unit would run, without systemd: the installed `lienthong dev-init
    --state-dir`, the installed `lienthongd --check` (of it and of the example config the
    package ships), the installed lienthongd started with
    NOTIFY_SOCKET (readiness = its READY=1 datagram, as systemd waits for it), the installed
    `lienthong pub` and `lienthong sub` carrying the demo's birth registrations, each
    delivered with verified:true; SIGTERM stops the broker by its pid with exit 0;
  - scripts/demo-run, the whole demo, against the installed binaries.

usage: test_package.py --build-dir DIR --source-dir DIR --cpack CPACK
Every process started is stopped by its pid; every wait is bounded.
"""
import argparse
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import unittest

ARGS = None
ROOT = None      # the clean root the packages were extracted into
PREFIX = None    # the install prefix inside it (e.g. /usr/local or /usr)
DEBS = {}        # package name -> .deb path
WORK = None


def run(argv, timeout=120, **kw):
    """Run argv to completion (bounded); CompletedProcess with text output."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cmake_cache(build_dir, key):
    with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split("=", 1)[1].strip()
    raise KeyError(key)


def setUpModule():
    global WORK
    WORK = tempfile.mkdtemp(prefix="lt-package-")
    try:
        build_and_extract()
    except BaseException:
        tearDownModule()  # unittest does not call it when this fails
        raise


def build_and_extract():
    global ROOT, PREFIX
    out = os.path.join(WORK, "debs")
    r = run([ARGS.cpack, "-G", "DEB", "-B", out,
             "--config", os.path.join(ARGS.build_dir, "CPackConfig.cmake")], timeout=600)
    if r.returncode != 0:
        raise RuntimeError("cpack failed:\n" + r.stdout + r.stderr)
    for name in os.listdir(out):
        if name.endswith(".deb"):
            pkg = run(["dpkg-deb", "-f", os.path.join(out, name), "Package"]).stdout.strip()
            DEBS[pkg] = os.path.join(out, name)
    ROOT = os.path.join(WORK, "root")
    os.mkdir(ROOT)
    for deb in DEBS.values():
        r = run(["dpkg", "-x", deb, ROOT])
        if r.returncode != 0:
            raise RuntimeError("dpkg -x %s: %s" % (deb, r.stderr))
    PREFIX = cmake_cache(ARGS.build_dir, "CMAKE_INSTALL_PREFIX")


def tearDownModule():
    if WORK and not os.environ.get("LT_IT_KEEP"):
        shutil.rmtree(WORK, ignore_errors=True)
    elif WORK:
        print("kept", WORK)


def rooted(path):
    """path of the installed tree (absolute, e.g. /usr/sbin/lienthongd) inside ROOT."""
    return os.path.join(ROOT, path.lstrip("/"))


def libdir():
    return cmake_cache(ARGS.build_dir, "CMAKE_INSTALL_LIBDIR")


class Packages(unittest.TestCase):
    def test_four_packages_with_their_files(self):
        self.assertEqual(sorted(DEBS), ["liblienthong-dev", "liblienthong1", "lienthong",
                                        "lienthongd"])
        want = {
            "lienthongd": ["sbin/lienthongd", "lib/systemd/system/lienthongd.service",
                           "share/man/man8/lienthongd.8.gz", "share/man/man5/broker.yaml.5.gz",
                           "share/doc/lienthongd/examples/broker.yaml"],
            "lienthong": ["bin/lienthong", "share/man/man1/lienthong.1.gz"],
            "liblienthong1": [libdir() + "/liblienthong.so.1"],
            "liblienthong-dev": ["include/lienthong/envelope.h", "include/lienthong/client.h",
                                 libdir() + "/liblienthong.a", libdir() + "/liblienthong.so",
                                 libdir() + "/pkgconfig/liblienthong.pc"],
        }
        for pkg, files in want.items():
            listing = run(["dpkg-deb", "-c", DEBS[pkg]]).stdout
            for f in files:
                self.assertIn("." + os.path.join(PREFIX, f), listing, "%s lacks %s" % (pkg, f))

    def test_runtime_depends_come_from_the_binaries(self):
        dep = {p: run(["dpkg-deb", "-f", d, "Depends"]).stdout for p, d in DEBS.items()}
        for lib in ("libzmq5", "libssl3", "liblmdb0", "libuv1", "libc6"):
            self.assertIn(lib, dep["lienthongd"])
        for lib in ("libzmq5", "libssl3", "libsqlite3-0", "libpq5"):
            self.assertIn(lib, dep["lienthong"])
        self.assertIn("libprotobuf-c1", dep["liblienthong1"])
        self.assertNotIn("liblmdb0", dep["liblienthong1"])  # lib/ never links the broker's
        self.assertIn("liblienthong1 (= ", dep["liblienthong-dev"])

    def test_shared_library_has_soname_shlibs_and_ldconfig_trigger(self):
        ctl = os.path.join(WORK, "ctl")
        self.assertEqual(run(["dpkg-deb", "-e", DEBS["liblienthong1"], ctl]).returncode, 0)
        with open(os.path.join(ctl, "shlibs")) as f:
            self.assertTrue(f.read().startswith("liblienthong 1 liblienthong1"))
        with open(os.path.join(ctl, "triggers")) as f:
            self.assertIn("activate-noawait ldconfig", f.read())
        so = rooted(os.path.join(PREFIX, libdir(), "liblienthong.so.1"))
        dyn = run(["objdump", "-p", so]).stdout
        self.assertRegex(dyn, r"SONAME\s+liblienthong\.so\.1\b")

    def test_unit_runs_the_installed_binary_hardened(self):
        with open(rooted(os.path.join(PREFIX, "lib/systemd/system/lienthongd.service"))) as f:
            unit = f.read()
        sbin = os.path.join(PREFIX, "sbin/lienthongd")
        self.assertIn("ExecStart=%s -c " % sbin, unit)
        self.assertIn("ExecStartPre=%s --check -c " % sbin, unit)
        for line in ("Type=notify", "DynamicUser=yes", "StateDirectory=lienthong",
                     "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
                     "ExecReload=/bin/kill -HUP $MAINPID", "RestartPreventExitStatus=2"):
            self.assertIn("\n" + line + "\n", unit)
        self.assertNotRegex(unit, r"@[A-Z_]+@")  # every @VAR@ substituted


    def test_systemd_accepts_the_unit_and_rates_its_exposure_low(self):
        # systemd-analyze reads the unit as systemd would: with the binary's path inside the
        # root (verify checks that ExecStart is executable), every line must be understood
        # (an unknown key is only a warning, so stderr must be empty too).
        with open(rooted(os.path.join(PREFIX, "lib/systemd/system/lienthongd.service"))) as f:
            unit = f.read()
        sbin = os.path.join(PREFIX, "sbin/lienthongd")
        d = os.path.join(WORK, "unit")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "lienthongd.service")
        with open(path, "w") as f:
            f.write(unit.replace(sbin, rooted(sbin)))
        r = run(["systemd-analyze", "verify", "--man=no", path])
        self.assertEqual((r.returncode, r.stderr), (0, ""), r.stdout)
        r = run(["systemd-analyze", "security", "--offline=true", path])
        m = re.search(r"Overall exposure level for lienthongd.service: ([0-9.]+)", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        self.assertLessEqual(float(m.group(1)), 2.0, r.stdout)  # 1.5 when written


    def test_man_pages_name_every_command_and_option(self):
        # the pages are written by hand: each subcommand `lienthong --help` lists and each
        # option `lienthongd --help` lists must appear in the installed page
        def page(rel):  # the roff text without font changes and escapes
            with gzip.open(rooted(os.path.join(PREFIX, rel)), "rt", encoding="utf-8") as f:
                text = f.read()
            self.assertTrue(text.startswith(".\\\""), rel)  # a roff comment first
            return re.sub(r"\\f[BIRP]|\\&", "", text)
        text = page("share/man/man1/lienthong.1.gz")
        usage = run([rooted(os.path.join(PREFIX, "bin/lienthong")), "--help"]).stdout
        cmds = re.findall(r"^  ([a-z][a-z-]+)  ", usage, re.M)
        self.assertGreater(len(cmds), 10)
        for c in cmds:
            self.assertRegex(text, r"(?m)^%s\b" % re.escape(c), "lienthong(1) lacks " + c)
        text = page("share/man/man8/lienthongd.8.gz")
        usage = run([rooted(os.path.join(PREFIX, "sbin/lienthongd")), "--help"]).stdout
        opts = re.findall(r"--[a-z]+", usage)
        self.assertGreater(len(opts), 3)
        for o in opts:
            self.assertIn(o, text, "lienthongd(8) lacks " + o)
        self.assertIn("data_dir", page("share/man/man5/broker.yaml.5.gz"))


class DevPackage(unittest.TestCase):
    SRC = r"""
#include <lienthong/envelope.h>
#include <lienthong/err.h>
#include <stdio.h>
int main(void)
{
    uint8_t id[16];
    lt_why why = {{0}};
    if (lt_env_uuid7(lt_env_now_ms(), id, &why) != LT_OK || (id[6] & 0xf0) != 0x70)
        return 1;
    printf("%s\n", lt_err_name(LT_ESIG));
    return 0;
}
"""

    def build_and_run(self, static):
        src = os.path.join(WORK, "use.c")
        with open(src, "w") as f:
            f.write(self.SRC)
        env = dict(os.environ,
                   PKG_CONFIG_PATH=rooted(os.path.join(PREFIX, libdir(), "pkgconfig")))
        # Static: liblienthong.a and the system's libraries shared. Not `pkg-config --static`:
        # Debian 12's libzmq.pc names a library that is not installed (libprotokit.a).
        pc = (["--cflags", "--libs", "liblienthong"] if not static else
              ["--cflags", "--libs", "liblienthong", "libzmq", "libcrypto", "yaml-0.1"])
        flags = run(["pkg-config"] + pc, env=env)
        self.assertEqual(flags.returncode, 0, flags.stderr)
        exe = os.path.join(WORK, "use-static" if static else "use-shared")
        cmd = ["cc", "-o", exe, src] + flags.stdout.split()
        if static:
            cmd = [c.replace("-llienthong", "-l:liblienthong.a") for c in cmd] + ["-lpthread"]
        r = run(cmd, env=env)
        self.assertEqual(r.returncode, 0, " ".join(cmd) + "\n" + r.stderr)
        needed = run(["objdump", "-p", exe]).stdout
        if static:
            self.assertNotIn("liblienthong.so", needed)
        else:
            self.assertRegex(needed, r"NEEDED\s+liblienthong\.so\.1\b")
        r = run([exe], env=dict(os.environ, LD_LIBRARY_PATH=rooted(
            os.path.join(PREFIX, libdir()))))
        self.assertEqual((r.returncode, r.stdout), (0, "BAD_SIGNATURE\n"), r.stderr)

    def test_a_program_builds_against_the_shared_library(self):
        self.build_and_run(static=False)

    def test_a_program_builds_against_the_static_library(self):
        self.build_and_run(static=True)


class Smoke(unittest.TestCase):
    """The installed service's flow, without systemd."""

    def setUp(self):
        self.broker = None
        self.notify = None

    def tearDown(self):
        if self.broker and self.broker.poll() is None:
            self.broker.kill()
            self.broker.wait(timeout=30)
        if self.notify:
            self.notify.close()

    def test_installed_broker_and_cli_carry_verified_records(self):
        lienthong = rooted(os.path.join(PREFIX, "bin/lienthong"))
        lienthongd = rooted(os.path.join(PREFIX, "sbin/lienthongd"))
        etc = os.path.join(WORK, "etc-lienthong")
        state = os.path.join(WORK, "var-lib-lienthong")
        os.mkdir(state, 0o750)
        r = run([lienthong, "dev-init", etc, "--state-dir", state])
        self.assertEqual(r.returncode, 0, r.stderr)

        # the test's own ports (the defaults may be taken on a shared machine)
        port, admin = free_port(), free_port()
        path = os.path.join(etc, "broker.yaml")
        with open(path) as f:
            text = f.read()
        text = text.replace("tcp://127.0.0.1:7400", "tcp://127.0.0.1:%d" % port)
        text = text.replace("listen: 127.0.0.1:7401", "listen: 127.0.0.1:%d" % admin)
        with open(path, "w") as f:
            f.write(text)
        for name in os.listdir(os.path.join(etc, "agencies")):
            p = os.path.join(etc, "agencies", name)
            with open(p) as f:
                t = f.read().replace("tcp://127.0.0.1:7400", "tcp://127.0.0.1:%d" % port)
            with open(p, "w") as f:
                f.write(t)

        r = run([lienthongd, "--check", "-c", path])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("OK (7 queues", r.stdout)
        self.assertFalse(os.path.exists(os.path.join(state, "data")))

        # the example the package ships is a valid config once its paths exist
        with open(rooted(os.path.join(PREFIX, "share/doc/lienthongd/examples/broker.yaml"))) as f:
            example = f.read()
        example = example.replace("/etc/lienthong/", etc + "/").replace(
            "/var/lib/lienthong", state)
        ex_path = os.path.join(etc, "example.yaml")
        with open(ex_path, "w") as f:
            f.write(example)
        r = run([lienthongd, "--check", "-c", ex_path])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        # start it as systemd would (Type=notify): readiness is the READY=1 datagram
        sock_path = os.path.join(WORK, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(sock_path)
        self.notify.settimeout(60)
        log = open(os.path.join(WORK, "lienthongd.log"), "w")
        self.broker = subprocess.Popen([lienthongd, "-c", path], stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=log,
                                       env=dict(os.environ, NOTIFY_SOCKET=sock_path))
        log.close()
        try:
            msg = self.notify.recv(256)
        except socket.timeout:
            self.fail("no READY=1 within 60 s; log: " + self.read_log())
        self.assertEqual(msg, b"READY=1")
        self.assertIsNone(self.broker.poll())
        self.assertTrue(os.path.exists(os.path.join(state, "admin.token")))

        data = os.path.join(ARGS.source_dir, "scripts/demo-data/khaisinh-quan1.jsonl")
        with open(data) as f:
            n = sum(1 for line in f if line.strip())
        r = run([lienthong, "pub", "-c", os.path.join(etc, "agencies/quan1.yaml"),
                 "-t", "79.760.hotich.khaisinh", "--type",
                 "lienthong.v1.records.BirthRegistration", "-f", data, "--batch", "2"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        acks = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
        self.assertEqual(len([a for a in acks if "seq" in a]), n, r.stdout)

        r = run([lienthong, "sub", "-c", os.path.join(etc, "agencies/dancu.yaml"),
                 "-q", "dancu.capnhat", "-n", str(n), "--timeout", "30"])
        self.assertEqual(r.returncode, 0, r.stderr)
        got = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
        self.assertEqual(len(got), n, r.stdout)
        for rec in got:
            self.assertTrue(rec["verified"], rec)
            self.assertEqual(rec["source"], "VN:GOV:000.00.00.H29.760:hotich")

        self.broker.send_signal(signal.SIGTERM)
        self.assertEqual(self.broker.wait(timeout=60), 0, self.read_log())
        self.assertIn("lienthongd: ready listen=tcp://127.0.0.1:%d" % port, self.read_log())

    def read_log(self):
        with open(os.path.join(WORK, "lienthongd.log")) as f:
            return f.read()


class Demo(unittest.TestCase):
    def test_the_demo_passes_against_the_installed_binaries(self):
        # scripts/demo-run runs BUILD_DIR/tools/lienthong and BUILD_DIR/broker/lienthongd:
        # a tree of links to the installed ones stands in for the build tree.
        fake = os.path.join(WORK, "installed-tree")
        os.makedirs(os.path.join(fake, "tools"))
        os.makedirs(os.path.join(fake, "broker"))
        os.symlink(rooted(os.path.join(PREFIX, "bin/lienthong")),
                   os.path.join(fake, "tools/lienthong"))
        os.symlink(rooted(os.path.join(PREFIX, "sbin/lienthongd")),
                   os.path.join(fake, "broker/lienthongd"))
        port = free_port()
        admin = free_port()
        env = dict(os.environ, LT_DEMO_PORT=str(port), LT_DEMO_ADMIN_PORT=str(admin))
        # its own session: the demo stops its broker itself; on a timeout the whole group goes
        p = subprocess.Popen([os.path.join(ARGS.source_dir, "scripts/demo-run"), fake,
                              os.path.join(WORK, "demo")], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env,
                             start_new_session=True)
        try:
            out, _ = p.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)
            self.fail("demo-run took more than 900 s")
        self.assertEqual(p.returncode, 0, out[-4000:])


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--cpack", required=True)
    ARGS, rest = ap.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
