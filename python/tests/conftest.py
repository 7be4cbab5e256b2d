"""Harness for the iam_lib_pgconnect tests: the development appliance, a
broker of our own, and client scripts run as the real demo OS users.

The appliance (containers, pwfiles, demo users, its config) comes from
`scripts/test`, which sets IAM_TEST_ROOT and IAM_TEST_PREFIX; without them
the shared local one is brought up the way the Rust harness does it
(/tmp/iamtest-local, serialized with flock). The appliance runs no broker:
this session starts its own from a copy of the appliance's config with a
socket of its own, and kills it at the end.

The package is installed with pip from python/ into a folder of this run,
as a user would install it; the client scripts import it from there (the
test process itself imports python/src).

Tests run as root (Docker, the broker); every client runs as a demo user via
`setpriv`, so the broker sees a real identity through SO_PEERCRED. A script
is Python source on stdin that may set `result`; `run_as()` returns it, or
re-raises the exception the script raised (pickled across the process
boundary, so `pytest.raises(iam_lib_pgconnect.X)` works).
"""

import base64
import itertools
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

PYTHON_DIR = Path(__file__).resolve().parent.parent
REPO = PYTHON_DIR.parent

# The tests themselves import the package from the work tree; exceptions
# pickled by the clients (installed copy) unpickle as these same classes.
sys.path.insert(0, str(PYTHON_DIR / "src"))

READER = "iam-demo-reader"      # read on czechidm and bridge as postgres/czechidm/bridge
WRITER = "iam-demo-writer"      # write on czechidm as czechidm
NOBODY = "iam-demo-nobody"      # no rule
OPERATOR = "iam-demo-operator"  # group iam-demo-ops: read on czechidm as postgres

