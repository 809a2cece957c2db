"""Resident memory over repeated calls: the check the package, the tool and the torch bridge tests
share (memory that grows call after call is the complaint users have of the Python tools)."""
import os


def rss_bytes():
    """This process's resident set size, bytes (/proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_growth(loop, warm=100, n=1000):
    """Bytes of resident memory gained over loop(n), measured after a warm-up of loop(warm)."""
    loop(warm)
    before = rss_bytes()
    loop(n)
    return rss_bytes() - before
