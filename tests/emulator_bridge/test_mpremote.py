"""Real mpremote against `sen emulate`'s port: exec, eval, run, and the fs commands."""
import hashlib

from .emu import Emulator


def test_exec_eval_run(emu, tmp_path):
    assert emu.mp("exec", "print('hello', 6 * 7)") == "hello 42\n"
    assert emu.mp("eval", "sum(range(10))") == "45\n"
    # a 3 kB script, sent by mpremote in 256-byte raw-REPL chunks (raw paste is refused)
    body = "".join(f"v{i} = {i} * 3  # padding padding padding\n" for i in range(80))
    script = tmp_path / "script.py"
    script.write_text(body + "print('sum', v1 + v79)\n")
    assert len(script.read_bytes()) > 3000
    assert emu.mp("run", str(script)) == "sum 240\n"


def test_fs_commands(emu, tmp_path):
    src = tmp_path / "cfg.json"
    data = b'{"node": 7, "period_s": 900}\n' * 40
    src.write_bytes(data)
    emu.mp("fs", "mkdir", "etc")
    out = emu.mp("fs", "cp", str(src), ":etc/cfg.json")
    assert "Up to date" not in out
    assert "Up to date: etc/cfg.json" in emu.mp("fs", "cp", str(src), ":etc/cfg.json")
    ls = emu.mp("fs", "ls", "etc")
    assert f"{len(data):>12} cfg.json" in ls
    assert emu.mp("fs", "cat", "etc/cfg.json").encode() == data
    assert hashlib.sha256(data).hexdigest() in emu.mp("fs", "sha256sum", "etc/cfg.json")
    # the file is really on the host side, byte for byte
    assert (emu.flash / "etc" / "cfg.json").read_bytes() == data
    emu.mp("fs", "touch", "etc/empty")
    assert (emu.flash / "etc" / "empty").read_bytes() == b""
    back = tmp_path / "back.json"
    emu.mp("fs", "cp", ":etc/cfg.json", str(back))
    assert back.read_bytes() == data
    emu.mp("fs", "rm", "etc/cfg.json")
    emu.mp("fs", "rm", "etc/empty")
    emu.mp("fs", "rmdir", "etc")
    assert "etc" not in emu.mp("fs", "ls")
    assert not (emu.flash / "etc").exists()


def test_cp_recursive_folder(emu, tmp_path):
    pkg = tmp_path / "drivers"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("A = 1\n")
    (pkg / "sub" / "b.py").write_text("B = 2\n")
    emu.mp("fs", "cp", "-r", str(pkg), ":")
    assert (emu.flash / "drivers" / "sub" / "b.py").read_text() == "B = 2\n"
    # modules import from the flash through the VFS, as on the board
    out = emu.mp("exec", "import sys; sys.path.append('/drivers'); import a; from sub import b; print(a.A + b.B)")
    assert out == "3\n"
    assert "Up to date" in emu.mp("fs", "cp", "-r", str(pkg), ":")
    emu.mp("fs", "rm", "-r", "drivers")
    assert not (emu.flash / "drivers").exists()


def test_errors_have_esp32_errno(emu):
    out = emu.mp("fs", "cat", "no/such/file", check=False)
    assert "No such file or directory" in out
    out = emu.mp("exec", "open('missing.txt')", check=False)
    assert "OSError: [Errno 2] ENOENT" in out
    emu.mp("fs", "mkdir", "dup")
    assert "File exists" in emu.mp("fs", "mkdir", "dup", check=False)
    emu.mp("exec", "open('dup/f', 'w').write('x')")
    out = emu.mp("exec", "import os; os.rmdir('dup')", check=False)
    assert "OSError: 39" in out or "ENOTEMPTY" in out
    emu.mp("fs", "rm", "-r", "dup")
    # Emscripten's numbers (44 = its ENOENT) must never reach the user
    assert "44" not in emu.mp("exec", "import os\ntry:\n os.stat('x/y')\nexcept OSError as e:\n print(e.errno)")


def test_text_and_binary_file_api(emu):
    code = (
        "f = open('t.txt', 'w'); f.write('one\\ntwo\\n'); f.close()\n"
        "with open('t.txt', 'a') as f: print('three', file=f)\n"
        "print(open('t.txt').readlines())\n"
        "with open('t.txt', 'rb') as f:\n f.seek(4); print(f.read(3), f.tell())\n"
        "print([ln for ln in open('t.txt')][-1])\n"
        "import os; print(os.stat('t.txt')[6]); os.rename('t.txt', 'u.txt'); print(os.listdir())\n"
        "os.remove('u.txt')\n"
    )
    out = emu.mp("exec", code)
    assert out == "['one\\n', 'two\\n', 'three\\n']\nb'two' 7\nthree\n\n14\n['u.txt']\n"


def test_mount_imports_a_module_and_reads_files_from_the_host(emu, tmp_path):
    """`mpremote mount` runs its own protocol over the console: the firmware reads
    sys.stdin.buffer, polls it with select, and turns Ctrl-C off while bytes such as 0x03
    and 0x18 go by as data."""
    (tmp_path / "mountmod.py").write_text("X = 42\ndef hello():\n    return 'hi from /remote'\n")
    blob = bytes(range(256)) * 3
    (tmp_path / "blob.bin").write_bytes(blob)
    (tmp_path / "notes.txt").write_text("line one\nline two\n")
    out = emu.mp("mount", str(tmp_path), "exec",
                 "import os, hashlib, binascii, mountmod\n"
                 "print(os.getcwd(), mountmod.X, mountmod.hello())\n"
                 "print(repr(open('notes.txt').read()))\n"
                 "b = open('blob.bin', 'rb').read()\n"
                 "print(len(b), binascii.hexlify(hashlib.sha256(b).digest()).decode())\n"
                 "print(sorted(os.listdir()))", timeout=60)
    import hashlib
    assert "/remote 42 hi from /remote" in out
    assert repr("line one\nline two\n") in out
    assert f"{len(blob)} {hashlib.sha256(blob).hexdigest()}" in out
    assert "['blob.bin', 'mountmod.py', 'notes.txt']" in out
    # Ctrl-C is a keystroke again afterwards, and the board still answers
    assert emu.mp("exec", "import micropython; print(6 * 7)").strip().endswith("42")


def test_console_poll_without_input_returns_at_once(emu):
    """A firmware loop polling the console (the receiver board's) must not block on it."""
    out = emu.mp("exec", "import sys, select\np = select.poll()\np.register(sys.stdin, select.POLLIN)\n"
                         "print('ready' if p.poll(0) else 'empty', len(p.poll(20)))", timeout=30)
    assert "empty 0" in out
