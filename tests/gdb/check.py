# Run by tests/gdb/check.sh inside gdb (-x), after weft-gdb.py is loaded
# (sourced or auto-loaded) and the program stopped at gdbt_checkpoint.
# Prints, for check.sh to check:
#   `info weft-tasks`;
#   for every task listed, "==== weft-bt NAME" and `weft-bt RECORD`'s output;
#   "ambiguous: ..." and how `weft-bt 0` is refused (two tasks have id 0);
#   "==== weft-bt all" and that command's output;
#   "==== registers kept: yes|NO..., frame NAME": whether the thread's
#   registers and its selected frame (async_main, frame 1) came back
#   unchanged after all of the above.
import gdb

regs = ("rip", "rsp", "rbp", "rbx", "r12", "r13", "r14", "r15")
before = [int(gdb.newest_frame().read_register(r)) for r in regs]
# An outer frame selected (gdbt_checkpoint's caller): weft-bt must leave
# it selected.
gdb.execute("frame 1", to_string=True)

table = gdb.execute("info weft-tasks", to_string=True)
gdb.write(table)
for line in table.splitlines():
    cols = line.split()
    if len(cols) >= 3 and cols[0].isdigit():
        gdb.write("==== weft-bt %s\n" % cols[1])
        # By record address (the last column before the NAME=VALUE extras
        # of the wait fields): ids repeat (main and the submitted task both
        # have id 0).
        record = [c for c in cols if "=" not in c][-1]
        try:
            gdb.write(gdb.execute("weft-bt %s" % record, to_string=True))
        except gdb.error as e:
            gdb.write("weft-bt failed: %s\n" % e)

try:
    gdb.execute("weft-bt 0", to_string=True)
    gdb.write("ambiguous: weft-bt 0 did not refuse\n")
except gdb.error as e:
    gdb.write("ambiguous: %s\n" % e)

gdb.write("==== weft-bt all\n")
gdb.write(gdb.execute("weft-bt all", to_string=True))

frame = gdb.selected_frame()
after = [int(gdb.newest_frame().read_register(r)) for r in regs]
gdb.write("==== registers kept: %s, frame %s\n" % (
    "yes" if before == after else "NO %r != %r" % (before, after),
    frame.name()))
