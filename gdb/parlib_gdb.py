# gdb support for parlib's uthreads (docs/debugging.md).
#
#   info uthreads     every live uthread: id, name, state, vcore, where it waits
#   uthread bt ID     the backtrace of uthread ID (running or not)
#   uthread ID        select uthread ID's innermost frame (`up`, `info locals`,
#                     `frame N` then work in it); `uthread none` undoes it
#
# gdb loads this file by itself for libparlib.so (installed as
# share/gdb/auto-load/<libdir>/libparlib.so.<version>-gdb.py, and next to the
# library in a build tree). It needs no debug information: the library
# exports a descriptor, parlib_debug_uthreads (src/uthread/debug_registry.cpp),
# that leads to the list of live uthreads and says where each field is. A
# uthread that is not running is unwound from the registers its last switch
# saved, through a gdb unwinder, so this works on core files too, where gdb
# cannot write registers.
import struct

import gdb
import gdb.unwinder

_DESC_FIELDS = (
    "version", "uthread_size",
    "off_ctx", "off_tls", "off_state", "off_name", "off_sysc", "off_id", "off_next",
    "off_flags",
    "ctx_rsp", "ctx_rip", "ctx_rbx", "ctx_rbp", "ctx_r12", "ctx_r13", "ctx_r14", "ctx_r15",
    "tls_vcoreid", "sysc_num", "head", "count", "lock",
)
_DESC_VERSION = 1
_STATES = ("created", "running", "stopped", "runnable", "blocked", "exited")
_FLAG_THREAD0 = 1
# The system calls a uthread usually blocks in (x86-64 numbers).
_SYSCALLS = {
    0: "read", 1: "write", 7: "poll", 17: "pread64", 18: "pwrite64", 19: "readv",
    20: "writev", 23: "select", 35: "nanosleep", 42: "connect", 43: "accept",
    44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg", 74: "fsync",
    75: "fdatasync", 230: "clock_nanosleep", 232: "epoll_wait", 270: "pselect6",
    271: "ppoll", 288: "accept4",
}
# A uthread's "where": the outermost frame of its stack that is still in
# these libraries, i.e. the parlib call the program made (upthread_mutex_lock,
# read, ...).
_PARLIB_LIBS = ("libparlib.so", "libupthread.so", "libupthread-preload.so")


def _mem(addr, size):
    return gdb.selected_inferior().read_memory(addr, size).tobytes()


def _u64(addr):
    return struct.unpack("<Q", _mem(addr, 8))[0]


def _u32(addr):
    return struct.unpack("<I", _mem(addr, 4))[0]


def _cstring(addr, limit=64):
    if addr == 0:
        return None
    data = _mem(addr, limit)
    end = data.find(b"\0")
    return data[: end if end >= 0 else limit].decode("utf-8", "replace")


def _descriptor():
    try:
        addr = int(gdb.parse_and_eval("(unsigned long)&parlib_debug_uthreads"))
    except gdb.error:
        raise gdb.GdbError("no parlib here (parlib_debug_uthreads not found: "
                           "is libparlib.so loaded?)")
    values = struct.unpack("<%dQ" % len(_DESC_FIELDS), _mem(addr, 8 * len(_DESC_FIELDS)))
    d = dict(zip(_DESC_FIELDS, values))
    if d["version"] != _DESC_VERSION:
        raise gdb.GdbError("parlib_debug_uthreads version %d; this script reads version %d"
                           % (d["version"], _DESC_VERSION))
    d["tls_vcoreid"] = struct.unpack("<q", struct.pack("<Q", d["tls_vcoreid"]))[0]
    return d


class Uthread(object):
    def __init__(self, d, addr):
        self.addr = addr
        self.id = _u32(addr + d["off_id"])
        state = _u32(addr + d["off_state"])
        self.state = _STATES[state] if state < len(_STATES) else "corrupt(%d)" % state
        self.name = _cstring(_u64(addr + d["off_name"])) or "unnamed"
        self.tls = _u64(addr + d["off_tls"])
        self.thread0 = bool(_u32(addr + d["off_flags"]) & _FLAG_THREAD0)
        self.vcore = None
        if self.tls != 0:
            try:
                self.vcore = _u32(self.tls + d["tls_vcoreid"])
            except gdb.MemoryError:
                pass
        self.syscall = None
        sysc = _u64(addr + d["off_sysc"])
        if sysc != 0 and self.state == "blocked":
            num = _u64(sysc + d["sysc_num"])
            self.syscall = _SYSCALLS.get(num, "syscall %d" % num)
        ctx = addr + d["off_ctx"]
        self.regs = {reg: _u64(ctx + d["ctx_" + reg])
                     for reg in ("rsp", "rip", "rbx", "rbp", "r12", "r13", "r14", "r15")}


