/* picsift web: a little vanilla JS on server-rendered pages (no framework, no network).
   Keyboard shortcuts, box toggles, drag-and-drop upload, the pair inspector's overlays and
   the clickable cluster map. Every string put into the page goes through textContent or
   setAttribute, never innerHTML. */
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";

  function typing(target) {
    const tag = (target && target.tagName) || "";
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  // ---------------------------------------------------------------- keyboard shortcuts
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const key = event.key;
    const tag = (event.target && event.target.tagName) || "";
    if (key === "Enter" && (tag === "A" || tag === "BUTTON")) return;  // native activation
    const hit = Array.from(document.querySelectorAll("[data-key]"))
      .find(function (el) { return el.getAttribute("data-key") === key; });
    if (!hit) return;
    event.preventDefault();
    hit.click();
  });

  // ---------------------------------------------------------------- decorations from data-*
  function decorate() {
    document.querySelectorAll(".swatch[data-color]").forEach(function (el) {
      const colour = el.getAttribute("data-color");
      if (/^#[0-9A-Fa-f]{6}$/.test(colour)) el.style.backgroundColor = colour;
      const share = parseFloat(el.getAttribute("data-share"));
      if (share >= 0) el.style.width = Math.max(8, Math.round(share * 320)) + "px";
    });
    document.querySelectorAll(".bar[data-width]").forEach(function (el) {
      const width = Math.max(0, Math.min(100, parseFloat(el.getAttribute("data-width")) || 0));
      el.style.width = width + "%";
    });
    document.querySelectorAll("input[data-toggle]").forEach(function (box) {
      box.addEventListener("change", function () {
        document.querySelectorAll("svg.boxes." + box.getAttribute("data-toggle")).forEach(function (svg) {
          svg.classList.toggle("hidden", !box.checked);
        });
      });
    });
  }

  // ---------------------------------------------------------------- drag and drop upload
  function dropzone() {
    const form = document.getElementById("upload-search");
    const input = document.getElementById("upload-file");
    if (!form || !input) return;
    ["dragenter", "dragover"].forEach(function (name) {
      form.addEventListener(name, function (event) { event.preventDefault(); form.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      form.addEventListener(name, function () { form.classList.remove("over"); });
    });
    form.addEventListener("drop", function (event) {
      event.preventDefault();
      if (!event.dataTransfer || !event.dataTransfer.files.length) return;
      input.files = event.dataTransfer.files;
      form.submit();
    });
    input.addEventListener("change", function () { if (input.files.length) form.submit(); });
  }

  // ---------------------------------------------------------------- pair inspector
  function svgEl(name, attrs) {
    const el = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, String(attrs[k])); });
    return el;
  }

  function points(list) {
    return list.map(function (p) { return p[0] + "," + p[1]; }).join(" ");
  }

  function drawSide(figure, side) {
    const svg = svgEl("svg", { viewBox: "0 0 " + side.width + " " + side.height,
                               preserveAspectRatio: "none", "class": "boxes region" });
    svg.appendChild(svgEl("polygon", { points: points(side.frame_of_other), "class": "frame" }));
    if (side.hull.length) svg.appendChild(svgEl("polygon", { points: points(side.hull), "class": "hull" }));
    const r = Math.max(side.width, side.height) / 200;
    side.points.forEach(function (p) {
      svg.appendChild(svgEl("circle", { cx: p[0], cy: p[1], r: r, "class": "inlier" }));
    });
    (figure.querySelector(".stage") || figure).appendChild(svg);
  }

  function inspector() {
    const box = document.getElementById("pair");
    if (!box) return;
    const status = document.getElementById("region-status");
    const url = "/api/copies/region?query=" + encodeURIComponent(box.dataset.query) +
                "&result=" + encodeURIComponent(box.dataset.result);
    fetch(url, { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) return response.text().then(function (t) { throw new Error(t); });
        return response.json();
      })
      .then(function (region) {
        drawSide(box.querySelector('[data-side="query"]'), region.query);
        drawSide(box.querySelector('[data-side="result"]'), region.result);
        status.textContent = region.inliers + " consistent matches of " + region.matches +
          " recomputed from the stored keypoints.";
      })
      .catch(function (error) { status.textContent = "matched region unavailable: " + error.message; });
  }

  // ---------------------------------------------------------------- cluster map
  function clusterMap() {
    const canvas = document.getElementById("cluster-map");
    if (!canvas) return;
    const pick = document.getElementById("map-pick");
    const ctx = canvas.getContext("2d");
    const pad = 12;
    let data = null;
    let chosen = -1;

    function xy(p) {
      return [pad + p[0] * (canvas.width - 2 * pad), pad + (1 - p[1]) * (canvas.height - 2 * pad)];
    }

    function draw() {
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      const radius = data.points.length > 5000 ? 1.5 : 3.5;
      [true, false].forEach(function (noiseFirst) {
        data.points.forEach(function (p) {
          if ((p[2] < 1) !== noiseFirst) return;
          const c = xy(p);
          ctx.fillStyle = data.colours[String(p[2])] || "#999";
          ctx.beginPath();
          ctx.arc(c[0], c[1], radius, 0, 2 * Math.PI);
          ctx.fill();
        });
      });
      // cluster numbers at each cluster's median, as on clusters_map.png
      const byCluster = {};
      data.points.forEach(function (p) {
        if (p[2] < 1) return;
        (byCluster[p[2]] = byCluster[p[2]] || []).push(xy(p));
      });
      ctx.font = "bold 13px system-ui, sans-serif";
      ctx.lineWidth = 3;
      Object.keys(byCluster).forEach(function (cluster) {
        const list = byCluster[cluster];
        const median = function (k) {
          const v = list.map(function (c) { return c[k]; }).sort(function (a, b) { return a - b; });
          return v[Math.floor(v.length / 2)];
        };
        ctx.strokeStyle = "#fff";
        ctx.strokeText(cluster, median(0) + 6, median(1) - 6);
        ctx.fillStyle = "#222";
        ctx.fillText(cluster, median(0) + 6, median(1) - 6);
      });
      if (chosen >= 0) {
        const c = xy(data.points[chosen]);
        ctx.strokeStyle = "#000";
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.arc(c[0], c[1], radius + 5, 0, 2 * Math.PI);
        ctx.stroke();
      }
    }

    function show(index) {
      chosen = index;
      draw();
      const p = data.points[index];
      while (pick.firstChild) pick.removeChild(pick.firstChild);
      const link = document.createElement("a");
      link.href = "/media/" + p[3];
      link.id = "map-picked";
      const img = document.createElement("img");
      img.src = "/media/" + p[3] + "/thumb";
      img.alt = "picked image";
      link.appendChild(img);
      const caption = document.createElement("p");
      caption.textContent = p[2] > 0 ? "cluster " + p[2] : "unclustered";
      const open = document.createElement("a");
      open.href = link.href;
      open.textContent = "open the image";
      pick.appendChild(link);
      pick.appendChild(caption);
      pick.appendChild(open);
    }

    canvas.addEventListener("click", function (event) {
      if (!data || !data.points.length) return;
      const rect = canvas.getBoundingClientRect();
      const x = (event.clientX - rect.left) * canvas.width / rect.width;
      const y = (event.clientY - rect.top) * canvas.height / rect.height;
      let best = -1, bestD = Infinity;
      data.points.forEach(function (p, i) {
        const c = xy(p);
        const d = (c[0] - x) * (c[0] - x) + (c[1] - y) * (c[1] - y);
        if (d < bestD) { bestD = d; best = i; }
      });
      if (best >= 0 && bestD < 400) show(best);
    });

    fetch("/api/clusters/map", { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) return response.text().then(function (t) { throw new Error(t); });
        return response.json();
      })
      .then(function (json) {
        data = json;
        draw();
        const shown = data.total > data.points.length
          ? "a sample of " + data.points.length + " of " + data.total : data.points.length;
        pick.textContent = data.method + " of " + shown + " images: click a dot.";
        canvas.dataset.ready = "1";
      })
      .catch(function (error) { pick.textContent = "map unavailable: " + error.message; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    decorate();
    dropzone();
    inspector();
    clusterMap();
  });
})();
