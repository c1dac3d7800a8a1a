# ruff: noqa: E501 - the page is one HTML/JS document
"""The likes page: one self-contained HTML document (no external assets), served by ``create_likes_app``
with the run's page token in its ``<meta>`` (its script sends it with every API call)."""

PAGE_TOKEN_SLOT = "__TDMR1_PAGE_TOKEN__"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tdmr1 likes</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="tdmr1-page-token" content="__TDMR1_PAGE_TOKEN__">
<style>
body{font:14px system-ui,sans-serif;margin:0;background:#f6f6f4;color:#222}
header{background:#263238;color:#fff;padding:10px 18px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:17px;margin:0}
#status{font-weight:600}
main{display:flex;gap:18px;padding:14px 18px;align-items:flex-start}
#groups{flex:1}
.group{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 10px;margin-bottom:10px}
.prompt{font-weight:600;margin-bottom:6px}
.row{display:flex;gap:8px;flex-wrap:wrap}
.cell{border:3px solid transparent;border-radius:5px;padding:2px;text-align:center;cursor:pointer}
.cell img{width:104px;image-rendering:pixelated;display:block;background:#000}
.cell.sel{border-color:#1e88e5}
.cell.like{background:#c8e6c9}.cell.dislike{background:#ffcdd2}
.cell button{margin:3px 2px 0;font-size:12px;padding:1px 6px}
aside{width:300px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 10px;margin-bottom:10px}
.card h2{font-size:14px;margin:0 0 6px}
.card img{width:100%;image-rendering:pixelated}
kbd{background:#eee;border:1px solid #bbb;border-radius:3px;padding:0 4px;font-size:12px}
.bar{height:8px;background:#e0e0e0;border-radius:4px;overflow:hidden;margin-top:4px}
.bar div{height:100%;background:#43a047}
</style></head><body>
<header><h1>tdmr1 &middot; likes</h1><span id="run"></span><span id="status">connecting&hellip;</span></header>
<main><section id="groups"></section>
<aside>
 <div class="card"><h2>Progress</h2><div id="progress"></div><div class="bar"><div id="bar" style="width:0"></div></div>
  <div id="total" style="margin-top:6px"></div></div>
 <div class="card"><h2>Like rate per iteration</h2><svg id="curve" width="280" height="90"></svg></div>
 <div class="card"><h2>Keys</h2><kbd>&larr;</kbd><kbd>&rarr;</kbd> move &nbsp; <kbd>L</kbd>/<kbd>1</kbd> like &nbsp;
  <kbd>D</kbd>/<kbd>0</kbd> dislike &nbsp; <kbd>G</kbd> like the rest of the group, <kbd>X</kbd> dislike it</div>
 <div class="card" id="samples"></div>
</aside></main>
<script>
const token = new URLSearchParams(location.search).get("token") || "";
const q = token ? "?token=" + encodeURIComponent(token) : "";
const pageToken = document.querySelector('meta[name="tdmr1-page-token"]').content;
const hdr = {...(token ? {"X-Token": token} : {}), "X-Tdmr1-Page": pageToken};
let state = null, cells = [], sel = 0, batchKey = "";
function esc(s){return s.replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));}
async function send(i, label){
  const c = cells[i]; if(!c) return;
  c.label = label; paintCell(i);
  const r = await fetch("/api/label" + q, {method:"POST", headers:{...hdr, "Content-Type":"application/json"},
    body: JSON.stringify({hash:c.hash, prompt:c.prompt, label:label})});
  if(r.ok){ const j = await r.json(); setNeeded(j.needed); }
}
function paintCell(i){
  const c = cells[i], el = document.getElementById("c" + i); if(!el) return;
  el.className = "cell" + (i === sel ? " sel" : "") + (c.label === 1 ? " like" : c.label === 0 ? " dislike" : "");
}
function select(i){ const old = sel; sel = Math.max(0, Math.min(cells.length - 1, i)); paintCell(old); paintCell(sel);
  const el = document.getElementById("c" + sel); if(el) el.scrollIntoView({block:"nearest"}); }
function nextUnlabelled(){ for(let k = 1; k <= cells.length; k++){ const j = (sel + k) % cells.length;
  if(cells[j].label === null) return j; } return sel; }
function setNeeded(n){
  const st = document.getElementById("status");
  st.textContent = n > 0 ? `the trainer waits for ${n} more label${n === 1 ? "" : "s"} (iteration ${state.iteration})`
                         : "no batch waiting: the trainer is working";
}
function render(s){
  state = s;
  document.getElementById("run").textContent = `run ${s.run}`;
  const key = s.waiting ? s.iteration + ":" + s.groups.map(g => g.images.map(x => x.hash).join()).join() : "";
  if(key !== batchKey){
    batchKey = key; cells = []; sel = 0;
    const html = s.groups.map(g => `<div class="group"><div class="prompt">${esc(g.prompt)}</div><div class="row">` +
      g.images.map(x => { const i = cells.length; cells.push({hash:x.hash, prompt:g.prompt, label:x.label, group:g});
        return `<div class="cell" id="c${i}" onclick="select(${i})"><img alt="" src="/api/image/${x.hash}${q}">` +
          `<button onclick="event.stopPropagation();select(${i});send(${i},1)">like</button>` +
          `<button onclick="event.stopPropagation();select(${i});send(${i},0)">dislike</button></div>`; }).join("") +
      `</div></div>`).join("");
    document.getElementById("groups").innerHTML = html || "<p>Nothing to label right now.</p>";
    const first = cells.findIndex(c => c.label === null); sel = first < 0 ? 0 : first;
    cells.forEach((_, i) => paintCell(i));
  }
  setNeeded(s.needed);
  const done = s.batch - s.needed;
  document.getElementById("progress").textContent = s.waiting ? `${done} / ${s.batch} labelled, ${s.needed} pending` : "idle";
  document.getElementById("bar").style.width = (s.batch ? 100 * done / s.batch : 0) + "%";
  document.getElementById("total").textContent = `${s.total_labels} labels stored`;
  const pts = s.curve, w = 280, h = 90;
  let svg = `<line x1="0" y1="${h-4}" x2="${w}" y2="${h-4}" stroke="#bbb"/><line x1="0" y1="4" x2="${w}" y2="4" stroke="#eee"/>` +
    `<text x="${w-2}" y="14" font-size="10" text-anchor="end" fill="#888">100%</text>`;
  if(pts.length){
    const x = i => pts.length === 1 ? w / 2 : 4 + i * (w - 8) / (pts.length - 1), y = r => h - 4 - r * (h - 8);
    svg += `<polyline fill="none" stroke="#43a047" stroke-width="2" points="${pts.map((p, i) => x(i) + "," + y(p.like_rate)).join(" ")}"/>`;
    svg += pts.map((p, i) => `<circle cx="${x(i)}" cy="${y(p.like_rate)}" r="2.5" fill="#2e7d32"><title>iteration ${p.iteration}: ${(100*p.like_rate).toFixed(0)}% of ${p.n}</title></circle>`).join("");
  }
  document.getElementById("curve").innerHTML = svg;
  const sm = s.samples.slice(-4);
  document.getElementById("samples").innerHTML = sm.length ? "<h2>Samples (same seeds)</h2>" +
    sm.map(n => `<div>${esc(n.replace(".png", ""))}</div><img alt="${esc(n)}" src="/api/sample/${n}${q}">`).join("") : "";
}
async function poll(){
  try { const r = await fetch("/api/state" + q, {headers:hdr}); if(r.ok) render(await r.json());
        else document.getElementById("status").textContent = "error " + r.status; }
  catch(e){ document.getElementById("status").textContent = "the trainer is not answering"; }
}
document.addEventListener("keydown", e => {
  if(!cells.length) return;
  const k = e.key.toLowerCase();
  if(k === "arrowright") select(sel + 1);
  else if(k === "arrowleft") select(sel - 1);
  else if(k === "l" || k === "1"){ send(sel, 1); select(nextUnlabelled()); }
  else if(k === "d" || k === "0"){ send(sel, 0); select(nextUnlabelled()); }
  else if(k === "g" || k === "x"){ const g = cells[sel].group, v = k === "g" ? 1 : 0;
    cells.forEach((c, i) => { if(c.group === g && c.label === null) send(i, v); }); select(nextUnlabelled()); }
  else return;
  e.preventDefault();
});
poll(); setInterval(poll, 1000);
</script></body></html>
"""