def _uthreads():
    d = _descriptor()
    out = []
    addr = d["head"]
    # Bounded: a list caught mid-change (a live process stopped while a
    # uthread was being created) or a damaged one must not loop forever.
    while addr != 0 and len(out) <= d["count"] + 16:
        out.append(Uthread(d, addr))
        addr = _u64(addr + d["off_next"])
    out.sort(key=lambda u: u.id)
    return d, out


def _find(ident):
    try:
        n = int(gdb.parse_and_eval(ident))
    except (gdb.error, ValueError):
        raise gdb.GdbError("usage: uthread [bt] ID (an id from `info uthreads`)")
    for u in _uthreads()[1]:
        if u.id == n:
            return u
    raise gdb.GdbError("no uthread %d (see `info uthreads`)" % n)


def _host_thread(u):
    """The gdb thread whose kernel task runs uthread u now, or None."""
    if u.state != "running" or u.tls == 0:
        return None
    inferior = gdb.selected_inferior()
    keep = gdb.selected_thread()
    found = None
    try:
        for t in inferior.threads():
            # The main task parks for good with thread0's TLS still loaded
            # once thread0 has moved to a vcore: it is not thread0's host.
            if u.thread0 and t.ptid[1] == inferior.pid:
                continue
            t.switch()
            if int(gdb.parse_and_eval("$fs_base")) == u.tls:
                found = t
                break
    finally:
        if keep is not None:
            keep.switch()
    return found


class _FrameId(object):
    # What create_unwind_info takes (gdb.unwinder.FrameId from gdb 14 on).
    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


class _UthreadUnwinder(gdb.unwinder.Unwinder):
    """While `regs` is set: frame 0 of thread `thread` has the uthread's
    saved context as its caller, so frames 1, 2, ... are the uthread's."""

    def __init__(self):
        super(_UthreadUnwinder, self).__init__("parlib-uthread")
        self.regs = None
        self.thread = None

    def __call__(self, pending):
        if self.regs is None or pending.level() != 0:
            return None
        current = gdb.selected_thread()
        if current is None or current.num != self.thread:
            return None
        # Frame 0's id gets stack address 0, never inner to the uthread's
        # frames: the uthread's stack may lie below this thread's, which gdb
        # would otherwise take for a corrupt stack.
        pc = pending.read_register("rip")
        info = pending.create_unwind_info(_FrameId(gdb.Value(0).cast(pending.read_register("rsp").type), pc))
        for reg, value in self.regs.items():
            info.add_saved_register(reg, gdb.Value(value).cast(pending.read_register(reg).type))
        return info


_unwinder = _UthreadUnwinder()


def _select_context(u):
    _unwinder.regs = dict(u.regs) if u is not None else None
    thread = gdb.selected_thread()
    _unwinder.thread = thread.num if thread is not None else None
    gdb.invalidate_cached_frames()


def _frame_line(n, f):
    pc = f.pc()
    name = f.name() or "??"
    sal = f.find_sal()
    line = "#%-3d 0x%016x in %s ()" % (n, pc, name)
    if sal.symtab is not None and sal.line:
        line += " at %s:%d" % (sal.symtab.filename, sal.line)
    else:
        lib = gdb.solib_name(pc)
        if lib:
            line += " from %s" % lib
    return line


def _saved_frames(u, limit):
    """The frames of uthread u (not running), innermost first."""
    _select_context(u)
    frames = []
    try:
        f = gdb.newest_frame().older()
        while f is not None and len(frames) < limit:
            frames.append(f)
            f = f.older()
        return frames
    except gdb.error:
        return frames


def _short(name):
    """A function's name without C++ namespaces, parameters or clone suffix:
    parlib::detail::(anonymous namespace)::cond_wait_common(uthread_cond*, ...)
    [clone .part.0] -> cond_wait_common."""
    name = name.split(" [clone")[0]
    depth = 0
    for i, c in enumerate(name):
        if c == "(" and i > 0 and depth == 0 and name[i - 1] not in ":(":
            name = name[:i]
            break
    return name.replace("(anonymous namespace)::", "").split("::")[-1]


