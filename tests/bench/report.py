#!/usr/bin/env python3
"""Table for run_all.sh: reads OUT/<target>.<scenario>.txt (KEY=VALUE lines written by
bench_loadgen) and prints rotor beside Nchan with the ratio rotor/Nchan, then the issue 6
targets with met / not met. Usage: report.py OUT_DIR"""
import os
import sys

TARGETS = ["rotor-mem", "nchan-mem", "rotor-redis", "nchan-redis"]
# (scenario, key, label, format)
ROWS = [
    ("idle1k", "rss_per_conn_b", "RSS per idle conn, B", "{:.0f}"),
    ("idle15k", "rss_per_conn_b", "RSS per idle conn, B", "{:.0f}"),
    ("idle15k", "setup_s", "setup time 15k conns, s", "{:.2f}"),
    ("fanout1k-100", "deliv_per_s", "deliveries/s", "{:.0f}"),
    ("fanout1k-100", "cpu_per_M_deliv_s", "server CPU s / M deliveries", "{:.2f}"),
    ("fanout1k-100", "user_per_M_deliv_s", "… of it user space (utime)", "{:.2f}"),
    ("fanout1k-100", "sys_per_M_deliv_s", "… of it kernel (stime)", "{:.2f}"),
    ("fanout1k-100", "lat_p50_us", "latency p50, ms", "ms"),
    ("fanout1k-100", "lat_p99_us", "latency p99, ms", "ms"),
    ("fanout1k-100", "lost", "undelivered at end", "{:.0f}"),
    ("fanout1k-100-pb", "cpu_per_M_deliv_s", "Protobuf: CPU s / M deliveries", "{:.2f}"),
    ("fanout1k-100-pb", "lat_p99_us", "Protobuf: latency p99, ms", "ms"),
    ("fanout1k-1000", "deliv_per_s", "deliveries/s", "{:.0f}"),
    ("fanout1k-1000", "cpu_per_M_deliv_s", "server CPU s / M deliveries", "{:.2f}"),
    ("fanout1k-1000", "user_per_M_deliv_s", "… of it user space (utime)", "{:.2f}"),
    ("fanout1k-1000", "sys_per_M_deliv_s", "… of it kernel (stime)", "{:.2f}"),
    ("fanout1k-1000", "lat_p99_us", "latency p99, ms", "ms"),
    ("fanout1k-1000", "lost", "undelivered at end", "{:.0f}"),
    ("fanout10k-100", "deliv_per_s", "deliveries/s", "{:.0f}"),
    ("fanout10k-100", "cpu_per_M_deliv_s", "server CPU s / M deliveries", "{:.2f}"),
    ("fanout10k-100", "user_per_M_deliv_s", "… of it user space (utime)", "{:.2f}"),
    ("fanout10k-100", "sys_per_M_deliv_s", "… of it kernel (stime)", "{:.2f}"),
    ("fanout10k-100", "lat_p99_us", "latency p99, ms", "ms"),
    ("fanout10k-100", "lost", "undelivered at end", "{:.0f}"),
    ("many", "deliv_per_s", "deliveries/s", "{:.0f}"),
    ("many", "cpu_per_M_deliv_s", "server CPU s / M deliveries", "{:.2f}"),
    ("many", "user_per_M_deliv_s", "… of it user space (utime)", "{:.2f}"),
    ("many", "sys_per_M_deliv_s", "… of it kernel (stime)", "{:.2f}"),
    ("many", "cpu_per_pub_us", "server CPU µs / publication", "{:.1f}"),
    ("many", "lat_p99_us", "latency p99, ms", "ms"),
    ("many", "lost", "undelivered at end", "{:.0f}"),
    ("churn", "churn_per_s", "connect+subscribe+close /s", "{:.0f}"),
    ("churn", "srv_cpu_s", "server CPU s in window", "{:.2f}"),
    ("churn", "lat_p99_us", "latency p99, ms", "ms"),
    ("churn", "lost", "undelivered (steady subs)", "{:.0f}"),
    ("recovery", "recovery_s", "1000 reconnect+recover, s", "{:.3f}"),
    ("recovery", "recovery_cpu_s", "server CPU s for it", "{:.3f}"),
    ("recovery", "recovered_ok", "subs fully recovered /1000", "{:.0f}"),
]


def load(out):
    data = {}
    for name in os.listdir(out):
        if not name.endswith(".txt") or name.count(".") != 2:
            continue
        target, scen, _ = name.split(".")
        kv = {}
        with open(os.path.join(out, name)) as f:
            for line in f:
                if "=" in line:
                    k, v = line.strip().split("=", 1)
                    kv[k] = v
        data[(target, scen)] = kv
    return data


def num(data, target, scen, key):
    try:
        return float(data[(target, scen)][key])
    except (KeyError, ValueError):
        return None


def fmt(v, f):
    if v is None:
        return "–"
    if f == "ms":
        return "{:.2f}".format(v / 1000.0)
    return f.format(v)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return "{:.2f}".format(a / b)


def flag(data, target, scen):
    kv = data.get((target, scen))
    if kv is None:
        return ""
    bad = []
    if kv.get("ok") != "1":
        bad.append("not ok")
    if kv.get("pub_err", "0") not in ("0", ""):
        bad.append("pub_err=" + kv["pub_err"])
    if kv.get("server_closes", "0") != "0":
        bad.append("closed=" + kv["server_closes"])
    return ", ".join(bad)


