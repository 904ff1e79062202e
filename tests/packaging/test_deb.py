"""`make deb`'s package, installed onto this machine with dpkg and removed again: files,
owners and modes, the maintainer scripts, the unit as systemd reads it, the service's own
ExecStart running as `sen` and answering /metrics, and conffile handling on remove/purge
(Debian policy 10.7.3: remove keeps conffiles, purge deletes them)."""
import grp
import os
import pty
import pwd
import re
import shlex
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sen.paths import REPO

pytestmark = pytest.mark.slow
PKG = "sen-gateway"


def sh(*cmd, check=True, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    if check:
        assert res.returncode == 0, f"{cmd}: {res.stdout[-2000:]}{res.stderr[-2000:]}"
    return res


def installed_version():
    res = sh("dpkg-query", "-W", "-f=${Status}", PKG, check=False)
    return res.stdout if res.returncode == 0 else ""


@pytest.fixture(scope="module")
def deb():
    assert os.geteuid() == 0, "this test installs a Debian package: run the suite as root (CI does)"
    assert installed_version() in ("", "unknown ok not-installed") and not Path("/opt/sen").exists(), \
        "sen-gateway is already installed here; this test would replace it"
    had_user = subprocess.run(["getent", "passwd", "sen"], capture_output=True).returncode == 0
    env = dict(os.environ, PY=sys.executable)
    res = sh("sh", "packaging/deb/build.sh", cwd=REPO, env=env)
    path = Path(REPO / res.stdout.strip().splitlines()[-1])
    assert path.name.endswith("_amd64.deb") or path.name.endswith("_arm64.deb")
    yield path
    sh("dpkg", "--purge", PKG, check=False)
    if not had_user:
        sh("deluser", "--system", "sen", check=False)
        sh("delgroup", "--system", "sen", check=False)


def _mode(p):
    st = os.lstat(p)
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_install_run_remove_purge(deb, tmp_path):
    files = sh("dpkg-deb", "-c", str(deb)).stdout
    for f in ("./opt/sen/bin/sen", "./usr/bin/sen -> /opt/sen/bin/sen", "./etc/sen/gateway.toml",
              "./lib/systemd/system/sen-gateway.service", "./lib/systemd/system/sen-ingest.service",
              "./opt/sen/lib/python3.11/site-packages/sen/firmware/main.py", "./opt/sen/share/doc/gateway-operator-guide.md"):
        assert f in files, f
    assert sh("dpkg-deb", "-f", str(deb), "Package").stdout.strip() == PKG
    sh("dpkg-deb", "-e", str(deb), str(tmp_path / "control"))
    assert (tmp_path / "control" / "conffiles").read_text().split() == ["/etc/sen/gateway.toml"]

    sh("dpkg", "-i", str(deb))
    assert installed_version() == "install ok installed"
    # the system user, its state, the configuration's owner and modes
    user = pwd.getpwnam("sen")
    assert user.pw_uid < 1000 and user.pw_dir == "/var/lib/sen" and user.pw_shell.endswith("nologin")
    assert _mode("/etc/sen") == ("root", "sen", 0o750)
    assert _mode("/etc/sen/gateway.toml") == ("root", "sen", 0o640)
    assert _mode("/var/lib/sen") == ("sen", "sen", 0o750)
    assert _mode("/var/lib/sen/keys.json") == ("sen", "sen", 0o600)
    assert _mode("/opt/sen/bin/sen") == ("root", "root", 0o755)
    assert _mode("/lib/systemd/system/sen-gateway.service") == ("root", "root", 0o644)
    assert os.readlink("/usr/bin/sen") == "/opt/sen/bin/sen"
    assert sh("/usr/bin/sen", "--version").stdout.startswith("sen, version ")
    assert list(Path("/opt/sen/lib").rglob("__pycache__"))  # postinst compiled the bytecode
    # the unit as installed, read by systemd's own tools
    unit = Path("/lib/systemd/system/sen-gateway.service")
    res = sh("systemd-analyze", "verify", str(unit))
    assert res.stderr.strip() == "", res.stderr
    score = sh("systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)).stdout
    assert re.search(r"exposure level for \S+: (\d\.\d) OK", score), score[-500:]

    # the operator points the radio at a receiver board (here a pty) and picks free ports
    master, slave = pty.openpty()
    os.chown(os.ttyname(slave), user.pw_uid, -1)
    metrics, status = _free_port(), _free_port()
    conf = Path("/etc/sen/gateway.toml")
    text = conf.read_text()
    text = re.sub(r'\[\[radio\]\]\nbackend = "sx127x".*?board = "BOARD"\n',
                  f'[[radio]]\nbackend = "serial"\nname = "usb0"\nport = "{os.ttyname(slave)}"\n', text, flags=re.S)
    text = text.replace("port = 9108", f"port = {metrics}").replace("port = 8080", f"port = {status}")
    assert 'backend = "serial"' in text
    conf.write_text(text)
    # ExecStart of the installed unit, as its User= and in its WorkingDirectory=
    fields = dict(ln.split("=", 1) for ln in unit.read_text().splitlines() if "=" in ln and not ln.startswith("#"))
    assert fields["User"] == "sen"
    argv = shlex.split(fields["ExecStart"])
    proc = subprocess.Popen(["setpriv", "--reuid=sen", "--regid=sen", "--init-groups", "--", *argv],
                            cwd=fields["WorkingDirectory"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    try:
        deadline = time.monotonic() + 120
        body = ""
        while "sen_gateway_radio_received_total" not in body:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else ""
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5).read().decode()
            except OSError:
                time.sleep(0.5)
        uid = next(ln.split()[1] for ln in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                   if ln.startswith("Uid:"))
        assert int(uid) == user.pw_uid
        assert _mode("/var/lib/sen/data/gateway.db")[0] == "sen"
        proc.terminate()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        os.close(slave)

    # remove: the program goes, the edited conffile and the data stay
    sh("dpkg", "-r", PKG)
    assert not Path("/opt/sen").exists() and not Path("/usr/bin/sen").exists()
    assert conf.read_text() == text
    assert Path("/var/lib/sen/data/gateway.db").exists()
    assert installed_version() == "deinstall ok config-files"
    # purge: the conffile and the data go too
    sh("dpkg", "-P", PKG)
    assert not conf.exists() and not Path("/var/lib/sen").exists()
    assert installed_version() in ("", "unknown ok not-installed")
