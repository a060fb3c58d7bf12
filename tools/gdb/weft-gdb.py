# weft-gdb.py: gdb commands for programs that use weft (the way Go's
# runtime-gdb.py serves goroutines).
#
#   info weft-tasks          every live task of every running runtime
#   weft-bt ID|0xRECORD|all [ARGS]
#                            the backtrace of one task (or of all), suspended
#                            or running;
#                            ARGS go to gdb's `bt` (e.g. `full`, `-frame-arguments all`)
#
# Loaded automatically for a program linked with libweft.so once it is
# installed (DATADIR/gdb/auto-load/LIBDIR/libweft.so.X.Y.Z-gdb.py, gdb's
# objfile-gdb.py convention), or by hand: `source tools/gdb/weft-gdb.py`
# (needed for a program linked with libweft.a). docs/observability.md shows
# both, with real output.
#
# How the tasks are found (docs/design.md, "The gdb extension"): the process-
# wide list of running runtimes `weft__registry` (src/registry.h) ->
# each runtime's `workers` array -> each worker's record pool
# (`records.slabs`: slabs of 64 records, src/record.c; a record whose
# `freed` is 0 is a task), plus each runtime's `main` task and the records
# of tasks submitted from other threads (`foreign.tasks`, src/foreign.c).
# Everything is read by field name through the library's debug information
# (a RelWithDebInfo or Debug build), never by offset: src/record.h,
# src/registry.h, src/sched/runtime.h, src/sched/worker.h and src/record.c
# say so where those fields are declared.
#
# How a suspended task's backtrace is taken: its saved context is a stack
# pointer (struct weft_task.ctx.sp) under which weft__ctx_switch pushed the
# callee-saved registers and the resume address (src/ctx/*.S). weft-bt loads
# those into the selected thread's innermost frame ($pc, $sp, $rbp, $rbx,
# $r12-$r15 on x86-64; pc, sp, x19-x30 on AArch64; the ucontext_t's
# registers in a WEFT_CTX=ucontext build on x86-64), runs `bt` there and puts
# every register back, whatever happens. It needs a live, stopped process in
# all-stop mode (a core file's registers cannot be written: there weft-bt
# prints the task's resume address only). A running task's backtrace is its
# thread's: weft-bt finds the thread whose stack pointer lies in the task's
# stack and runs `bt` on it.
#
# Reading a process whose threads are stopped at arbitrary points is racy by
# nature: a record or list being changed when the process stopped may show
# stale values. Nothing here writes to the inferior's memory.

import struct

import gdb

_STATE_BITS = (
    (1 << 0, "S", "SCHEDULED"),
    (1 << 1, "N", "NOTIFIED"),
    (1 << 2, "C", "CANCEL"),
    (1 << 3, "X", "COMPLETE"),
    (1 << 4, "J", "JOINED"),
)
_ST_SCHEDULED = 1 << 0
_ST_COMPLETE = 1 << 3
_SLAB = 64  # TASK_SLAB in src/record.c


class WeftError(Exception):
    pass


def _field_offset(typ, name):
    """Byte offset of field `name` in struct type `typ`."""
    for f in typ.strip_typedefs().fields():
        if f.name == name:
            return f.bitpos // 8
    raise WeftError("no field %s in %s (debug information out of step with "
                    "tools/gdb/weft-gdb.py?)" % (name, typ))


def _has_field(typ, name):
    return any(f.name == name for f in typ.strip_typedefs().fields())


def _lookup_type(name):
    try:
        return gdb.lookup_type(name)
    except gdb.error:
        return None


def _registry():
    """The value of weft__registry, or None when no weft is loaded."""
    sym = gdb.lookup_global_symbol("weft__registry")
    if sym is None:
        try:
            return gdb.parse_and_eval("weft__registry")
        except gdb.error:
            return None
    return sym.value()


def _list_nodes(head):
    """Addresses (ints) of the nodes of a weft__list_t whose head is the
    value `head`, bounded in case the process stopped mid-update."""
    head_addr = int(head.address)
    node = head["next"]
    seen = 0
    while int(node) != head_addr and int(node) != 0:
        yield int(node)
        node = node["next"]
        seen += 1
        if seen > 1000000:
            raise WeftError("list at 0x%x looks corrupt" % head_addr)


