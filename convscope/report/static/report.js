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

  // a tile of the layer's top-9 figure, cut out with CSS background offsets (the figure is one image)
  function sprite(layer, box, label) {
    var d = el("div", "sprite");
    if (!box || box.length !== 4) { return d; }
    var scale = TILE / Math.max(1, box[2] - box[0]);
    d.style.backgroundImage = "url(\"" + layer.figure + "\")";
    d.style.backgroundSize = (layer.size[0] * scale) + "px " + (layer.size[1] * scale) + "px";
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

  function render() {
    var layer = atlas.layers[state.layer];
    var maps = layer.maps;
    state.map = Math.max(0, Math.min(state.map, maps.length - 1));
    var map = maps[state.map];
    root.textContent = "";
    root.setAttribute("data-layer", layer.layer);
    root.setAttribute("data-map", map ? String(map.map) : "");

    var bar = el("div", "ex-bar");
    bar.appendChild(el("span", "label", "layer"));
    atlas.layers.forEach(function (l, i) {
      bar.appendChild(button(l.layer, i === state.layer, function () { state.layer = i; state.map = 0; render(); }));
    });
    root.appendChild(bar);

    var pager = el("div", "ex-bar");
    pager.appendChild(el("span", "label", "map"));
    var prev = button("\u2190 previous", false, function () { state.map -= 1; render(); }, "previous feature map (\u2190)");
    prev.disabled = state.map <= 0;
    prev.className = "ex-prev";
    var next = button("next \u2192", false, function () { state.map += 1; render(); }, "next feature map (\u2192)");
    next.disabled = state.map >= maps.length - 1;
    next.className = "ex-next";
    pager.appendChild(prev);
    pager.appendChild(el("span", "ex-count", maps.length ? (state.map + 1) + " of " + maps.length : "none"));
    pager.appendChild(next);
    var chips = el("div", "ex-maps");
    maps.forEach(function (m, i) {
      chips.appendChild(button(String(m.map), i === state.map, function () { state.map = i; render(); },
                               "feature map " + m.map));
    });
    pager.appendChild(chips);
    root.appendChild(pager);

    root.appendChild(el("div", "ex-title", layer.layer + " \u00b7 feature map " + (map ? map.map : "\u2013")));
    var info = [];
    if (layer.total) { info.push(layer.total + " feature maps, " + maps.length + " shown"); }
    if (layer.never_active) { info.push(layer.never_active + " never active on these images"); }
    if (layer.rf) { info.push("receptive field " + layer.rf + " px, stride " + layer.stride); }
    if (layer.map_size) { info.push("map " + layer.map_size.join("\u00d7")); }
    root.appendChild(el("div", "ex-info", info.join("; ")));

    var grid = el("div", "ex-grid");
    (map ? map.tiles : []).forEach(function (t) {
      var card = el("div", "ex-tile");
      var imgs = el("div", "ex-images");
      imgs.appendChild(labelled(sprite(layer, t.proj, "deconvnet projection, rank " + t.rank), "projection"));
      imgs.appendChild(labelled(sprite(layer, t.patch, "image patch, rank " + t.rank), "patch"));
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
    root.appendChild(grid);
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.altKey || ev.ctrlKey || ev.metaKey) { return; }
    var tag = (ev.target && ev.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") { return; }
    var r = root.getBoundingClientRect();
    if (r.bottom < 0 || r.top > window.innerHeight) { return; } // only while the explorer is on screen
    if (ev.key === "ArrowRight") { state.map += 1; render(); ev.preventDefault(); }
    if (ev.key === "ArrowLeft") { state.map -= 1; render(); ev.preventDefault(); }
  });

  render();
}());
