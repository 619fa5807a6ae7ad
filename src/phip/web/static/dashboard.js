// Charts of the dashboard: every element with class "chart" names a JSON <script> block
// (data-source) holding {days: [...], values: [...]}; drawn with the vendored ECharts.
(function () {
  if (typeof echarts === "undefined") { return; }
  document.querySelectorAll(".chart[data-source]").forEach(function (el) {
    var source = document.getElementById(el.dataset.source);
    if (!source) { return; }
    var data = JSON.parse(source.textContent);
    var chart = echarts.init(el);
    chart.setOption({
      tooltip: { trigger: "axis" },
      grid: { left: 60, right: 20, top: 20, bottom: 40 },
      xAxis: { type: "category", data: data.days },
      yAxis: { type: "value" },
      series: [{ name: el.dataset.name || "", type: "line", smooth: true, areaStyle: {}, data: data.values }]
    });
    window.addEventListener("resize", function () { chart.resize(); });
  });
})();