def _runtimes():
    reg = _registry()
    if reg is None:
        raise WeftError("no weft__registry: is the program linked with weft, "
                        "built with debug information, and running?")
    rt_type = _lookup_type("struct weft_runtime")
    if rt_type is None:
        raise WeftError("no debug information for struct weft_runtime")
    off = _field_offset(rt_type, "reg_link")
    ptr = rt_type.pointer()
    for node in _list_nodes(reg["runtimes"]):
        yield gdb.Value(node - off).cast(ptr).dereference()


def _slab_records(slab_ptr, task_type):
    """The records of every slab in the chain starting at slab_ptr."""
    slab_type = _lookup_type("struct task_slab")
    if slab_type is not None:
        sp = slab_type.pointer()
        s = slab_ptr.cast(sp)
        while int(s) != 0:
            recs = s["recs"]
            for i in range(_SLAB):
                yield recs[i]
            s = s["next"]
        return
    # No debug information for record.c's slab type: its layout is a next
    # pointer followed by the records, 64-byte aligned.
    tp = task_type.pointer()
    vp = gdb.lookup_type("void").pointer().pointer()
    addr = int(slab_ptr)
    while addr:
        first = addr + 64
        for i in range(_SLAB):
            yield gdb.Value(first + i * task_type.sizeof).cast(tp).dereference()
        addr = int(gdb.Value(addr).cast(vp).dereference())


class Task(object):
    """What `info weft-tasks` shows of one record."""

    def __init__(self, rt, rt_index, t, running_on, worker_of):
        self.worker_of = worker_of  # worker address -> index
        self.rt = rt
        self.rt_index = rt_index
        self.t = t
        self.addr = int(t.address)
        self.id = int(t["id"])
        self.state = int(t["state"])
        self.started = int(t["started"])
        self.running_on = running_on  # worker index, or None

    def name(self):
        t = self.t
        try:
            if int(t["name_state"]) == 2:
                return t["name"].string(length=-1)
        except (gdb.error, UnicodeDecodeError):
            pass
        return "task-%d" % self.id

    def state_word(self):
        if self.state & _ST_COMPLETE:
            return "done"
        if self.running_on is not None:
            return "running"
        if self.state & _ST_SCHEDULED:
            return "ready" if self.started else "new"
        return "waiting"

    def bits(self):
        s = "".join(c for bit, c, _ in _STATE_BITS if self.state & bit)
        return s or "-"

    def stack(self):
        """(lo, top) of its stack, or None."""
        s = self.t["stack"]
        if int(s) == 0:
            return None
        lo = int(s["lo"])
        return lo, lo + int(s["usable"])

    def saved_sp(self):
        """The saved stack pointer of a suspended task, or None."""
        if not self.started or self.running_on is not None or \
                self.state & _ST_COMPLETE or self.stack() is None:
            return None
        ctx = self.t["ctx"]
        if _has_field(ctx.type, "sp"):
            return int(ctx["sp"])
        try:  # ucontext build, x86-64
            return int(ctx["uc"]["uc_mcontext"]["gregs"][15])
        except gdb.error:
            return None

    def home(self):
        """Index of its home worker, or None (main, submitted tasks)."""
        h = int(self.t["home"])
        return self.worker_of.get(h) if h else None

    def extras(self):
        """Fields other parts of weft may add to the record: anything named
        wait* and the parent task, shown when set (scalars and pointers;
        an enum shows its enumerator's name)."""
        out = []
        # A yield notes only its kind and time (src/waitnote.h): the object
        # and deadline fields still hold an earlier wait's.
        stale = ()
        try:
            if int(self.t["wait_kind"]) == _wait_yield():
                stale = ("wait_obj", "wait_deadline_ms")
        except gdb.error:
            pass
        for n in _extra_fields(self.t.type):
            if n in stale:
                continue
            try:
                v = self.t[n]
                code = v.type.strip_typedefs().code
                if code == gdb.TYPE_CODE_PTR:
                    if int(v) == 0:
                        continue
                    text = "0x%x" % int(v)
                elif code == gdb.TYPE_CODE_ENUM:
                    if int(v) == 0:
                        continue
                    text = str(v)
                elif code in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_BOOL,
                              gdb.TYPE_CODE_CHAR):
                    if int(v) == 0:
                        continue
                    text = str(int(v))  # a uint8_t would print as a char
                    if n == "wait_kind":  # kept in a byte: name it
                        try:
                            kind = gdb.lookup_type("weft_wait_kind_t")
                            text = str(gdb.Value(int(v)).cast(kind))
                        except gdb.error:
                            pass
                else:
                    continue  # a struct, union or array: too long for a row
                out.append("%s=%s" % (n, text))
            except (gdb.error, RuntimeError):
                continue
        return out


