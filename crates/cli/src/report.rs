//! `corevisor report TRACE -o report.html`: one self-contained HTML page (no network, no
//! external files) with the physical-memory ownership map over time, a timeline per VM and
//! the table of traps. The page's data is the trace, digested here into JSON the page's
//! script draws; the script logs `corevisor-report ready` when it has drawn everything.

use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A trace read back: header, steps, final object.
pub struct Trace {
    pub header: Value,
    pub steps: Vec<Value>,
    pub fin: Value,
}

/// Parses a trace file; errors name the line.
pub fn parse(text: &str) -> Result<Trace, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let parse_line = |(i, l): (usize, &str)| -> Result<Value, String> {
        serde_json::from_str(l).map_err(|e| format!("line {}: not JSON: {e}", i + 1))
    };
    let header = parse_line(lines.next().ok_or("empty trace")?)?;
    if header.get("trace").and_then(Value::as_str) != Some("corevisor") {
        return Err("line 1: not a corevisor trace (no \"trace\": \"corevisor\")".into());
    }
    let mut steps = Vec::new();
    let mut fin = None;
    for (i, l) in lines {
        let v = parse_line((i, l))?;
        if let Some(f) = v.get("final") {
            fin = Some(f.clone());
        } else if v.get("seq").is_some() {
            steps.push(v);
        } else {
            return Err(format!(
                "line {}: neither a step nor the final object",
                i + 1
            ));
        }
    }
    Ok(Trace {
        header,
        steps,
        fin: fin.ok_or("the trace has no final object (was the run cut short?)")?,
    })
}

fn owner_name(o: i64) -> String {
    match o {
        0 => "host".into(),
        16 => "KCore".into(),
        0xFFFF_FFFF => "none".into(),
        v => format!("VM {v}"),
    }
}

/// Ownership over time: rows of contiguous pages with the same history, each a list of
/// `[from_seq, to_seq, owner]` (the boot owner is implied before the first change).
fn ownership_rows(t: &Trace) -> Vec<Value> {
    let n = t.steps.len() as i64;
    let mut hist: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for s in &t.steps {
        let seq = s["seq"].as_i64().unwrap_or(0);
        for o in s["owners"].as_array().into_iter().flatten() {
            let (pfn, owner) = (o[0].as_i64().unwrap_or(0), o[1].as_i64().unwrap_or(0));
            hist.entry(pfn).or_default().push((seq, owner));
        }
    }
    // Group contiguous pages with identical histories.
    // (first pfn, last pfn, history as (seq, owner)).
    type Row = (i64, i64, Vec<(i64, i64)>);
    let mut rows: Vec<Row> = Vec::new();
    for (pfn, h) in hist {
        match rows.last_mut() {
            Some((_, last, hh)) if *last + 1 == pfn && *hh == h => *last = pfn,
            _ => rows.push((pfn, pfn, h)),
        }
    }
    rows.into_iter()
        .map(|(first, last, h)| {
            let mut spans = Vec::new();
            for (k, (seq, owner)) in h.iter().enumerate() {
                let end = h.get(k + 1).map_or(n, |x| x.0);
                spans.push(json!([seq, end, owner_name(*owner)]));
            }
            let label = if first == last {
                format!("{:#x}", first * 4096)
            } else {
                format!(
                    "{:#x}..{:#x} ({} pages)",
                    first * 4096,
                    (last + 1) * 4096,
                    last - first + 1
                )
            };
            json!({"label": label, "spans": spans})
        })
        .collect()
}

