"""The console's stylesheet: plain CSS, inlined in each page (no build step, no file to serve)."""

from __future__ import annotations

__all__ = ["CSS"]

CSS = """
:root { --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --muted: #57606a; --line: #d0d7de; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1f2328; }
header { background: #24292f; color: #fff; padding: .6rem 1rem; }
header h1 { font-size: 1.1rem; margin: 0; }
header p { margin: .2rem 0 0; color: #c9d1d9; font-size: .85rem; }
nav { display: flex; flex-wrap: wrap; gap: .8rem; padding: .5rem 1rem; background: var(--bg);
      border-bottom: 1px solid var(--line); }
main { padding: 0 1rem 2rem; max-width: 72rem; }
section { margin-top: 1.4rem; }
h2 { font-size: 1.05rem; border-bottom: 1px solid var(--line); padding-bottom: .2rem; }
a { color: #0969da; }
.muted, .note { color: var(--muted); }
.note { background: #fff8c5; border: 1px solid #d4a72c; padding: .3rem .6rem; border-radius: 4px; }
.chips { display: flex; flex-wrap: wrap; gap: .4rem; margin: .4rem 0; }
.chip { border: 1px solid var(--line); border-radius: 999px; padding: .1rem .7rem; text-decoration: none;
        color: inherit; background: #fff; }
.chip.on { background: #ddf4ff; border-color: #0969da; }
.badge { display: inline-block; border-radius: 4px; padding: 0 .4rem; font-size: .85rem; color: #fff; }
.sent, .ready, .finished { background: var(--ok); }
.skipped, .cooling, .running { background: var(--warn); }
.failed, .disabled, .parked, .stopped { background: var(--bad); }
.retrying { background: #8250df; }
form.filters { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; }
label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); }
input, select, button { font: inherit; padding: .3rem .5rem; }
button { border: 1px solid #1f883d; background: #1f883d; color: #fff; border-radius: 6px; cursor: pointer; }
form.signout { margin-left: auto; }
form.signout button { padding: 0 .6rem; background: #fff; color: #1f883d; }
a.button { display: inline-block; text-decoration: none; border: 1px solid #1f883d; background: #1f883d;
           color: #fff; border-radius: 6px; padding: .3rem .7rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--bg); font-size: .85rem; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.error { color: var(--bad); overflow-wrap: anywhere; }
.bar { background: #eaeef2; border-radius: 4px; height: .9rem; min-width: 8rem; overflow: hidden; }
.bar span { display: block; height: 100%; background: var(--ok); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(16rem, 1fr)); gap: .6rem; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .7rem; }
.card dl { display: grid; grid-template-columns: auto 1fr; gap: .1rem .6rem; margin: .3rem 0 0; }
.card dt { color: var(--muted); }
.card dd { margin: 0; }
code { background: var(--bg); padding: 0 .25rem; border-radius: 3px; overflow-wrap: anywhere; }
@media (max-width: 640px) {
  table.stack thead { display: none; }
  table.stack tr { display: block; border: 1px solid var(--line); border-radius: 6px; margin: .5rem 0; }
  table.stack td { display: flex; gap: .6rem; border: 0; padding: .2rem .6rem; }
  table.stack td::before { content: attr(data-label); color: var(--muted); min-width: 6rem; }
  td.num { text-align: left; }
}
"""