_extra_cache = {}


def _forget_types(event):
    # A new program or library may define struct weft_task differently.
    _extra_cache.clear()


def _wait_yield():
    """WEFT_WAIT_YIELD's value (looked up once per program)."""
    if "yield" not in _extra_cache:
        _extra_cache["yield"] = int(gdb.parse_and_eval("WEFT_WAIT_YIELD"))
    return _extra_cache["yield"]


gdb.events.new_objfile.connect(_forget_types)


def _extra_fields(typ):
    """Names of the record's fields that extras() shows (looked up once)."""
    key = str(typ.strip_typedefs())
    if key not in _extra_cache:
        _extra_cache[key] = [
            f.name for f in typ.strip_typedefs().fields()
            if f.name and (f.name.startswith("wait") or
                           f.name in ("parent", "blocked_on"))]
    return _extra_cache[key]


def _tasks():
    """Every live task record of every running runtime, as Task."""
    task_type = _lookup_type("struct weft_task")
    if task_type is None:
        raise WeftError("no debug information for struct weft_task")
    for rt_index, rt in enumerate(_runtimes()):
        n = int(rt["nworkers"])
        workers = rt["workers"]
        current = {}
        worker_of = {}
        for i in range(n):
            worker_of[int(workers[i].address)] = i
            cur = workers[i]["own"]["current"]
            if int(cur):
                current[int(cur)] = i
        seen = set()

        def make(t):
            a = int(t.address)
            if a in seen or int(t["freed"]) != 0:
                return None
            seen.add(a)
            return Task(rt, rt_index, t, current.get(a), worker_of)

        found = []
        main = rt["main"]
        if int(main):
            x = make(main.dereference())
            if x:
                found.append(x)
        for i in range(n):
            slabs = workers[i]["records"]["slabs"]
            for t in _slab_records(slabs, task_type):
                x = make(t)
                if x:
                    found.append(x)
        rec_type = _lookup_type("struct foreign_rec")
        if rec_type is not None:
            off = _field_offset(rec_type, "link")
            # The record is the first field of foreign_rec (foreign.c).
            tp = task_type.pointer()
            for node in _list_nodes(rt["foreign"]["tasks"]):
                x = make(gdb.Value(node - off).cast(tp).dereference())
                if x:
                    found.append(x)
        found.sort(key=lambda x: (x.id, x.addr))
        yield rt_index, rt, found


def _human(n):
    if n < 1024:
        return "%d B" % n
    return "%.1f KiB" % (n / 1024.0)