# The demo users must be able to run the interpreter: a pyenv one under
# /root is not reachable for them, Debian's is.
CLIENT_PYTHON = os.environ.get("IAM_TEST_CLIENT_PYTHON") or (
    "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable)

_RUNNER = r"""
import base64, contextlib, io, pickle, sys, traceback
out = io.StringIO()
ns = {"__name__": "__main__"}
try:
    with contextlib.redirect_stdout(out):
        exec(compile(sys.stdin.read(), "<client script>", "exec"), ns)
    payload = {"result": ns.get("result")}
except Exception as e:
    payload = {"error": e, "traceback": traceback.format_exc()}
payload["stdout"] = out.getvalue()
try:
    data = pickle.dumps(payload)
except Exception as e:
    data = pickle.dumps({"error": RuntimeError("unpicklable outcome %r: %s" % (payload, e)),
                         "stdout": out.getvalue()})
sys.stdout.write("\n@@payload@@" + base64.b64encode(data).decode())
"""

_names = itertools.count()


def unique(tag):
    """A name unique to this run: `py_{tag}_{pid}_{n}`."""
    return "py_%s_%d_%d" % (tag, os.getpid(), next(_names))


class Appliance:
    def __init__(self, root, prefix):
        self.root = Path(root)
        self.prefix = prefix

    def container(self, db):
        return "%s%s-db" % (self.prefix, db)

    def psql(self, sql, db="czechidm"):
        """SQL as the superuser inside the container, not through the broker:
        the ground truth to compare with. Returns psql's unaligned output."""
        out = subprocess.run(
            ["docker", "exec", "-u", "postgres", self.container(db),
             "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
            stdin=subprocess.DEVNULL, capture_output=True, text=True)
        assert out.returncode == 0, "psql %r failed: %s" % (sql, out.stderr)
        return out.stdout.rstrip("\n")


@pytest.fixture(scope="session")
def appliance():
    root = os.environ.get("IAM_TEST_ROOT")
    prefix = os.environ.get("IAM_TEST_PREFIX")
    if root is None or prefix is None:
        root, prefix = "/tmp/iamtest-local", "iamtest-local-"
    if not Path(root, "etc/config.toml").exists():
        env = dict(os.environ, IAM_DEV_ROOT=root, IAM_DEV_PREFIX=prefix, IAM_DEV_NO_BROKER="1")
        subprocess.run(
            ["flock", "/tmp/iamtest-appliance.lock", str(REPO / "scripts/dev-appliance"), "up"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True)
    return Appliance(root, prefix)


@pytest.fixture(scope="session")
def run_dir(appliance):
    """A folder of this run inside the appliance root (traversable by the
    demo users: the socket and the installed package live here)."""
    path = Path(tempfile.mkdtemp(prefix="pytest-", dir=appliance.root))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def site_dir(run_dir):
    """iam_lib_pgconnect installed by pip from python/ (built from a copy, so
    the build leaves nothing in the work tree)."""
    src = run_dir / "src"
    shutil.copytree(PYTHON_DIR, src, ignore=shutil.ignore_patterns(
        "tests", "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    site = run_dir / "site"
    subprocess.run(
        [CLIENT_PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--no-build-isolation", "--no-index", "--target", str(site), str(src)],
        check=True, stdin=subprocess.DEVNULL)
    for path in [site, *site.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return site


def _set_key(config, section, key, value):
    """`config` (TOML text) with `key` in table `[section]` set to the string
    `value`: replaced where the table has it, else added after the table's
    header. The appliance's config is generated with one key per line."""
    lines = config.splitlines()
    header, current = None, None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.strip("[]").strip()
            if stripped == "[%s]" % section:
                header = i
        elif current == section and stripped.split("=")[0].strip() == key:
            lines[i] = '%s = "%s"' % (key, value)
            break
    else:
        assert header is not None, "no [%s] in the appliance config" % section
        lines.insert(header + 1, '%s = "%s"' % (key, value))
    return "\n".join(lines) + "\n"


class Broker:
    def __init__(self, process, socket_path, log):
        self.process = process
        self.socket = socket_path
        self.log = log

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# Policy of the test brokers beyond the appliance's: the reader may also
# open "ghost", an instance without a container (the policy is checked
# first); iam-demo-nobody may read bridge when it gives a reason.
_EXTRA_POLICY = """
[[rule]]
name = "pytest-ghost"
users = ["iam-demo-reader"]
dbs = ["ghost"]
db_users = ["postgres"]
mode = "read"

[[rule]]
name = "pytest-reason"
users = ["iam-demo-nobody"]
dbs = ["bridge"]
db_users = ["bridge"]
mode = "read"
require_reason = true
"""


def start_broker(appliance, run_dir, name, **database):
    """A broker with the appliance's config and policy (plus _EXTRA_POLICY),
    its own socket, and the [database] settings given (e.g. pwfile=...)."""
    folder = run_dir / name
    folder.mkdir(mode=0o755)
    socket_path = folder / "pgbroker.sock"
    config = (appliance.root / "etc/config.toml").read_text()
    config = _set_key(config, "server", "socket", socket_path)
    for key, value in database.items():
        config = _set_key(config, "database", key, value)
    if re.search(r"^\[audit\]", config, re.M):
        # a hash-chained audit file is one broker's: never share it
        config = _set_key(config, "audit", "file", folder / "audit.jsonl")
        config = _set_key(config, "audit", "key_file", folder / "audit.key")
    (folder / "config.toml").write_text(config + _EXTRA_POLICY)
    # policy_dir is relative to the config's folder
    shutil.copytree(appliance.root / "etc/policy.d", folder / "policy.d")
    binary = os.environ.get("IAM_PGBROKER_BIN") or str(REPO / "target/debug/iam-pgbroker")
    log = folder / "broker.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [binary, "serve", "--config", str(folder / "config.toml")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    broker = Broker(process, socket_path, log)
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            pytest.fail("the broker exited (%s):\n%s" % (process.returncode, log.read_text()))
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(socket_path))
            return broker
        except OSError:
            if time.monotonic() > deadline:
                broker.stop()
                pytest.fail("the broker did not listen within 20 s:\n" + log.read_text())
            time.sleep(0.02)


@pytest.fixture(scope="session")
def broker(appliance, run_dir):
    b = start_broker(appliance, run_dir, "broker")
    yield b
    b.stop()


@pytest.fixture(scope="session")
def broker_without_pwfiles(appliance, run_dir):
    b = start_broker(appliance, run_dir, "no-pwfiles", pwfile="/nonexistent/{db}/{user}.pwfile")
    yield b
    b.stop()


class ClientScripts:
    """Runs client scripts as demo users against one broker."""

    def __init__(self, site, socket_path):
        self.site = site
        self.socket = socket_path

    def run(self, user, code, socket_path=None, env=None):
        """Runs `code` as OS user `user`; returns (result, stdout), or raises
        what the script raised."""
        environment = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/nonexistent",
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(self.site),
            "PYTHONDONTWRITEBYTECODE": "1",
            "IAM_PGBROKER_SOCKET": str(socket_path or self.socket),
        }
        environment.update(env or {})
        proc = subprocess.run(
            ["setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups", "--",
             CLIENT_PYTHON, "-c", _RUNNER],
            input=code, capture_output=True, text=True, env=environment, timeout=60)
        _, marker, data = proc.stdout.rpartition("@@payload@@")
        if proc.returncode != 0 or not marker:
            pytest.fail("client script as %s failed (exit %s):\n%s\n%s"
                        % (user, proc.returncode, proc.stdout, proc.stderr))
        payload = pickle.loads(base64.b64decode(data))
        if "error" in payload:
            error = payload["error"]
            error.client_traceback = payload.get("traceback")
            error.client_stdout = payload["stdout"]
            raise error
        return payload["result"], payload["stdout"]

    def result(self, user, code, **kw):
        return self.run(user, code, **kw)[0]


@pytest.fixture(scope="session")
def clients(site_dir, broker):
    return ClientScripts(site_dir, broker.socket)


@pytest.fixture
def scratch(appliance):
    """Creates tables in czechidm owned by the app user `czechidm` (whom
    iam-demo-writer may write as); drops them after the test."""
    made = []

    def create(tag, columns, rows=None):
        name = unique(tag)
        sql = "CREATE TABLE %s (%s); ALTER TABLE %s OWNER TO czechidm;" % (name, columns, name)
        if rows:
            sql += "INSERT INTO %s VALUES %s;" % (name, rows)
        appliance.psql(sql)
        made.append(name)
        return name

    yield create
    if made:
        appliance.psql("DROP TABLE IF EXISTS %s" % ", ".join(made))
