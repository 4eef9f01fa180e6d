import importlib.util, importlib.machinery, random, time, sys
sys.path.insert(0, "/work/main/exporter")
from footprint.accounting import _fastledger as new
from prometheus_client.utils import floatToGoString
loader = importlib.machinery.ExtensionFileLoader("footprint.accounting._fastledger", "/tmp/p/oldfl/_fastledger_old.so")
spec = importlib.util.spec_from_file_location("footprint.accounting._fastledger", "/tmp/p/oldfl/_fastledger_old.so", loader=loader)
old = importlib.util.module_from_spec(spec); loader.exec_module(old)
random.seed(1)
for label, lo, hi in (("below 1e6 J", 1.0, 1e6), ("1e6-1e9 J (hours to months of a GPU)", 1e6, 1e9)):
    series = {(f"pod-{i}", "c"): random.uniform(lo, hi) for i in range(940)}
    order = sorted(series); prefixes = {k: 'footprint_workload_energy_joules_total{namespace="ml",pod="%s"} ' % k[0] for k in order}
    assert old.render_lines(prefixes, series, order, floatToGoString) == new.render_lines(prefixes, series, order, floatToGoString)
    for name, mod in (("before", old), ("after", new)):
        ts = []
        for _ in range(300):
            t = time.perf_counter_ns(); mod.render_lines(prefixes, series, order, floatToGoString); ts.append(time.perf_counter_ns() - t)
        ts.sort(); print(f"{label:40s} {name:6s} 940 lines p50 {ts[150]/1e3:7.1f} us")
