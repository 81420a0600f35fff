"""A pseudo-terminal driver for the interactive `hermes` (tests/e2e/test_repl.py).

The binary runs on the slave side of a pty (its controlling terminal, so Ctrl+C typed into the
master becomes SIGINT from the tty driver, as at a real keyboard). A reader thread collects the
output; `expect` waits for text to appear in it with escape sequences removed.
"""
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import threading
import time
import unicodedata

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]|[\x01\x07]")


def strip_ansi(text):
    return ANSI.sub("", text).replace("\r", "")


def char_width(ch):
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


class Screen:
    """Just enough of an xterm to know what the user sees: printing with autowrap (the
    cursor waits at the last column), CR/LF/BS/TAB, scrolling into a scrollback, and the CSI
    sequences line editors use (cursor moves, erase, insert/delete characters, insert mode).
    """

    CSI = re.compile(r"\x1b\[([0-9;?]*)([ -/]*)([@-~])")

    def __init__(self, cols, rows):
        self.cols, self.rows = cols, rows
        self.lines = [self._blank() for _ in range(rows)]
        self.scrollback = []
        self.x = self.y = 0
        self.pending = False
        self.insert = False
        self.saved = (0, 0)

    def _blank(self):
        return [" "] * self.cols

    def _lf(self):
        self.pending = False
        if self.y == self.rows - 1:
            self.scrollback.append(self.lines.pop(0))
            self.lines.append(self._blank())
        else:
            self.y += 1

    def _put(self, ch):
        w = char_width(ch)
        if w == 0:
            return
        if self.pending or self.x + w > self.cols:
            self.x = 0
            self._lf()
        line = self.lines[self.y]
        if self.insert:
            line[self.x:self.x] = [" "] * w
            del line[self.cols:]
        line[self.x] = ch
        if w == 2:
            line[self.x + 1] = ""
        self.x += w
        if self.x >= self.cols:
            self.x = self.cols - 1
            self.pending = True

    def _csi(self, params, final):
        private = params.startswith("?")
        nums = [int(p) if p.isdigit() else 0 for p in params.lstrip("?").split(";")] if params \
            else []
        n = nums[0] if nums and nums[0] else 1
        line = self.lines[self.y]
        self.pending = False if final not in "m" else self.pending
        if final == "A":
            self.y = max(0, self.y - n)
        elif final == "B":
            self.y = min(self.rows - 1, self.y + n)
        elif final == "C":
            self.x = min(self.cols - 1, self.x + n)
        elif final == "D":
            self.x = max(0, self.x - n)
        elif final == "G":
            self.x = min(self.cols - 1, n - 1)
        elif final in "Hf":
            self.y = min(self.rows - 1, (nums[0] if nums and nums[0] else 1) - 1)
            self.x = min(self.cols - 1, (nums[1] if len(nums) > 1 and nums[1] else 1) - 1)
        elif final == "J":
            mode = nums[0] if nums else 0
            if mode == 0:
                line[self.x:] = [" "] * (self.cols - self.x)
                for y in range(self.y + 1, self.rows):
                    self.lines[y] = self._blank()
            elif mode == 1:
                line[:self.x + 1] = [" "] * (self.x + 1)
                for y in range(0, self.y):
                    self.lines[y] = self._blank()
            elif mode == 2:
                self.lines = [self._blank() for _ in range(self.rows)]
            elif mode == 3:
                self.scrollback = []
        elif final == "K":
            mode = nums[0] if nums else 0
            if mode == 0:
                line[self.x:] = [" "] * (self.cols - self.x)
            elif mode == 1:
                line[:self.x + 1] = [" "] * (self.x + 1)
            else:
                self.lines[self.y] = self._blank()
        elif final == "P":
            del line[self.x:self.x + n]
            line.extend([" "] * (self.cols - len(line)))
        elif final == "@":
            line[self.x:self.x] = [" "] * n
            del line[self.cols:]
        elif final == "X":
            line[self.x:self.x + n] = [" "] * min(n, self.cols - self.x)
        elif final in "hl" and not private and 4 in nums:
            self.insert = final == "h"

    def feed(self, text):
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "\x1b":
                m = self.CSI.match(text, i)
                if m:
                    self._csi(m.group(1), m.group(3))
                    i = m.end()
                    continue
                if text[i + 1:i + 2] == "7":
                    self.saved = (self.x, self.y)
                elif text[i + 1:i + 2] == "8":
                    self.x, self.y = self.saved
                i += 2 if text[i + 1:i + 2] not in ("(", ")") else 3
                continue
            if ch == "\r":
                self.x = 0
                self.pending = False
            elif ch == "\n":
                self._lf()
            elif ch == "\b":
                self.x = max(0, self.x - 1)
                self.pending = False
            elif ch == "\t":
                self.x = min(self.cols - 1, (self.x // 8 + 1) * 8)
            elif ch < " " or ch == "\x7f":
                pass
            else:
                self._put(ch)
            i += 1

    def text(self):
        rows = self.scrollback + self.lines
        out = ["".join(r).rstrip() for r in rows]
        while out and not out[-1]:
            out.pop()
        return "\n".join(out)

    def cursor_line(self):
        return "".join(self.lines[self.y]).rstrip()


class Repl:
    def __init__(self, argv, env, cols=100, rows=40, cwd=None):
        self.cols, self.rows = cols, rows
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = dict(env)
        env.setdefault("TERM", "xterm")
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     cwd=cwd, start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.raw = b""
        self.lock = threading.Lock()
        self.mark = 0  # expect() looks at output after this offset
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            try:
                r, _, _ = select.select([self.master], [], [], 0.5)
            except (OSError, ValueError):
                return
            if not r:
                if self.proc.poll() is not None:
                    return
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.raw += data

    def text(self, since=0):
        with self.lock:
            raw = self.raw
        return strip_ansi(raw.decode("utf-8", "replace"))[since:]

    def screen(self):
        """What the terminal shows now (scrollback included), as text."""
        with self.lock:
            raw = self.raw
        sc = Screen(self.cols, self.rows)
        sc.feed(raw.decode("utf-8", "replace"))
        return sc

    def expect_screen(self, pattern, timeout=20.0):
        """Wait until pattern matches the emulated screen (scrollback included)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen().text()
            m = re.compile(pattern, re.S | re.M).search(text)
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {pattern!r} on screen:\n"
                                     f"{text[-3000:]}")
            time.sleep(0.05)

    def expect(self, pattern, timeout=20.0, since=None):
        """Wait until pattern (a regex) appears after `since` (default: the mark); move the
        mark past the match and return the match."""
        start = self.mark if since is None else since
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            m = re.compile(pattern, re.S).search(text, start)
            if m:
                self.mark = m.end()
                return m
            if time.monotonic() > deadline or (self.proc.poll() is not None
                                               and not self.reader.is_alive()):
                raise AssertionError(f"timed out waiting for {pattern!r}; output after "
                                     f"mark:\n{text[start:][-3000:]}")
            time.sleep(0.02)

    def send(self, s):
        os.write(self.master, s.encode() if isinstance(s, str) else s)

    def line(self, s):
        """Type s and press Enter (a carriage return, as a keyboard sends)."""
        self.send(s)
        time.sleep(0.05)  # let the line editor echo before Enter (only cosmetic)
        self.send("\r")

    def ctrl_c(self):
        self.send("\x03")

    def ctrl_d(self):
        self.send("\x04")

    def wait_exit(self, timeout=20.0):
        try:
            return self.proc.wait(timeout)
        finally:
            self.reader.join(2)

    def close(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)
        self.reader.join(2)
        try:
            os.close(self.master)
        except OSError:
            pass