class InfoWeftTasks(gdb.Command):
    """List every live task of every running weft runtime.

Usage: info weft-tasks

Columns: ID (the task's id; default names are task-ID), NAME, STATE
(running on a worker, ready to run, new: queued and never run yet, waiting:
parked until something wakes it, done: finished and still referenced),
BITS (the state word: S scheduled, N notified, C cancel requested,
X complete, J joined), WORKER (the worker running it), HOME (the worker
whose pool holds the record; - for main and submitted tasks), SAVED-SP and
USED (a suspended task's saved stack pointer and the stack it uses),
RECORD (print *(struct weft_task *)RECORD for everything). Fields that
describe what a task waits on are appended when the library has them."""

    def __init__(self):
        super(InfoWeftTasks, self).__init__("info weft-tasks",
                                            gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        try:
            self._list()
        except WeftError as e:
            raise gdb.GdbError("weft: %s" % e)

    def _list(self):
        any_rt = False
        for rt_index, rt, tasks in _tasks():
            any_rt = True
            n = int(rt["nworkers"])
            gdb.write("weft runtime %d at 0x%x: %d worker%s, %d task%s\n" % (
                rt_index, int(rt.address), n, "" if n == 1 else "s",
                len(tasks), "" if len(tasks) == 1 else "s"))
            gdb.write("  %6s  %-20s %-8s %-5s %-6s %-5s %-18s %-9s %s\n" % (
                "ID", "NAME", "STATE", "BITS", "WORKER", "HOME", "SAVED-SP",
                "USED", "RECORD"))
            for x in tasks:
                worker = "-" if x.running_on is None else str(x.running_on)
                home = x.home()
                sp = x.saved_sp()
                st = x.stack()
                used = "-"
                if sp and st:
                    # Implausible when the stack is unreadable (a core
                    # file without the task stacks' mapping).
                    used = _human(st[1] - sp) if st[0] <= sp < st[1] else "?"
                line = "  %6d  %-20s %-8s %-5s %-6s %-5s %-18s %-9s 0x%x" % (
                    x.id, x.name()[:20], x.state_word(), x.bits(), worker,
                    "-" if home is None else str(home),
                    "0x%x" % sp if sp else "-", used, x.addr)
                extra = x.extras()
                if extra:
                    line += "  " + " ".join(extra)
                gdb.write(line + "\n")
        if not any_rt:
            gdb.write("weft: no running runtime\n")


def _find_task(spec):
    spec = spec.strip()
    if not spec:
        raise WeftError("usage: weft-bt ID|0xRECORD [bt arguments]")
    try:
        want = int(spec, 0)
    except ValueError:
        raise WeftError("not a task id or record address: %s" % spec)
    matches = []
    for _, _, tasks in _tasks():
        for x in tasks:
            if x.id == want or x.addr == want:
                matches.append(x)
    if not matches:
        raise WeftError("no live task with id or record %s" % spec)
    if len(matches) > 1:
        # Ids are unique among a runtime's spawned tasks only: main and
        # the submitted tasks have id 0, and each runtime counts its own.
        raise WeftError("%d tasks have id %s (records %s): give the RECORD "
                        "address instead" % (
                            len(matches), spec,
                            ", ".join("0x%x" % x.addr for x in matches)))
    return matches[0]


def _saved_registers(x, sp, arch):
    """{register: value} of a suspended task, from its saved frame."""
    inf = gdb.selected_inferior()
    ctx = x.t["ctx"]
    if not _has_field(ctx.type, "sp"):
        # WEFT_CTX=ucontext (x86-64): the registers are in the record.
        if "x86-64" not in arch:
            raise WeftError("ucontext builds: only x86-64 is supported")
        g = ctx["uc"]["uc_mcontext"]["gregs"]
        idx = {"r12": 4, "r13": 5, "r14": 6, "r15": 7, "rbp": 10, "rbx": 11,
               "rsp": 15, "rip": 16}
        return dict((r, int(g[i]) & (2 ** 64 - 1)) for r, i in idx.items())
    st = x.stack()
    if st is None or not st[0] <= sp < st[1]:
        raise WeftError("the saved stack pointer 0x%x is outside the task's "
                        "stack (is the stack readable?)" % sp)

    def words(n):
        try:
            return struct.unpack("<%dQ" % n, bytes(inf.read_memory(sp, 8 * n)))
        except gdb.MemoryError:
            raise WeftError("cannot read the task's stack at 0x%x (a core "
                            "file without the stacks' mapping?)" % sp)

    if "x86-64" in arch:
        # src/ctx/jump_x86_64_sysv_elf_gas.S: FP control words, r15, r14,
        # r13, r12, rbx, rbp, resume address; the switch returns with the
        # stack pointer just above them.
        w = words(8)
        return {"r15": w[1], "r14": w[2], "r13": w[3], "r12": w[4],
                "rbx": w[5], "rbp": w[6], "rip": w[7], "rsp": sp + 64}
    if "aarch64" in arch:
        # src/ctx/jump_arm64_aapcs_elf_gas.S: d8-d15, x19-x28, x29, x30
        # (resume address), FPCR; 0xb0 bytes.
        w = words(22)
        regs = dict(("x%d" % (19 + i), w[8 + i]) for i in range(10))
        regs.update({"x29": w[18], "x30": w[19], "pc": w[19],
                     "sp": sp + 0xb0})
        return regs
    raise WeftError("weft-bt supports x86-64 and AArch64, not %s" % arch)


def _set_reg(name, value):
    gdb.execute("set $%s = %d" % (name, value), to_string=True)


class WeftBt(gdb.Command):
    """Backtrace of one weft task, or of every task.

Usage: weft-bt ID|0xRECORD|all [bt arguments]

ID is a task id as `info weft-tasks` lists it, or its RECORD address (ids
are unique among a runtime's spawned tasks only: main and the tasks
submitted from other threads have id 0, and each runtime counts its own);
`all` shows every live task in turn (Go's `goroutine all bt`). A suspended
task's backtrace is taken from its saved registers: they are loaded into
the selected thread's innermost frame for the time of one `bt` and then
restored. A running task's backtrace is that of the thread running it.
Anything after the id is passed to `bt` (e.g. `weft-bt 3 full`). Needs a
live process stopped in all-stop mode."""

    def __init__(self):
        super(WeftBt, self).__init__("weft-bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        parts = arg.split(None, 1)
        bt_args = parts[1] if len(parts) > 1 else ""
        try:
            if parts and parts[0] == "all":
                first = True
                for _, _, tasks in _tasks():
                    for x in tasks:
                        if not first:
                            gdb.write("\n")
                        first = False
                        self._one(x, bt_args)
                return
            self._one(_find_task(parts[0] if parts else ""), bt_args)
        except WeftError as e:
            raise gdb.GdbError("weft: %s" % e)

    def _one(self, x, bt_args):
        gdb.write("task %d \"%s\" (%s, record 0x%x)\n" % (
            x.id, x.name(), x.state_word(), x.addr))
        if x.running_on is not None:
            self._running(x, bt_args)
            return
        sp = x.saved_sp()
        if sp is None:
            gdb.write("weft: task %d has no saved context (%s)\n" % (
                x.id, "never run" if not x.started else "finished"))
            return
        self._suspended(x, sp, bt_args)

    def _running(self, x, bt_args):
        st = x.stack()
        orig = gdb.selected_thread()
        sel = gdb.selected_frame()
        level = sel.level() if hasattr(sel, "level") else 0
        found = None
        try:
            for th in gdb.selected_inferior().threads():
                th.switch()
                spv = int(gdb.newest_frame().read_register("sp"))
                if st and st[0] <= spv < st[1]:
                    found = th
                    gdb.write("running on worker %d, thread %d\n" % (
                        x.running_on, th.num))
                    gdb.execute("bt " + bt_args)
                    break
        finally:
            orig.switch()
            try:
                gdb.execute("frame %d" % level, to_string=True)
            except gdb.error:
                pass
        if found is None:
            gdb.write("running on worker %d; no thread's stack pointer lies "
                      "in its stack (use `info threads`)\n" % x.running_on)

    def _suspended(self, x, sp, bt_args):
        th = gdb.selected_thread()
        if th is None:
            raise WeftError("no thread selected (is the program running?)")
        if th.is_running():
            raise WeftError("the selected thread is running: stop it first "
                            "(weft-bt needs all-stop mode)")
        frame = gdb.newest_frame()
        arch = frame.architecture().name()
        regs = _saved_registers(x, sp, arch)
        sel = gdb.selected_frame()
        level = sel.level() if hasattr(sel, "level") else 0
        frame.select()
        saved = dict((r, int(frame.read_register(r)) & (2 ** 64 - 1))
                     for r in regs)
        try:
            try:
                for r, v in regs.items():
                    _set_reg(r, v)
            except gdb.error as e:
                # A core file: its registers cannot be written.
                gdb.write("weft: cannot load the task's registers (%s); its "
                          "resume address is:\n" % e)
                pc = regs.get("rip", regs.get("pc"))
                gdb.execute("info symbol 0x%x" % pc)
                return
            gdb.execute("bt " + bt_args)
        finally:
            for r, v in saved.items():
                try:
                    _set_reg(r, v)
                except gdb.error:
                    pass
            try:
                gdb.execute("frame %d" % level, to_string=True)
            except gdb.error:
                pass


InfoWeftTasks()
WeftBt()
