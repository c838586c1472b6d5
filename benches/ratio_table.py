"""Prints a markdown table comparing two labels of chatgate-load results (medians over rounds).

Usage: python3 benches/ratio_table.py results.jsonl LABEL_A LABEL_B "title A" "title B"
"""
import json
import statistics
import sys

path, a, b, title_a, title_b = sys.argv[1:6]
rows = [json.loads(line) for line in open(path) if line.strip()]
groups = {}
for r in rows:
    groups.setdefault((r.get("rate"), r.get("rooms")), {}).setdefault(r["label"], []).append(r)
fields = [
    ("deliveries_per_sec", "deliveries/s", "{:,.0f}"),
    ("server_cpu_us_per_delivery", "server µs/delivery", "{:.2f}"),
    ("p50_us", "p50 µs", "{:,.0f}"),
    ("p99_us", "p99 µs", "{:,.0f}"),
    ("lost", "lost", "{}"),
]
print(f"\n| load | metric | {title_a} | {title_b} | ratio |\n| --- | --- | --- | --- | --- |")
for (rate, rooms), by in groups.items():
    name = f"fanout rate {rate or 'max'}, {rooms} rooms"
    for field, label, fmt in fields:
        def med(runs):
            values = [r[field] for r in runs if r.get(field) is not None]
            return statistics.median(values) if values else None
        va, vb = med(by.get(a, [])), med(by.get(b, []))
        show = lambda v: "?" if v is None else fmt.format(v)
        ratio = f"{va / vb:.2f}" if va is not None and vb else "-"
        print(f"| {name} | {label} | {show(va)} | {show(vb)} | {ratio} |")
