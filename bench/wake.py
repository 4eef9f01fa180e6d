"""What one wake-up of a 1 Hz loop costs, by how the thread sleeps: an Event, a held lock, time.sleep.

    .venv/bin/python bench/wake.py [--seconds 20]

Each way runs in a thread of its own process (one after the other), waking once a second and doing
nothing else; the thread's own CPU time (run time in /proc/self/task/<tid>/schedstat, in ns) over the
run, per wake. Why it matters: footprint's Worker slept on an Event, whose wait runs
threading.Condition.wait's Python code on every wake, on caches the second in between has made cold.
Prints a table for bench/README.md; writes nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

WAYS = ("event", "lock", "sleep")


def loop(way: str, wakes: int) -> None:
    next_at = time.monotonic()
    if way == "event":
        event = threading.Event()
        for _ in range(wakes):
            next_at += 1.0
            event.wait(max(next_at - time.monotonic(), 0.0))
    elif way == "lock":
        held = threading.Lock()
        held.acquire()
        for _ in range(wakes):
            next_at += 1.0
            held.acquire(True, max(next_at - time.monotonic(), 0.0))
    else:
        for _ in range(wakes):
            next_at += 1.0
            time.sleep(max(next_at - time.monotonic(), 0.0))


def child(way: str, wakes: int) -> None:
    """Run the loop; print the thread's CPU per wake over all but the first two and the last two."""
    thread = threading.Thread(target=loop, args=(way, wakes))
    thread.start()
    time.sleep(2.5)

    def run_ns() -> int:
        with open(f"/proc/self/task/{thread.native_id}/schedstat", encoding="ascii") as fh:
            return int(fh.read().split()[0])

    before = run_ns()
    counted = wakes - 4
    time.sleep(counted)
    print(f"{(run_ns() - before) / 1e3 / counted:.1f}")
    thread.join()


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    seen: dict[str, list[str]] = {way: [] for way in WAYS}
    for _ in range(args.rounds):
        for way in WAYS:
            out = subprocess.run([sys.executable, __file__, "--child", way, str(max(args.seconds, 6))],
                                 capture_output=True, text=True, check=True)
            seen[way].append(out.stdout.strip())
    print("| sleeping on | thread CPU a wake (us), each round |")
    print("|---|---|")
    for way, figures in seen.items():
        print(f"| {way} | {', '.join(figures)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
