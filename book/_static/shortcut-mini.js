/* The book's own script (added by _config.yml's html_js_files).

   1. Tables fit the content column. A table wider than the column (a results table with a column
      per step budget, generated or typed) is tightened, gentlest change first, until it fits:
      identifiers such as progressive_distillation may break after their underscores and cells get
      less padding; the font shrinks to 85%; a "mean ± spread" cell may break before its "±";
      the font shrinks further, down to 70%. What still does not fit (on a phone) scrolls sideways
      inside its container, with a line above it that says so.
   2. An image that stands alone in a paragraph shows its alt text as a caption, so two sample
      grids with the same title inside the picture (one of them the 2-GPU run) read differently.
*/
(function () {
  "use strict";

  var MIN_FONT = 70; // percent

  function column() {
    return document.querySelector("article.bd-article") || document.querySelector("main");
  }

  function innerWidth(el) {
    var style = getComputedStyle(el);
    return el.clientWidth - parseFloat(style.paddingLeft || 0) - parseFloat(style.paddingRight || 0);
  }

  function breakAfterUnderscores(table) {
    table.querySelectorAll("td, th").forEach(function (cell) {
      if (cell.classList.contains("sm-number")) return;
      var walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
      var texts = [];
      while (walker.nextNode()) texts.push(walker.currentNode);
      texts.forEach(function (node) {
        if (node.nodeValue.indexOf("_") < 0) return;
        var parts = node.nodeValue.split("_");
        var frag = document.createDocumentFragment();
        parts.forEach(function (part, i) {
          frag.appendChild(document.createTextNode(part + (i < parts.length - 1 ? "_" : "")));
          if (i < parts.length - 1) frag.appendChild(document.createElement("wbr"));
        });
        node.parentNode.replaceChild(frag, node);
      });
    });
  }

  function wrapSpreads(table) {
    // "3976 ± 2.74" may now break before its "±" (and nowhere else): two short lines
    table.querySelectorAll("td.sm-number, th.sm-number").forEach(function (cell) {
      if (cell.textContent.indexOf("±") < 0) return;
      cell.classList.add("sm-spread");
      var walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
      while (walker.nextNode()) {
        var node = walker.currentNode;
        node.nodeValue = node.nodeValue.replace(/\s+/g, "\u00a0").replace(/\u00a0±\u00a0/g, " ±\u00a0");
      }
    });
  }

  function fitTables() {
    var col = column();
    if (!col) return;
    var avail = innerWidth(col);
    col.querySelectorAll("table").forEach(function (table) {
      if (table.dataset.smFitted) return;
      table.dataset.smFitted = "1";
      if (table.scrollWidth <= avail) return;
      // the gentlest change first, until the table fits
      var steps = [
        function () { breakAfterUnderscores(table); table.classList.add("sm-tight"); },
        function () { table.style.fontSize = "95%"; },
        function () { table.style.fontSize = "90%"; },
        function () { table.style.fontSize = "85%"; },
        function () { wrapSpreads(table); },
      ];
      for (var size = 80; size >= MIN_FONT; size -= 5) {
        steps.push((function (s) { return function () { table.style.fontSize = s + "%"; }; })(size));
      }
      for (var i = 0; i < steps.length && table.scrollWidth > avail; i++) steps[i]();
      if (table.scrollWidth > avail) {
        var box = table.closest(".pst-scrollable-table-container") || table.parentElement;
        var columns = table.rows.length ? table.rows[0].cells.length : 0;
        var hint = document.createElement("p");
        hint.className = "sm-scroll-hint";
        hint.textContent = "Scroll the table sideways for all " + columns + " columns.";
        box.parentNode.insertBefore(hint, box);
      }
    });
  }

  function captionImages() {
    var col = column();
    if (!col) return;
    col.querySelectorAll("p > img[alt]").forEach(function (img) {
      var p = img.parentElement;
      var alt = img.getAttribute("alt").trim();
      if (!alt || /\.(png|jpe?g|gif|svg)$/i.test(alt) || p.querySelector(".sm-image-caption")) return;
      if (p.children.length !== 1 || p.textContent.trim()) return;
      var caption = document.createElement("span");
      caption.className = "sm-image-caption";
      caption.textContent = alt;
      p.appendChild(caption);
    });
  }

  function run() {
    captionImages();
    fitTables();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", run);
  } else {
    run();
  }
  // MathJax and web fonts change widths after the first layout: measure again when they are done.
  function refit() {
    document.querySelectorAll("table[data-sm-fitted]").forEach(function (t) {
      if (!t.classList.contains("sm-tight")) delete t.dataset.smFitted;
    });
    fitTables();
  }
  window.addEventListener("load", function () {
    refit();
    var mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) mj.startup.promise.then(refit);
  });
})();
