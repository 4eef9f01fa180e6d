"""Tables from the results files: the goals (pass/miss) and one table per benchmark, in Markdown.

Built from bench/results/*.json only, so `bench/run.py --report-only` redraws the README table
without running anything. Goals are reported, never asserted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Doc = Mapping[str, Any]


def load(out: Path) -> dict[str, Doc]:
    """Every <name>.json of `out`; a `before/` folder beside them (the figures before issue 21's changes)
    comes as docs["before"], shown as a column of the goals table."""
    docs: dict[str, Doc] = {}
    for path in sorted(out.glob("*.json")):
        docs[path.stem] = json.loads(path.read_text())
    if (out / "before").is_dir():
        docs["before"] = load(out / "before")
    return docs


def _f(value: object, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("pass" if ok else "**miss**")


def goals(docs: Mapping[str, Doc]) -> list[tuple[str, ...]]:
    """(goal, target, measured, [before,] pass/miss) for each goal the results can answer; the target
    names the goal, so the before figures are matched by it."""
    rows = _goals(docs)
    if "before" not in docs:
        return rows
    before = {row[1]: row[2] for row in _goals(docs["before"])}
    return [(goal, target, measured, before.get(target, "n/a"), verdict) for goal, target, measured, verdict in rows]


def _goals(docs: Mapping[str, Doc]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    over = docs.get("overhead", {}).get("figures")
    if over:
        main = over.get("footprint_pods") or over["footprint"]
        load_name = "8 GPUs + RAPL + 200 pods" if "footprint_pods" in over else "8 GPUs + RAPL (no attribution)"
        pct = main["scrape_15s"]["core_percent"]
        rows.append((f"CPU at 1 Hz, {load_name}, scraped every 15 s", "<= 0.5 % of one core", f"{pct:.3f} %",
                     _verdict(pct <= 0.5)))
        ours = over["footprint"]["no_scrape"]["cpu_ms_per_sample"]
        median = " (median of 3 rounds)" if over.get("rounds") else ""
        rows.append((f"CPU per sample, 8 GPUs + RAPL at 1 Hz, no attribution, no scrape{median}", "<= 0.40 ms",
                     f"{ours:.3f} ms", _verdict(ours <= 0.40)))
        for peer, label, target in (("codecarbon", "CodeCarbon", 6.0), ("zeus", "Zeus", 1.9)):
            theirs = over.get(peer, {}).get("window", {}).get("cpu_ms_per_sample")
            if theirs:
                ratio = theirs / ours
                rows.append((f"CPU per sample vs {label} (same 8 GPUs + RAPL, same run)", f">= {target:g}x less",
                             f"{ratio:.2f}x less ({ours:.3f} vs {theirs:.3f} ms)", _verdict(ratio >= target)))
    scrape = docs.get("scrape", {}).get("figures")
    if scrape and "1000" in scrape["sizes"]:
        s = scrape["sizes"]["1000"]
        p99 = s["fresh_text"]["p99_ms"]
        rows.append((f"scrape p99 at ~1,000 series ({s['series']}), every scrape renders", "<= 2 ms",
                     f"{p99:.2f} ms (cached bytes: {s['cached_text']['p99_ms']:.2f} ms)", _verdict(p99 <= 2)))
    if scrape and "10000" in scrape["sizes"]:
        s = scrape["sizes"]["10000"]
        p99 = s["fresh_text"]["p99_ms"]
        rows.append((f"scrape p99 at ~10,000 series ({s['series']:,}), every scrape renders", "<= 20 ms",
                     f"{p99:.2f} ms (cached bytes: {s['cached_text']['p99_ms']:.2f} ms)", _verdict(p99 <= 20)))
    mem = docs.get("memory", {}).get("figures")
    if mem:
        soak = mem.get("soak")
        if soak:
            rss = soak["rss_mib_end"]
            rows.append((f"RSS after {soak['seconds'] / 60:.1f} min, {soak['pods']} pods, 15 s scrapes", "<= 60 MB",
                         f"{rss * 1.048576:.1f} MB ({rss:.1f} MiB)", _verdict(rss * 1.048576 <= 60)))
        start = mem.get("startup")
        if start:
            worst = max(start["footprint"]["median_seconds"], start["footprint_pods"]["median_seconds"])
            bare, pods = start["footprint"]["median_seconds"], start["footprint_pods"]["median_seconds"]
            rows.append(("start-up to the first valid scrape (median; without / with 200 pods)", "<= 1 s",
                         f"{bare:.2f} s / {pods:.2f} s",
                         _verdict(worst <= 1.0)))
    acc = docs.get("accuracy", {}).get("figures")
    if acc:
        worst_e = max(v["counter_energy_error_percent"]["max_abs"] for v in acc["intervals"].values())
        rows.append(("energy error with the hardware counter (0.1, 1, 5 s sampling)", "<= 0.1 %",
                     f"{worst_e:.5f} %", _verdict(worst_e <= 0.1)))
    return rows


def table(header: tuple[str, ...], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def overhead_table(f: Doc) -> str:
    cc = f.get("codecarbon", {}).get("window", {}).get("cpu_ms_per_sample")
    rows = []

    def row(name: str, w: Doc, rounds: Sequence[float] = ()) -> tuple[str, ...]:
        ratio = f"{cc / w['cpu_ms_per_sample']:.2f}x" if cc else "n/a"
        each = f" (rounds: {', '.join(f'{r:.3f}' for r in rounds)})" if rounds else ""
        return (name, _f(w["cpu_ms_per_sample"], 3) + each, _f(w["core_percent"], 3), _f(w["cpu_seconds_per_hour"], 1),
                ratio)

    for key, label in (("footprint", "footprint, 8 GPUs + RAPL"),
                       ("footprint_pods", "footprint, 8 GPUs + RAPL + 200 pods x 3 containers")):
        if key in f:
            rows.append(row(f"{label}, no scrape", f[key]["no_scrape"], f[key].get("rounds_cpu_ms_per_sample", ())))
            rows.append(row(f"{label}, scrape every 15 s", f[key]["scrape_15s"]))
    if "zeus" in f:
        z = f["zeus"]
        note = "" if z.get("measured_all_gpus_and_rapl") else " (did NOT read all GPUs and RAPL)"
        main = z.get("main_process_cpu_ms_per_sample")
        own = f"; its own process {main:.2f} ms, the rest its 6 RAPL wraparound pollers" if main is not None else ""
        rows.append(row(f"Zeus {z.get('version', '')} ZeusMonitor, a window a second{note}{own}", z["window"],
                        z.get("rounds_cpu_ms_per_sample", ())))
    if "codecarbon" in f:
        c = f["codecarbon"]
        note = "" if c.get("measured_all_gpus") else " (did NOT read all GPUs)"
        rows.append(row(f"CodeCarbon {c.get('version', '')} offline tracker, 1 s{note}", c["window"],
                        c.get("rounds_cpu_ms_per_sample", ())))
    for key, label in (("floor", "floor: energy + power of 8 GPUs (pynvml) + 4 RAPL files"),
                       ("floor_energy", "floor: energy counters only (pynvml) + 4 RAPL files"),
                       ("floor_ctypes", "floor: energy counters by one prebuilt ctypes pointer, pread on open RAPL"),
                       ("floor_idle", "floor: an idle Python loop waking once a second")):
        if key in f:
            rows.append(row(label, f[key]["window"]))
    return table(("contender", "CPU ms / sample", "% of one core", "CPU s / hour", "CodeCarbon / this"), rows)


def instructions_table(f: Doc) -> str:
    """bench/instructions.py: callgrind instruction counts of the sample, the attribution pass, the render."""
    rows = []
    s, p = f["sample"], f["pods"]

    def m(n: float) -> str:
        return f"{n / 1e6:.3f} M"

    rows.append(("one sample, 8 GPUs + RAPL", m(s["instructions_per_sample"])))
    rows.append((f"one sample with {p['pods']} pods x 3 containers attributed", m(p["instructions_per_sample"])))
    rows.append(("  of which the attribution pass (the difference)", m(p["attribution_pass_instructions"])))
    rows.append((f"one render, {s['series']:,} series (8 GPUs + RAPL)", m(s["instructions_per_render"])))
    rows.append((f"one render, {p['series']:,} series (200 pods)", m(p["instructions_per_render"])))
    for r in f["render"].values():
        rows.append((f"one render, {r['series']:,} series", f"{r['instructions_per_render'] / 1e6:.3f} M "
                     f"({r['instructions_per_series']:,} per series)"))
    return table(("section", "instructions"), rows)


def scrape_table(f: Doc) -> str:
    rows = []
    for size in f["sizes"].values():
        def lat(m: Doc) -> str:
            return f"{m['p50_ms']:.2f} / {m['p99_ms']:.2f}"

        ne = size["node_exporter"]
        rows.append((
            f"{size['series']:,}", f"{size['payload_bytes'] / 1024:.0f} KiB", lat(size["fresh_text"]),
            lat(size["cached_text"]), lat(size["fresh_openmetrics"]), lat(ne),
            f"{size['fresh_text']['gzip_bytes'] / 1024:.0f} KiB",
        ))
    return table(("series", "payload", "fresh p50 / p99 ms", "cached p50 / p99 ms", "fresh OpenMetrics p50 / p99 ms",
                  "node_exporter textfile p50 / p99 ms", "payload gzipped"), rows)


def memory_table(f: Doc) -> str:
    rows = []
    soak = f.get("soak")
    if soak:
        rows.append((f"RSS after {soak['seconds'] / 60:.1f} min (200 pods, {soak['series']:,} series)",
                     f"{soak['rss_mib_end']:.1f} MiB (PSS {soak['pss_mib_end']:.1f}), peak {soak['rss_mib_peak']:.1f},"
                     f" second-half growth {_f(soak['rss_mib_growth_second_half'])}"))
    start = f.get("startup")
    if start:
        for key, label in (("footprint", "8 GPUs + RAPL"), ("footprint_pods", "8 GPUs + RAPL + 200 pods")):
            s = start[key]
            rows.append((f"start-up to first valid scrape, {label} ({s['runs']} runs)",
                         f"median {s['median_seconds']:.3f} s, max {s['max_seconds']:.3f} s, RSS then "
                         f"{s['rss_mib_at_start']:.1f} MiB"))
    return table(("measure", "value"), rows)


def history_table(doc: Doc) -> str:
    """bench/memory.py --history: the live page's ring buffer full, on the machine and date it ran."""
    f, m = doc["figures"], doc.get("machine", {})
    sizes = ", ".join(f"{path} {size / 1024:.1f} KiB" for path, size in f["bytes"].items())
    # Results of an older bench (a .cache left from before `rss_mib_end`) lack the later figure.
    later = (f", {f['rss_mib_end']:.1f} MiB {f['seconds_after_full']:.0f} s later"
             if "rss_mib_end" in f and "seconds_after_full" in f else "")
    rows = [
        (f"RSS, history empty -> full ({f['points']} points x {f['series']} series, 20 Hz, page open)",
         f"{f['rss_mib_history_empty']:.1f} -> {f['rss_mib_history_full']:.1f} MiB{later}"),
        ("ring per series (tracemalloc)", f"{f['ring_bytes_per_series'] / 1024:.1f} KiB"),
        ("answers with the history full", sizes),
        ("run", f"{doc.get('date', '?')}, {m.get('cpu_model', '?')}, {doc.get('mode', '?')} mode"),
    ]
    return table(("measure", "value"), rows)


def accuracy_table(f: Doc) -> str:
    rows = []
    for interval, v in f["intervals"].items():
        def e(key: str, v: Doc = v) -> str:
            return f"{v[key]['max_abs']:.4f}"

        rows.append((interval, e("counter_energy_error_percent"), e("counter_emissions_error_percent"),
                     e("integration_energy_error_percent"), e("integration_emissions_error_percent"),
                     e("naive_emissions_error_percent")))
    return table(("sampling", "counter: energy", "counter: emissions", "power integration: energy",
                  "power integration: emissions", "naive total x current intensity: emissions"), rows)


def attribution_table(doc: Doc) -> str:
    """Its timed parts (p50 / p95 / max wall ms, mean CPU ms) and its set-up figures."""
    rows = []
    for key, value in doc.get("figures", {}).items():
        if isinstance(value, Mapping):
            parts = [f"{k.removesuffix('_ms').replace('_', ' ')} {v:.2f} ms" for k, v in value.items()
                     if isinstance(v, (int, float))]
            rows.append((key, ", ".join(parts)))
        elif not isinstance(value, list):
            rows.append((key, _f(value, 3)))
    return table(("figure", "value"), rows)


def summary(docs: Mapping[str, Doc]) -> str:
    """The machine and the goals: what the top-level README shows."""
    # attribution: its machine block is shorter; history: says its own machine and date in its table
    ours = [d for name, d in docs.items() if name not in ("attribution", "history", "before")]
    any_doc = ours[0] if ours else None
    out = []
    if any_doc and "machine" in any_doc:
        m = any_doc["machine"]
        modes = sorted({d.get("mode", "?") for d in ours})
        dates = sorted(d.get("date", "") for d in ours)
        out.append(f"Machine: {m['cpu_model']}, {m['cores']} cores, {m.get('memory_gib', '?')} GiB, kernel "
                   f"{m['kernel']}, Python {m['python']}. Mode: {', '.join(modes)}. Run: {dates[0]} to {dates[-1]}.")
    out.append("")
    header: tuple[str, ...] = ("goal", "target", "measured", "result")
    if "before" in docs:
        modes = ", ".join(sorted({str(d.get("mode", "?")) for d in docs["before"].values()}))
        header = ("goal", "target", "measured", f"before issue 21 ({modes}, bench/results/before)", "result")
    out.append(table(header, goals(docs)))
    return "\n".join(out) + "\n"


def render(docs: Mapping[str, Doc]) -> str:
    """The whole Markdown block: machine, goals, then each benchmark that has results."""
    out = [summary(docs).rstrip("\n")]
    if "overhead" in docs:
        out += ["", "Sampling overhead (CPU time of the process, 1 Hz):", "",
                overhead_table(docs["overhead"]["figures"])]
    if "instructions" in docs:
        out += ["", "Instructions (callgrind, bench/instructions.py; repeatable where CPU time is not):", "",
                instructions_table(docs["instructions"]["figures"])]
    if "scrape" in docs:
        out += ["", "Scrape latency, one keep-alive client, p50 / p99:", "", scrape_table(docs["scrape"]["figures"])]
    if "memory" in docs:
        out += ["", "Memory and start-up:", "", memory_table(docs["memory"]["figures"])]
    if "history" in docs:
        out += ["", "Live page memory (bench/memory.py --history):", "", history_table(docs["history"])]
    if "accuracy" in docs:
        out += ["", "Accuracy, max |error| in % over the seeds (bursty trace, intensity changing every 5 min):", "",
                accuracy_table(docs["accuracy"]["figures"])]
    if "attribution" in docs:
        out += ["", "Attribution (bench/attribution_bench.py):", "", attribution_table(docs["attribution"])]
    return "\n".join(out) + "\n"