def floor(data):
    """What bounds the CPU ratios: the server's own code (utime) against the kernel's work for
    it (stime). The kernel share alone is the ratio rotor would reach with no user-space time
    at all, so a target below it cannot be met by rotor's code."""
    print("\nWhat limits the CPU ratios (rotor mem vs Nchan mem, per M deliveries):")
    for scen in ("fanout1k-100", "fanout10k-100", "many"):
        ru, rk = num(data, "rotor-mem", scen, "user_per_M_deliv_s"), num(data, "rotor-mem", scen, "sys_per_M_deliv_s")
        nu, nt = num(data, "nchan-mem", scen, "user_per_M_deliv_s"), num(data, "nchan-mem", scen, "cpu_per_M_deliv_s")
        if None in (ru, rk, nu, nt) or nu == 0 or nt == 0:
            print("- {}: no data".format(scen))
            continue
        print("- {}: user space {:.2f} s vs {:.2f} s ({:.2f}); rotor's kernel time alone is {:.2f} of "
              "Nchan's total".format(scen, ru, nu, ru / nu, rk / nt))


def main():
    out = sys.argv[1]
    data = load(out)
    hdr = "| scenario | figure | rotor mem | Nchan mem | ratio | rotor Redis | Nchan Redis | ratio |"
    print(hdr)
    print("|---|---|--:|--:|--:|--:|--:|--:|")
    for scen, key, label, f in ROWS:
        v = [num(data, t, scen, key) for t in TARGETS]
        if all(x is None for x in v):
            continue
        print("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
            scen, label, fmt(v[0], f), fmt(v[1], f), ratio(v[0], v[1]),
            fmt(v[2], f), fmt(v[3], f), ratio(v[2], v[3])))
    notes = []
    for (t, s) in sorted(data):
        fl = flag(data, t, s)
        if fl:
            notes.append("{} {}: {}".format(t, s, fl))
    for t in ("rotor-redis", "nchan-redis"):
        for s in ("fanout1k-100", "many"):
            aux = num(data, t, s, "aux_cpu_s")
            if aux is not None:
                notes.append("{} {}: redis-server CPU {:.2f} s (not in the server column)".format(t, s, aux))
    a = data.get(("generator", "absorb"))
    absorb = os.path.join(out, "absorb.txt")
    if os.path.exists(absorb):
        kv = dict(l.strip().split("=", 1) for l in open(absorb) if "=" in l)
        try:
            d, c, w = float(kv["deliveries"]), float(kv["self_cpu_s"]), float(kv["window_s"])
            print("\nGenerator against a trivial sender: {:.0f} deliveries/s received, {:.2f} s CPU in "
                  "{:.2f} s: {:.0f} deliveries per CPU-second of the generator.".format(
                      d / w, c, w, d / c if c > 0 else 0))
        except (KeyError, ValueError):
            print("\nGenerator absorb run: no result")
    if any(t == "rotor-nagle" for (t, _) in data):
        print("\nrotor with client.tcp_nodelay false (Nagle on client connections, as Nchan's "
              "WebSocket subscribers have it), memory engine:\n")
        print("| scenario | figure | rotor mem, Nagle | Nchan mem | ratio |")
        print("|---|---|--:|--:|--:|")
        for scen, key, label, f in ROWS:
            a_, b_ = num(data, "rotor-nagle", scen, key), num(data, "nchan-mem", scen, key)
            if a_ is None:
                continue
            print("| {} | {} | {} | {} | {} |".format(scen, label, fmt(a_, f), fmt(b_, f), ratio(a_, b_)))
    print("\nTargets (issue 6), rotor/Nchan from this run:")
    def check(label, scen, key, limit, pairs=(("rotor-mem", "nchan-mem"), ("rotor-redis", "nchan-redis"),
                                              ("rotor-nagle", "nchan-mem"))):
        for r, n in pairs:
            a_, b_ = num(data, r, scen, key), num(data, n, scen, key)
            if a_ is None or b_ is None or b_ == 0:
                print("- {} ({} vs {}): no data".format(label, r, n))
                continue
            q = a_ / b_
            print("- {} ({} vs {}): {:.2f} (target ≤ {}) {}".format(
                label, r, n, q, limit, "MET" if q <= limit else "NOT MET"))
    check("RSS per idle conn, 15k", "idle15k", "rss_per_conn_b", 0.34)
    check("CPU per M deliveries, fanout 1k x 100/s", "fanout1k-100", "cpu_per_M_deliv_s", 0.6)
    check("CPU per M deliveries, fanout 10k x 100/s", "fanout10k-100", "cpu_per_M_deliv_s", 0.6)
    check("CPU per M deliveries, many", "many", "cpu_per_M_deliv_s", 0.6)
    check("CPU per publication, many", "many", "cpu_per_pub_us", 0.5)
    check("latency p99, fanout 1k x 100/s", "fanout1k-100", "lat_p99_us", 0.5)
    floor(data)
    lost = [(t, s) for (t, s) in data if t.startswith("rotor") and (num(data, t, s, "lost") or 0) > 0]
    print("- rotor lost no publication: {}".format(
        "MET" if not lost else "NOT MET: " + ", ".join("{} {}".format(*x) for x in sorted(lost))))
    if notes:
        print("\nNotes:")
        for n in notes:
            print("- " + n)


if __name__ == "__main__":
    main()
