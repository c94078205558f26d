"""Run a command and write its peak RSS and CPU time to a file: ``python -S launch.py OUT
cmd...``.

A child forked from the (large) benchmark process would report that process's size as its
own peak (Linux records the pre-exec memory in ``ru_maxrss``). This launcher is a bare
interpreter (``-S``: no site, a few MB), so the command it forks starts small, and
``wait4`` gives the command's own peak RSS and CPU seconds (user and system, its
threads and its own children included).
"""

import json
import os
import sys

out, cmd = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(out, "w") as f:
    json.dump(
        {
            "peak_rss_kib": usage.ru_maxrss,
            "user_seconds": usage.ru_utime,
            "system_seconds": usage.ru_stime,
        },
        f,
    )
sys.exit(os.waitstatus_to_exitcode(status))
