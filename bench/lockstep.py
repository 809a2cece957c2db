#!/usr/bin/python3
"""Run the two sides of a benchmark row turn by turn (bench/run.sh; standard library only).

  lockstep.py [--gap SECONDS] --first a|b OUT_A ERR_A OUT_B ERR_B -- CMD_A ... :: CMD_B ...

Both processes live at once but only one runs at a time: each child gets BENCH_TURN_FDS=R,W, writes
one byte to W whenever it gives the machine back (before each warm-up and each timed run, and once at
start-up before any heavy work) and then blocks on reading one byte from R until its turn comes. Once
both have asked, the turn goes to --first, and from then on to the other side each time (to the same
one when the other has exited). So a side's runs alternate with the other side's runs: the VM's speed
drifts over seconds, and two sides measured minutes or even seconds apart saw different machines; run
by run, both see the same one. Before each turn the machine idles for --gap seconds (default 0.05)
and then until the side that just ran is quiet (its threads spin on after their work: libgomp's
barriers, and OpenBLAS's pthreads inside PyTorch for up to about 0.1 s; a run started beside them
shares the two cores with them: mobilenet_v2 batch 1's 15 ms forward took 77 ms that way). Untimed work (model set-up, export of
results) also happens only in a side's own turn, never beside the other side's timed run.

Exit status: 0 when both exit 0; else 1 with one line per failed side on stderr. A side that stops
asking (hangs) hangs this too: ctest's timeout catches that in the smoke test.
"""
import os
import selectors
import subprocess
import sys
import time


def cpu_ns(pid):
    """CPU time of all of pid's threads in ns (schedstat; else utime + stime in clock ticks), or
    None once it is gone."""
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return None
    tick = 1e9 / os.sysconf("SC_CLK_TCK")
    total = 0
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            try:
                with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int((int(fields[11]) + int(fields[12])) * tick)
            except (OSError, ValueError, IndexError):
                pass
    return total


def settle(pid, gap, cap=2.0):
    """Wait (at least gap seconds) until the side that just gave its turn back is quiet: its
    worker threads keep spinning after their work (libgomp's barrier spin; OpenBLAS's pthreads
    spin up to 2^28 cycles, about 0.1 s, inside PyTorch), and a run started beside them shares
    the two cores. Quiet: under 1 ms of CPU over 20 ms; at most cap seconds."""
    t0 = time.monotonic()
    time.sleep(gap)
    prev = cpu_ns(pid)
    while prev is not None and time.monotonic() - t0 < cap:
        time.sleep(0.02)
        cur = cpu_ns(pid)
        if cur is None or cur - prev < 1000000:
            break
        prev = cur


def main(argv):
    gap, first = 0.05, None
    i = 0
    while i < len(argv) and argv[i].startswith("--") and argv[i] != "--":
        if argv[i] == "--gap":
            gap = float(argv[i + 1])
        elif argv[i] == "--first":
            first = argv[i + 1]
        else:
            sys.exit("lockstep.py: unknown option %s" % argv[i])
        i += 2
    if first not in ("a", "b") or len(argv) < i + 6 or argv[i + 4] != "--":
        sys.exit(__doc__)
    outs = argv[i:i + 4]
    rest = argv[i + 5:]
    if "::" not in rest:
        sys.exit(__doc__)
    k = rest.index("::")
    cmds = [rest[:k], rest[k + 1:]]
    if not cmds[0] or not cmds[1]:
        sys.exit(__doc__)

    procs, req, grant = [], [], []
    for s in range(2):
        r_req, w_req = os.pipe()      # child -> us: "I give the turn back and want it again"
        r_grant, w_grant = os.pipe()  # us -> child: "your turn"
        env = dict(os.environ, BENCH_TURN_FDS="%d,%d" % (r_grant, w_req))
        with open(outs[2 * s], "wb") as fo, open(outs[2 * s + 1], "wb") as fe:
            p = subprocess.Popen(cmds[s], stdout=fo, stderr=fe, env=env, pass_fds=(r_grant, w_req))
        os.close(r_grant)
        os.close(w_req)
        procs.append(p)
        req.append(r_req)
        grant.append(w_grant)

    sel = selectors.DefaultSelector()
    for s in range(2):
        sel.register(req[s], selectors.EVENT_READ, s)
    alive = [True, True]
    waiting = [False, False]
    holder = None
    started = False

    def give(s, released):
        nonlocal holder
        if released is not None and alive[released]:
            settle(procs[released].pid, gap)
        else:
            time.sleep(gap)
        try:
            os.write(grant[s], b"g")
            waiting[s] = False
            holder = s
        except BrokenPipeError:  # it died while waiting: its exit status says why
            alive[s] = False
            waiting[s] = False

    released = None  # the side that last gave the turn back
    while any(alive):
        for key, _ in sel.select():
            s = key.data
            data = os.read(req[s], 64)
            if not data:  # exited (or closed the pipe): the turn is free
                sel.unregister(req[s])
                alive[s] = False
                waiting[s] = False
                if holder == s:
                    holder = None
                    released = s
                continue
            waiting[s] = True  # one request per byte; a side asks only while it holds the turn
            if holder == s:
                holder = None
                released = s
        if holder is not None:
            continue
        if not started:  # the first turn waits until both have asked (or ended)
            if all(waiting[s] or not alive[s] for s in range(2)):
                started = True
                f = 0 if first == "a" else 1
                order = [f, 1 - f]
            else:
                continue
        else:
            last = order[0]
            order = [1 - last, last]  # the other side first
        for s in order:
            if waiting[s]:
                give(s, released)
                if holder is not None:
                    break
        if holder is not None:
            order = [holder, 1 - holder]

    bad = 0
    for s in range(2):
        rc = procs[s].wait()
        os.close(grant[s])
        if rc != 0:
            sys.stderr.write("lockstep.py: side %s exited with %d: %s\n" % ("ab"[s], rc, " ".join(cmds[s])))
            bad = 1
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
