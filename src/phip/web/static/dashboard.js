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
        // labels beside the funnel: a stage of 3 out of 84 is too thin to hold its own text
        series: [{ type: "funnel", sort: "none", left: "5%", width: "55%", gap: 2,
                   label: { show: true, position: "right", formatter: "{b} {c}" }, data: data.items }]
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

// Phone width: the rows of a table.stack read as cards (dashboard.css); each cell is labelled
// with its column's heading here, so the templates keep one plain table.
(function () {
  document.querySelectorAll("table.stack").forEach(function (table) {
    var heads = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) { return th.textContent.trim(); });
    table.querySelectorAll("tbody tr").forEach(function (tr) {
      Array.prototype.forEach.call(tr.children, function (td, i) {
        if (heads[i] && !td.hasAttribute("colspan")) { td.setAttribute("data-label", heads[i]); }
      });
    });
  });
})();
