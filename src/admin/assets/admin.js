// The admin panel's behaviour: copy buttons, and the statistics chart (uPlot) from the page's JSON data.
(function () {
  "use strict";
  function copyButtons() {
    document.querySelectorAll("button[data-copy]").forEach(function (b) {
      b.addEventListener("click", function () {
        var el = document.getElementById(b.getAttribute("data-copy"));
        if (!el || !navigator.clipboard) { return; }
        navigator.clipboard.writeText(el.textContent).then(function () { b.textContent = "Copied"; });
      });
    });
  }
  function chart() {
    var host = document.getElementById("chart");
    var data = document.getElementById("chart-data");
    if (!host || !data || typeof uPlot === "undefined") { return; }
    var d = JSON.parse(data.textContent);
    var bars = uPlot.paths.bars({ size: [0.6, 40] });
    var series = [
      { label: "Day" },
      { label: "Delivered first time", stroke: "#1a7f37", fill: "rgba(26,127,55,0.35)", paths: bars },
      { label: "Delivered after retries", stroke: "#0b5cad", fill: "rgba(11,92,173,0.35)", paths: bars },
      { label: "Dead-lettered", stroke: "#b42318", fill: "rgba(180,35,24,0.35)", paths: bars },
      { label: "Retries scheduled", stroke: "#b7791f", fill: "rgba(183,121,31,0.35)", paths: bars },
      { label: "Success rate %", stroke: "#6f42c1", width: 2, scale: "%" }
    ];
    var opts = {
      title: "Deliveries per day by outcome",
      width: Math.max(300, Math.min(host.clientWidth || 900, 1100)),
      height: 300,
      series: series,
      scales: { x: { time: true }, "%": { range: [0, 100] } },
      axes: [{}, { label: "attempts" }, { side: 1, scale: "%", label: "success %", grid: { show: false } }]
    };
    new uPlot(opts, [d.days, d.deliveredFirst, d.deliveredRetry, d.deadLettered, d.retrying, d.successRate], host);
    host.setAttribute("data-rendered", "true");
  }
  document.addEventListener("DOMContentLoaded", function () { copyButtons(); chart(); });
})();
