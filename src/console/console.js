// seald console: place a seal by clicking on a page's preview (the only script; no inline script).
document.addEventListener("DOMContentLoaded", function () {
  var page = document.getElementById("page");
  if (!page) return;
  var x = document.querySelector("input[name=x]");
  var y = document.querySelector("input[name=y]");
  var marker = document.getElementById("marker");
  var w = parseFloat(page.dataset.sealW), h = parseFloat(page.dataset.sealH);
  function show() {
    if (x.value === "" || y.value === "") return;
    marker.setAttribute("x", x.value);
    marker.setAttribute("y", y.value);
  }
  page.addEventListener("click", function (ev) {
    var pt = page.createSVGPoint();
    pt.x = ev.clientX;
    pt.y = ev.clientY;
    var mm = pt.matrixTransform(page.getScreenCTM().inverse());
    x.value = Math.max(0, mm.x - w / 2).toFixed(1);
    y.value = Math.max(0, mm.y - h / 2).toFixed(1);
    show();
  });
  x.addEventListener("input", show);
  y.addEventListener("input", show);
});
