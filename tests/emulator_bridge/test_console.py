"""The console as a MicroPython ESP32 presents it: what mpremote and people rely on."""
import re
import time

from .emu import read_quiet, read_until

BANNER = re.compile(rb"MicroPython v1\.27\.0 on \d{4}-\d\d-\d\d; LILYGO TTGO LoRa32 V2\.1 \(T3 V1\.6\.1\) with ESP32\r\n"
                    rb"Type \"help\(\)\" for more information\.\r\n>>> ")


def put(emu, name, text):
    (emu.flash / name).write_text(text)


def test_raw_paste_refused_and_raw_repl_works(emu):
    with emu.serial() as s:
        s.write(b"\r\x03\r\x01")
        read_until(s, b"raw REPL; CTRL-B to exit\r\n>")
        s.write(b"\x05A\x01")
        assert read_until(s, b"R\x00", timeout=5).endswith(b"R\x00")
        s.write(b"print('a')\nprint('b')\x04")
        out = read_until(s, b"\x04>")
        assert out.endswith(b"OKa\r\nb\r\n\x04\x04>")
        s.write(b"\r\x02")
        read_until(s, b">>> ")


def test_output_is_crlf(emu):
    with emu.serial() as s:
        s.write(b"\r\x03")
        read_quiet(s)
        s.write(b"print('x\\ny\\nz')\r")
        out = read_until(s, b"z\r\n>>> ")
        assert b"x\r\ny\r\nz\r\n" in out
        assert re.search(rb"[^\r]\n", out) is None


def test_soft_reset_fresh_vm_boot_and_main(emu):
    put(emu, "boot.py", "print('BOOT ran')\n")
    put(emu, "main.py", "print('MAIN ran')\nmarker = 1\n")
    try:
        with emu.serial() as s:
            s.write(b"\r\x03")
            read_quiet(s)
            s.write(b"leftover = 5\r")
            read_until(s, b">>> ")
            s.write(b"\x04")  # friendly REPL: boot.py, main.py, banner
            out = read_until(s, b">>> ")
            assert out.startswith(b"\r\nMPY: soft reboot\r\nBOOT ran\r\nMAIN ran\r\n"), out
            assert BANNER.search(out), out
            s.write(b"print('leftover' in globals(), marker)\r")
            assert b"False 1\r\n" in read_until(s, b">>> ")
            s.write(b"\x01")  # raw REPL: soft reset runs boot.py only, stays raw
            read_until(s, b"raw REPL; CTRL-B to exit\r\n>")
            s.write(b"\x04")
            out = read_until(s, b"raw REPL; CTRL-B to exit\r\n>")
            assert out == b"OK\r\nMPY: soft reboot\r\nBOOT ran\r\nraw REPL; CTRL-B to exit\r\n>", out
            s.write(b"\x02")
            read_until(s, b">>> ")
    finally:
        (emu.flash / "boot.py").unlink()
        (emu.flash / "main.py").unlink()


def test_firmware_exception_prints_traceback_and_repl_stays_up(emu):
    put(emu, "main.py", "import os\n\ndef f():\n    return 1 / 0\n\nf()\n")
    try:
        with emu.serial() as s:
            s.write(b"\r\x03")
            read_quiet(s)
            s.write(b"\x04")
            out = read_until(s, b">>> ")
            assert (b'Traceback (most recent call last):\r\n  File "main.py", line 6, in <module>\r\n'
                    b'  File "main.py", line 4, in f\r\nZeroDivisionError: divide by zero\r\n') in out, out
            assert BANNER.search(out)
            s.write(b"print(40 + 2)\r")
            assert b"42\r\n>>> " in read_until(s, b"42\r\n>>> ")
        assert emu.mp("eval", "1 + 1") == "2\n"
    finally:
        (emu.flash / "main.py").unlink()


def test_port_closed_mid_command_keeps_serving(emu):
    # Close the port in the middle of a raw-REPL command, and while the board is still
    # pouring out output that nobody reads; the emulator keeps serving the next client.
    s = emu.serial()
    s.write(b"\r\x03\r\x01")
    read_until(s, b"raw REPL; CTRL-B to exit\r\n>")
    s.write(b"with open('half.txt', 'w') as f:\n f.write('par")
    s.close()
    s = emu.serial()
    s.write(b"\r\x02for i in range(3000): print('spam spam spam spam spam spam spam', i)\r\r")
    s.close()
    assert emu.alive()
    assert emu.mp("exec", "print('still here')") == "still here\n"
    assert "half.txt" not in emu.mp("fs", "ls")
    assert emu.alive()


def test_ctrl_c_interrupts_sleeping_main_loop(emu):
    put(emu, "main.py", "import time\nn = 0\nwhile True:\n    n += 1\n    time.sleep_ms(1000)\n")
    try:
        emu.mp("reset")  # hard reset: main.py loops for ever, in virtual seconds
        time.sleep(0.3)
        t0 = time.monotonic()
        out = emu.mp("resume", "exec", "print(n > 0, type(n).__name__)")
        assert out == "True int\n"
        assert time.monotonic() - t0 < 5
        emu.mp("reset")
        time.sleep(0.2)
        with emu.serial() as s:
            s.write(b"\r\x03")
            out = read_until(s, b">>> ")
            assert b'File "main.py", line 5, in <module>\r\nKeyboardInterrupt: \r\n' in out, out
            assert BANNER.search(out)
        # and plain mpremote (soft reset first) gets in too
        emu.mp("reset")
        time.sleep(0.2)
        assert emu.mp("exec", "print('in')") == "in\n"
    finally:
        (emu.flash / "main.py").unlink()
        emu.mp("soft-reset")