def _where(u):
    if u.state == "running":
        host = _host_thread(u)
        return "running (gdb thread %d)" % host.num if host else "running"
    if u.state in ("exited",):
        return ""
    if u.state == "created":
        return "not started"
    where = None
    try:
        for f in _saved_frames(u, 64):
            lib = gdb.solib_name(f.pc()) or ""
            if any(lib.endswith(l) or (l + ".") in lib for l in _PARLIB_LIBS):
                where = _short(f.name()) if f.name() else where
            elif where is not None:
                break
    finally:
        _select_context(None)
    if u.syscall:
        where = "%s (system call %s)" % (where or "?", u.syscall)
    return where or ""


class InfoUthreads(gdb.Command):
    """List parlib's uthreads: id, name, state, vcore (the one it runs on or
last ran on) and where it waits (the parlib call it is blocked in).
Usage: info uthreads"""

    def __init__(self):
        super(InfoUthreads, self).__init__("info uthreads", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        d, uts = _uthreads()
        if d["lock"]:
            print("(the list was being changed when the program stopped: it may be incomplete)")
        rows = [("Id", "Name", "State", "Vcore", "Where")]
        for u in uts:
            rows.append((str(u.id), u.name, u.state,
                         "-" if u.vcore is None else str(u.vcore), _where(u)))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            print("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])


class UthreadCommand(gdb.Command):
    """Select a uthread's innermost frame: `uthread ID`. A running uthread
selects the gdb thread that runs it; any other one is unwound from its saved
registers, on top of the current thread's frame 0 (until `uthread none` or
the program continues). Subcommands: `uthread bt ID`."""

    def __init__(self):
        super(UthreadCommand, self).__init__("uthread", gdb.COMMAND_STACK, gdb.COMPLETE_NONE,
                                             True)

    def invoke(self, arg, from_tty):
        arg = arg.strip()
        if arg in ("none", ""):
            _select_context(None)
            return
        u = _find(arg)
        host = _host_thread(u)
        if host is not None:
            _select_context(None)
            gdb.execute("thread %d" % host.num)
            return
        if u.state in ("created", "exited"):
            raise gdb.GdbError("uthread %d (%s) is %s: it has no stack to show"
                               % (u.id, u.name, u.state))
        _select_context(u)
        gdb.execute("frame 1")
        print("[uthread %d (%s), %s; `uthread none` to leave it]" % (u.id, u.name, u.state))


class UthreadBt(gdb.Command):
    """Print the backtrace of uthread ID: uthread bt ID [LIMIT]"""

    def __init__(self):
        super(UthreadBt, self).__init__("uthread bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        args = arg.split()
        if not args:
            raise gdb.GdbError("usage: uthread bt ID [LIMIT]")
        limit = int(args[1]) if len(args) > 1 else 64
        u = _find(args[0])
        print("uthread %d (%s), %s, vcore %s:" % (u.id, u.name, u.state,
                                                   "-" if u.vcore is None else u.vcore))
        host = _host_thread(u)
        if host is not None:
            keep = gdb.selected_thread()
            host.switch()
            try:
                gdb.execute("backtrace %d" % limit)
            finally:
                keep.switch()
            return
        if u.state in ("created", "exited"):
            print("(%s: no stack)" % u.state)
            return
        keep = _unwinder.regs, _unwinder.thread
        try:
            for n, f in enumerate(_saved_frames(u, limit)):
                print(_frame_line(n, f))
        finally:
            _unwinder.regs, _unwinder.thread = keep
            gdb.invalidate_cached_frames()


def _on_cont(event):
    if _unwinder.regs is not None:
        _select_context(None)


def _register():
    # The runtime notifies vcores with SIGUSR1 (and interrupts helper
    # threads with SIGRTMAX): signals gdb would otherwise stop at, many times
    # a second.
    gdb.execute("handle SIGUSR1 nostop noprint pass", to_string=True)
    gdb.execute("handle SIG64 nostop noprint pass", to_string=True)
    gdb.unwinder.register_unwinder(None, _unwinder, replace=True)
    InfoUthreads()
    UthreadCommand()
    UthreadBt()
    gdb.events.cont.connect(_on_cont)


# Auto-loading runs this once per objfile that matches (each inferior, each
# reload): register the commands once per gdb session.
if not getattr(gdb, "_parlib_uthreads_loaded", False):
    gdb._parlib_uthreads_loaded = True
    _register()
