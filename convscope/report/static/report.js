/* convscope report: the feature explorer (ZF Fig. 2 atlas, one layer and one feature map at a time).
   Data comes from the JSON in #report-data; every data string is put on the page with textContent, never as HTML. */
(function () {
  "use strict";

  var dataEl = document.getElementById("report-data");
  var data = dataEl ? JSON.parse(dataEl.textContent) : {};
  var atlas = data.atlas;
  var root = document.getElementById("explorer");
  if (!atlas || !root || !atlas.layers || !atlas.layers.length) { return; }

  var TILE = 84; // on-screen side of a projection, patch and source view
  var state = { layer: 0, map: 0 };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }

  function button(text, pressed, onClick, title) {
    var b = el("button", "", text);
    b.type = "button";
    b.setAttribute("aria-pressed", pressed ? "true" : "false");
    if (title) { b.title = title; }
    b.addEventListener("click", onClick);
    return b;
  }

  function fmt(v) {
    if (typeof v !== "number" || !isFinite(v)) { return "?"; }
    return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3);
  }

  // a tile of the map's sheet (its projections and patches in one image, fetched when the map is shown), cut out
  // with CSS background offsets
  function sprite(map, box, label) {
    var d = el("div", "sprite");
    if (!box || box.length !== 4) { return d; }
    var scale = TILE / Math.max(1, box[2] - box[0]);
    d.style.backgroundImage = "url(\"" + map.sheet + "\")";
    d.style.backgroundSize = (map.size[0] * scale) + "px " + (map.size[1] * scale) + "px";
    d.style.backgroundPosition = (-box[0] * scale) + "px " + (-box[1] * scale) + "px";
    d.setAttribute("role", "img");
    d.setAttribute("aria-label", label);
    return d;
  }

  // the model's centre view of the source image, with the receptive field of the activation framed
  function source(tile) {
    if (!tile.src) { return el("div", "ex-src none", "no image"); }
    var box = el("div", "ex-src");
    var img = el("img");
    img.src = tile.src;
    img.alt = tile.image;
    box.appendChild(img);
    var rf = tile.rf, n = atlas.crop;
    if (rf && rf.length === 4 && n > 0) {
      var t = Math.max(0, rf[0]), l = Math.max(0, rf[1]), b = Math.min(n, rf[2]), r = Math.min(n, rf[3]);
      var f = el("div", "rf");
      f.style.top = (100 * t / n) + "%";
      f.style.left = (100 * l / n) + "%";
      f.style.height = (100 * (b - t) / n) + "%";
      f.style.width = (100 * (r - l) / n) + "%";
      box.appendChild(f);
    }
    return box;
  }

  function labelled(node, caption) {
    var d = el("div");
    d.appendChild(node);
    d.appendChild(el("div", "ex-cap", caption));
    return d;
  }

  // the parts that depend on the layer only: built when the layer changes. Nothing here fetches an image until
  // the overview is opened, and then only the thumbnails near the screen (loading="lazy").
  var parts = {};
  var overviewOpen = false;
  var showOptimised = false;

  function go(i) { state.map = i; renderMap(); }

  function jumpTo(number) {  // the drawn map with this number, else the next drawn one above it, else the last
    var maps = atlas.layers[state.layer].maps;
    for (var i = 0; i < maps.length; i++) { if (maps[i].map >= number) { go(i); return maps[i].map === number; } }
    go(maps.length - 1);
    return false;
  }

  function overview(layer) {
    var box = el("details", "ex-overview");
    box.open = overviewOpen;
    box.appendChild(el("summary", "", "layer overview: " + layer.maps.length +
                       " maps drawn, the top-1 patch of each (click one to show it)"));
    var grid = el("div", "ex-thumbs");
    var withOpt = layer.maps.some(function (m) { return m.optimised; });
    if (withOpt) {
      var label = el("label", "ex-opt-toggle");
      var check = el("input");
      check.type = "checkbox";
      check.checked = showOptimised;
      check.addEventListener("change", function () { showOptimised = check.checked; grid.textContent = ""; fill(); });
      label.appendChild(check);
      label.appendChild(document.createTextNode(" optimised images instead of top-1 patches"));
      box.appendChild(label);
    }
    box.appendChild(grid);
    function fill() {
      if (grid.childNodes.length) { return; }
      layer.maps.forEach(function (m, i) {
        var b = el("button", "ex-thumb");
        b.type = "button";
        b.title = "feature map " + m.map;
        b.setAttribute("data-map", String(m.map));
        var img = el("img");
        img.loading = "lazy";
        img.width = 48;
        img.height = 48;
        img.alt = "map " + m.map;
        img.src = showOptimised && m.optimised ? m.optimised.src : m.thumb;
        b.appendChild(img);
        b.appendChild(el("span", "", String(m.map)));
        if (m.name) { b.appendChild(el("span", "ex-name", m.name.split(":")[0])); b.title += ": " + m.name; }
        b.addEventListener("click", function () { go(i); });
        grid.appendChild(b);
      });
      markThumb();
    }
    box.addEventListener("toggle", function () { overviewOpen = box.open; if (box.open) { fill(); } });
    if (box.open) { fill(); }
    return box;
  }

  function markThumb() {
    var shown = String(atlas.layers[state.layer].maps[state.map] ? atlas.layers[state.layer].maps[state.map].map : "");
    var thumbs = root.querySelectorAll(".ex-thumb");
    for (var i = 0; i < thumbs.length; i++) {
      thumbs[i].setAttribute("aria-pressed", thumbs[i].getAttribute("data-map") === shown ? "true" : "false");
    }
  }

  function render() {
    var layer = atlas.layers[state.layer];
    root.textContent = "";
    root.setAttribute("data-layer", layer.layer);

    var bar = el("div", "ex-bar");
    bar.appendChild(el("span", "label", "layer"));
    atlas.layers.forEach(function (l, i) {
      bar.appendChild(button(l.layer, i === state.layer, function () { state.layer = i; state.map = 0; render(); }));
    });
    root.appendChild(bar);

    var pager = el("div", "ex-bar");
    pager.appendChild(el("span", "label", "map"));
    parts.prev = button("\u2190 previous", false, function () { go(state.map - 1); }, "previous feature map (\u2190)");
    parts.prev.className = "ex-prev";
    parts.next = button("next \u2192", false, function () { go(state.map + 1); }, "next feature map (\u2192)");
    parts.next.className = "ex-next";
    parts.count = el("span", "ex-count");
    pager.appendChild(parts.prev);
    pager.appendChild(parts.count);
    pager.appendChild(parts.next);
    var form = el("form", "ex-jump");
    var input = el("input");
    input.type = "number";
    input.min = "0";
    input.placeholder = "map no.";
    input.setAttribute("aria-label", "feature map number");
    parts.jumpNote = el("span", "ex-jump-note");
    form.appendChild(el("label", "label", "jump to"));
    form.appendChild(input);
    form.appendChild(button("show", false, function () {}, "show this feature map"));
    form.lastChild.type = "submit";
    form.appendChild(parts.jumpNote);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var n = parseInt(input.value, 10);
      if (isNaN(n)) { return; }
      var exact = jumpTo(n);
      parts.jumpNote.textContent = exact ? "" : "map " + n + " was not drawn; showing the next drawn one";
    });
    pager.appendChild(form);
    root.appendChild(pager);
    var named = layer.maps.some(function (m) { return m.name || typeof m.sel === "number"; });
    if (named) { layer.maps.sort(ORDERS[order]); root.appendChild(sorter(layer)); }
    root.appendChild(overview(layer));

    parts.view = el("div", "ex-view");
    root.appendChild(parts.view);
    renderMap();
  }

  // the map's optimised image (convscope visualize), and the randomised network's where --sanity made one
  function optimised(o) {
    var box = el("div", "ex-opt");
    function picture(src, caption) {
      var img = el("img");
      img.src = src;
      img.alt = caption;
      return labelled(img, caption);
    }
    box.appendChild(picture(o.src, "optimised to excite it"));
    if (o.random) { box.appendChild(picture(o.random, "same, randomised network")); }
    var words = el("div", "ex-meta");
    words.appendChild(el("div", "", "Optimised image (" + o.objective + " of the map, " + o.steps + " steps, " +
                         o.size + " px): activation " + fmt(o.activation) +
                         (o.atlas !== null && o.atlas !== undefined ? "; its best photo below: " + fmt(o.atlas) : "")));
    if (o.random) {
      words.appendChild(el("div", "", "A randomised network's image for the same map: Spearman " + fmt(o.spearman) +
                           " with this one (two different maps' images: " + fmt(o.chance) + ")"));
    }
    box.appendChild(words);
    return box;
  }

  // order a layer's maps by number, WordNet name or class selectivity (highest first)
  var ORDERS = {
    "number": function (a, b) { return a.map - b.map; },
    "name": function (a, b) { return (a.name || "\uffff").localeCompare(b.name || "\uffff") || a.map - b.map; },
    "selectivity": function (a, b) { return selOf(b) - selOf(a) || a.map - b.map; }
  };
  var order = "number";

  function selOf(m) { return typeof m.sel === "number" ? m.sel : -1; }

  function sorter(layer) {
    var bar = el("div", "ex-bar ex-sort");
    bar.appendChild(el("span", "label", "order maps by"));
    Object.keys(ORDERS).forEach(function (key) {
      bar.appendChild(button(key, key === order, function () {
        order = key;
        layer.maps.sort(ORDERS[key]);
        state.map = 0;
        render();
      }));
    });
    return bar;
  }

  // the parts that depend on the map: its title, numbers and tiles (the only atlas images fetched)
  function renderMap() {
    var layer = atlas.layers[state.layer];
    var maps = layer.maps;
    state.map = Math.max(0, Math.min(state.map, maps.length - 1));
    var map = maps[state.map];
    root.setAttribute("data-map", map ? String(map.map) : "");
    parts.prev.disabled = state.map <= 0;
    parts.next.disabled = state.map >= maps.length - 1;
    parts.count.textContent = maps.length ? (state.map + 1) + " of " + maps.length : "none";
    markThumb();
    var view = parts.view;
    view.textContent = "";

    view.appendChild(el("div", "ex-title", layer.layer + " \u00b7 feature map " + (map ? map.map : "\u2013")));
    if (map && (map.name || typeof map.sel === "number")) {
      view.appendChild(el("div", "ex-unit", (map.name ? map.name + " top images (WordNet name)" : "") +
        (map.name && typeof map.sel === "number" ? " \u00b7 " : "") +
        (typeof map.sel === "number" ? "class selectivity " + map.sel.toFixed(2) : "")));
    }
    var info = [];
    if (layer.total) { info.push(layer.total + " feature maps, " + maps.length + " shown"); }
    if (layer.never_active) { info.push(layer.never_active + " never active on these images"); }
    if (layer.rf) { info.push("receptive field " + layer.rf + " px, stride " + layer.stride); }
    if (layer.map_size) { info.push("map " + layer.map_size.join("\u00d7")); }
    view.appendChild(el("div", "ex-info", info.join("; ")));

    if (map && map.optimised) { view.appendChild(optimised(map.optimised)); }
    var grid = el("div", map && map.sheet2 ? "ex-grid two-methods" : "ex-grid");
    (map ? map.tiles : []).forEach(function (t) {
      var card = el("div", "ex-tile");
      var imgs = el("div", "ex-images");
      var how = { guided: "guided backprop", gradient: "gradient" }[layer.method] || "projection";
      var alt = (layer.method || "deconvnet") + " projection, rank " + t.rank;
      imgs.appendChild(labelled(sprite(map, t.proj, alt), how));
      if (map.sheet2) {  // the same projection by a second method, cut from its own sheet with the same boxes
        var how2 = { guided: "guided backprop", gradient: "gradient" }[layer.method2] || "deconvnet";
        imgs.appendChild(labelled(sprite({ sheet: map.sheet2, size: map.size }, t.proj, how2 + ", rank " + t.rank), how2));
      }
      imgs.appendChild(labelled(sprite(map, t.patch, "image patch, rank " + t.rank), "patch"));
      imgs.appendChild(labelled(source(t), "in the image"));
      card.appendChild(imgs);
      var meta = el("div", "ex-meta");
      meta.appendChild(el("span", "", "#" + t.rank + " "));
      meta.appendChild(el("span", "act", "activation " + fmt(t.activation)));
      meta.appendChild(el("br"));
      var name = el("span", "img", t.image + (t.cls !== null && t.cls !== undefined ? " (" + t.cls + ")" : ""));
      name.title = t.path || t.image;
      meta.appendChild(name);
      card.appendChild(meta);
      grid.appendChild(card);
    });
    if (!map) { grid.appendChild(el("p", "meta", "No feature maps were drawn for this layer.")); }
    view.appendChild(grid);
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.altKey || ev.ctrlKey || ev.metaKey) { return; }
    var tag = (ev.target && ev.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") { return; }
    var r = root.getBoundingClientRect();
    if (r.bottom < 0 || r.top > window.innerHeight) { return; } // only while the explorer is on screen
    if (ev.key === "ArrowRight") { go(state.map + 1); ev.preventDefault(); }
    if (ev.key === "ArrowLeft") { go(state.map - 1); ev.preventDefault(); }
  });

  render();
}());