/// Per VM: when each CPU ran it and what happened to it.
fn vm_timelines(t: &Trace) -> Vec<Value> {
    let mut runs: BTreeMap<i64, Vec<(i64, i64, i64)>> = BTreeMap::new();
    let mut events: BTreeMap<i64, Vec<(i64, String)>> = BTreeMap::new();
    let mut open: BTreeMap<i64, (i64, i64)> = BTreeMap::new(); // cpu -> (vm, from)
    for s in &t.steps {
        let seq = s["seq"].as_i64().unwrap_or(0);
        let cpu = s["cpu"].as_i64().unwrap_or(0);
        let p = s["principal"].as_str().unwrap_or("");
        let action = s["action"].as_str().unwrap_or("");
        let ok = s["result"] == "ok";
        if let Some(v) = p.strip_prefix("vm ").and_then(|v| v.parse::<i64>().ok()) {
            let e = open.entry(cpu).or_insert((v, seq));
            if e.0 != v {
                *e = (v, seq);
            }
            runs.entry(v)
                .or_default()
                .retain(|r| !(r.0 == cpu && r.1 == e.1));
            runs.entry(v).or_default().push((cpu, e.1, seq + 1));
            if action.starts_with("guest_psci") && ok {
                events
                    .entry(v)
                    .or_default()
                    .push((seq, "powers off".into()));
            }
            if !ok {
                events.entry(v).or_default().push((
                    seq,
                    format!("{action}: {}", s["result"].as_str().unwrap_or("")),
                ));
            }
        } else {
            open.remove(&cpu);
        }
        let vm_arg = s["arguments"]["args"]
            .get(0)
            .and_then(Value::as_str)
            .and_then(|a| i64::from_str_radix(a.trim_start_matches("0x"), 16).ok());
        if action == "hvc REGISTER_KVM" && ok {
            if let Some(v) = s["x0"]
                .as_str()
                .and_then(|x| i64::from_str_radix(x.trim_start_matches("0x"), 16).ok())
            {
                events
                    .entry(v)
                    .or_default()
                    .push((seq, "registered".into()));
            }
        }
        if let Some(v) = vm_arg {
            let label = match action {
                "hvc VERIFY_VM_IMAGE" => Some("image verified (or refused)"),
                "hvc CLEAR_VM_S2_RANGE" => Some("pages reclaimed"),
                _ => None,
            };
            if let (Some(l), true) = (label, ok) {
                events.entry(v).or_default().push((seq, l.into()));
            }
        }
        if action.starts_with("vcpu_run") && !ok {
            if let Some(v) = action
                .split_whitespace()
                .nth(1)
                .and_then(|x| x.trim_start_matches("vm").parse::<i64>().ok())
            {
                events.entry(v).or_default().push((
                    seq,
                    format!("run refused: {}", s["result"].as_str().unwrap_or("")),
                ));
            }
        }
    }
    let vms: std::collections::BTreeSet<i64> = runs.keys().chain(events.keys()).copied().collect();
    vms.into_iter()
        .map(|v| {
            json!({
                "vm": v,
                "runs": runs.get(&v).cloned().unwrap_or_default().iter().map(|(c, a, b)| json!([c, a, b])).collect::<Vec<_>>(),
                "events": events.get(&v).cloned().unwrap_or_default().iter().map(|(s, l)| json!([s, l])).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn escape_script(s: &str) -> String {
    // Inside <script type="application/json">, only "</" can end the element.
    s.replace("</", "<\\/")
}

/// The self-contained HTML page for trace `t`.
pub fn html(t: &Trace) -> String {
    let data = json!({
        "header": t.header,
        "final": t.fin,
        "ownership": ownership_rows(t),
        "vms": vm_timelines(t),
        "steps": t.steps,
    });
    let title = format!(
        "corevisor report: {}",
        t.header["scenario"].as_str().unwrap_or("run")
    );
    TEMPLATE
        .replace("{{TITLE}}", &title.replace('<', "&lt;"))
        .replace("{{DATA}}", &escape_script(&data.to_string()))
}

const TEMPLATE: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{TITLE}}</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2330; background: #fafbfc; }
  h1 { font-size: 22px; margin: 0 0 4px; }
  h2 { font-size: 17px; margin: 28px 0 8px; }
  .sub { color: #5a6475; margin-bottom: 16px; }
  .cards { display: flex; gap: 12px; flex-wrap: wrap; }
  .card { background: #fff; border: 1px solid #dde2ea; border-radius: 6px; padding: 10px 14px; min-width: 120px; }
  .card b { display: block; font-size: 20px; }
  svg { background: #fff; border: 1px solid #dde2ea; border-radius: 6px; }
  table { border-collapse: collapse; background: #fff; width: 100%; font-size: 12.5px; }
  th, td { border-bottom: 1px solid #e6e9ef; padding: 3px 6px; text-align: left; white-space: nowrap; }
  th { background: #eef1f6; position: sticky; top: 0; }
  tr.halt td { background: #fde8e8; } tr.fault td { background: #fff4dc; } tr.undefined td { background: #eee; }
  .legend span { display: inline-block; margin-right: 12px; }
  .legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; border-radius: 2px; }
  .bad { color: #b3261e; font-weight: 600; } .good { color: #1e7b34; font-weight: 600; }
  .wrap { max-height: 480px; overflow: auto; border: 1px solid #dde2ea; border-radius: 6px; }
</style>
</head>
<body>
<h1 id="title"></h1>
<div class="sub" id="sub"></div>
<div class="cards" id="cards"></div>
<h2>Physical memory ownership over time</h2>
<div class="legend" id="legend"></div>
<div id="own"></div>
<h2>VM timelines</h2>
<div id="vms"></div>
<h2>Traps</h2>
<div class="wrap"><table id="traps"><thead><tr><th>#</th><th>step</th><th>via</th><th>cpu</th><th>principal</th><th>entry</th><th>action</th><th>arguments</th><th>result</th><th>x0</th><th>value</th><th>time</th></tr></thead><tbody></tbody></table></div>
<script type="application/json" id="data">{{DATA}}</script>
<script>
"use strict";
// The page reports its own health for tests and readers: data-status on <body>.
const problems = [];
window.addEventListener("error", e => { problems.push(String(e.message)); document.body.dataset.status = "error: " + problems.join("; "); });
const consoleError = console.error.bind(console);
console.error = (...a) => { problems.push(a.join(" ")); document.body.dataset.status = "error: " + problems.join("; "); consoleError(...a); };
const D = JSON.parse(document.getElementById("data").textContent);
const NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#4f7cac", "#e07a5f", "#81b29a", "#f2cc8f", "#9b5de5", "#00bbf9", "#f15bb5", "#8d99ae"];
const colors = {};
function color(owner) {
  if (owner === "host") return "#c9d3e0";
  if (owner === "KCore") return "#3d405b";
  if (owner === "none") return "#ffffff";
  if (!(owner in colors)) colors[owner] = PALETTE[Object.keys(colors).length % PALETTE.length];
  return colors[owner];
}
function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
const steps = D.steps, n = Math.max(steps.length, 1), fin = D.final;
document.getElementById("title").textContent = "corevisor report: " + D.header.scenario;
document.getElementById("sub").textContent = "profile " + D.header.profile + ", engine " + D.header.engine +
  ", " + D.header.machine.cpus + " CPUs, " + D.header.machine.ram_mib + " MiB RAM";
const mism = steps.reduce((a, s) => a + s.mismatches.length, 0);
const cards = [
  ["steps", steps.length],
  ["KCore entries", steps.reduce((a, s) => a + s.entry.length, 0)],
  ["halted", fin.halted ? "yes" : "no"],
  ["invariants", fin.invariants === "ok" ? "ok" : "BROKEN"],
  ["core vs spec", D.header.engine === "checked" ? (mism === 0 ? "equal" : mism + " mismatches") : "not checked"],
];
for (const [k, v] of cards) { const c = el("div", {class: "card"}); c.append(el("b", {}, String(v)), k); document.getElementById("cards").append(c); }

// Ownership map: one row per group of pages with the same history, time left to right.
const W = 900, left = 230, rowH = 18, rows = D.ownership;
const own = el("svg:svg", {width: W + left + 10, height: Math.max(rows.length, 1) * rowH + 30});
rows.forEach((r, i) => {
  own.append(el("svg:text", {x: 4, y: 20 + i * rowH + 12, "font-size": 11}, r.label));
  const first = r.spans.length ? r.spans[0][0] : n;
  own.append(el("svg:rect", {x: left, y: 20 + i * rowH, width: W * first / n, height: rowH - 3, fill: color("host"), opacity: 0.6}));
  for (const [a, b, o] of r.spans) {
    const rect = el("svg:rect", {x: left + W * a / n, y: 20 + i * rowH, width: Math.max(1, W * (b - a) / n), height: rowH - 3, fill: color(o)});
    rect.append(el("svg:title", {}, r.label + ": " + o + " from step #" + a + " to #" + b));
    own.append(rect);
  }
});
own.append(el("svg:text", {x: left, y: 12, "font-size": 11}, "#0"));
own.append(el("svg:text", {x: left + W - 30, y: 12, "font-size": 11}, "#" + steps.length));
if (!rows.length) own.append(el("svg:text", {x: 4, y: 34, "font-size": 12}, "no page changed owner in this run"));
document.getElementById("own").append(own);
const legend = document.getElementById("legend");
for (const o of ["host", "KCore", ...Object.keys(colors)]) { const s = el("span"); s.append(el("i", {style: "background:" + color(o)}), o); legend.append(s); }

// VM timelines: bars where a CPU ran the VM, marks where something happened to it.
const vms = el("svg:svg", {width: W + left + 10, height: Math.max(D.vms.length, 1) * 44 + 20});
D.vms.forEach((v, i) => {
  const y = 10 + i * 44;
  vms.append(el("svg:text", {x: 4, y: y + 16, "font-size": 13, "font-weight": 600}, "VM " + v.vm));
  vms.append(el("svg:line", {x1: left, x2: left + W, y1: y + 12, y2: y + 12, stroke: "#ccd"}));
  for (const [cpu, a, b] of v.runs) {
    const r = el("svg:rect", {x: left + W * a / n, y: y + 4, width: Math.max(2, W * (b - a) / n), height: 16, fill: color("VM " + v.vm), rx: 3});
    r.append(el("svg:title", {}, "running on CPU " + cpu + " (#" + a + "-#" + b + ")"));
    vms.append(r);
  }
  for (const [s, label] of v.events) {
    const m = el("svg:circle", {cx: left + W * (s + 0.5) / n, cy: y + 30, r: 4, fill: label.includes("refused") || label.includes("halt") ? "#b3261e" : "#1d2330"});
    m.append(el("svg:title", {}, "#" + s + ": " + label));
    vms.append(m);
  }
});
if (!D.vms.length) vms.append(el("svg:text", {x: 4, y: 24, "font-size": 12}, "no VM in this run"));
document.getElementById("vms").append(vms);

// The trap table.
const tbody = document.querySelector("#traps tbody");
for (const s of steps) {
  const tr = el("tr", {class: s.result});
  const args = s.arguments ? s.arguments.call + "(" + s.arguments.args.join(", ") + ")" : "";
  const cells = [s.seq, s.step, s.via || "", s.cpu, s.principal, s.entry.join(", "), s.action, args, s.result,
                 s.x0 || "", s.value || "", (s.time_ns / 1000).toFixed(1) + " us"];
  for (const c of cells) tr.append(el("td", {}, String(c)));
  if (s.mismatches.length) tr.append(el("td", {class: "bad"}, s.mismatches.join("; ")));
  tbody.append(tr);
}
if (!problems.length) document.body.dataset.status = "ok";
console.log("corevisor-report ready: " + steps.length + " steps, " + rows.length + " page groups, " + D.vms.length + " VMs");
</script>
</body>
</html>
"##;
