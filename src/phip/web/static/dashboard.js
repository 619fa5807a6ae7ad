// Charts of the dashboard, drawn with the vendored ECharts. Every element with class "chart"
// names a JSON <script> block (data-source) and a kind (data-kind):
//   line (default) {days: [...], values: [...]}     a trend over days
//   bars           {categories: [...], series: [{name, values}]}   figures compared across regions
//   funnel         {items: [{name, value}]}          stages, each a subset of the one before
(function () {
  if (typeof echarts === "undefined") { return; }
  var builders = {
    line: function (data, el) {
      return {
        tooltip: { trigger: "axis" },
        grid: { left: 60, right: 20, top: 20, bottom: 40 },
        xAxis: { type: "category", data: data.days },
        yAxis: { type: "value" },
        series: [{ name: el.dataset.name || "", type: "line", smooth: true, areaStyle: {}, data: data.values }]
      };
    },
    bars: function (data) {
      return {
        tooltip: { trigger: "axis" },
        legend: { top: 0 },
        grid: { left: 50, right: 20, top: 36, bottom: 60 },
        xAxis: { type: "category", data: data.categories, axisLabel: { interval: 0, rotate: 30 } },
        yAxis: { type: "value" },
        series: data.series.map(function (s) {
          return { name: s.name, type: "bar", data: s.values, label: { show: data.categories.length <= 12, position: "top" } };
        })
      };
    },
    funnel: function (data) {
      return {
        tooltip: { trigger: "item", formatter: "{b}：{c}" },
        series: [{ type: "funnel", sort: "none", left: "10%", width: "80%", gap: 2,
                   label: { show: true, position: "inside", formatter: "{b} {c}" }, data: data.items }]
      };
    }
  };
  document.querySelectorAll(".chart[data-source]").forEach(function (el) {
    var source = document.getElementById(el.dataset.source);
    var build = builders[el.dataset.kind || "line"];
    if (!source || !build) { return; }
    var chart = echarts.init(el);
    chart.setOption(build(JSON.parse(source.textContent), el));
    window.addEventListener("resize", function () { chart.resize(); });
  });
})();
