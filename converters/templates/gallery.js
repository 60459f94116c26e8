// cadpipe gallery: filters by status and folder and a search box, in the browser, no server.
// The drawings' text comes from search-index.js (window.cadpipeSearchIndex), written beside
// this file at publish. Everything shown is set as text (textContent), never parsed as HTML:
// drawing text is untrusted.
(function () {
  "use strict";

  var index = (window.cadpipeSearchIndex && window.cadpipeSearchIndex.entries) || {};
  var MAX_HITS_SHOWN = 3;

  function fold(text) {
    return String(text || "").normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }

  // Words and "quoted phrases", folded: every one must occur in the drawing.
  function terms(query) {
    var found = [];
    var pattern = /"([^"]*)"|(\S+)/g;
    var match;
    while ((match = pattern.exec(query)) !== null) {
      var term = fold(match[1] !== undefined ? match[1] : match[2]).trim();
      if (term) found.push(term);
    }
    return found;
  }

  var folded = {};  // sha256 -> folded texts of its entries, made on first use
  function entriesOf(sha) {
    if (!folded[sha]) {
      folded[sha] = (index[sha] || []).map(function (e) { return fold(e[4]); });
    }
    return folded[sha];
  }

  function containsAll(text, words) {
    for (var i = 0; i < words.length; i++) if (text.indexOf(words[i]) < 0) return false;
    return true;
  }

  // Score of one drawing (0: no match) and its best entries.
  function score(sha, cardText, words) {
    var texts = sha ? entriesOf(sha) : [];
    var whole = cardText + "\n" + texts.join("\n");
    if (!containsAll(whole, words)) return { score: 0, hits: [] };
    var best = [], some = [];
    for (var i = 0; i < texts.length; i++) {
      if (containsAll(texts[i], words)) best.push(i);
      else if (words.some(function (w) { return texts[i].indexOf(w) >= 0; })) some.push(i);
    }
    var points = 1 + best.length * 3 + some.length + (containsAll(cardText, words) ? 5 : 0);
    return { score: points, hits: best.concat(some).slice(0, MAX_HITS_SHOWN) };
  }

  // The drawings matching `query` (for this page and any other that loads the index).
  function search(query) {
    var words = terms(query);
    var results = [];
    Object.keys(index).forEach(function (sha) {
      var found = words.length ? score(sha, "", words) : { score: 0, hits: [] };
      if (found.score) results.push({ sha256: sha, score: found.score, hits: found.hits.map(function (i) { return index[sha][i]; }) });
    });
    results.sort(function (a, b) { return b.score - a.score; });
    return results;
  }
  window.cadpipe = { search: search, terms: terms };

  var controls = document.getElementById("controls");
  if (!controls) return;
  var input = document.getElementById("search");
  var status = document.getElementById("status");
  var folder = document.getElementById("folder");
  var shown = document.getElementById("shown");
  var noMatch = document.getElementById("no-match");
  var cards = Array.prototype.slice.call(document.querySelectorAll("article.card"));
  cards.forEach(function (card, i) {
    card.dataset.order = String(i);
    card.foldedText = fold(card.dataset.text);
  });
  controls.hidden = false;

  function highlighted(text, words) {
    // A text node per piece, <mark> around each occurrence of a word.
    var span = document.createElement("span");
    var lower = fold(text);
    var at = 0;
    while (at < text.length) {
      var next = -1, length = 0;
      words.forEach(function (w) {
        var i = lower.indexOf(w, at);
        if (i >= 0 && (next < 0 || i < next)) { next = i; length = w.length; }
      });
      if (next < 0 || length === 0) { span.appendChild(document.createTextNode(text.slice(at))); break; }
      if (next > at) span.appendChild(document.createTextNode(text.slice(at, next)));
      var mark = document.createElement("mark");
      mark.textContent = text.slice(next, next + length);
      span.appendChild(mark);
      at = next + length;
    }
    return span;
  }

  function showHits(card, sha, hits, words) {
    var old = card.querySelector("ul.hits");
    if (old) old.remove();
    if (!hits.length) return;
    var list = document.createElement("ul");
    list.className = "hits";
    hits.forEach(function (i) {
      var e = index[sha][i];  // [scope, label, layout, handle, text]
      var item = document.createElement("li");
      var where = [e[1], e[2] ? "on " + e[2] : "", e[3] ? "#" + e[3] : ""].filter(Boolean).join(" ");
      item.appendChild(document.createTextNode(where + ": "));
      item.appendChild(highlighted(e[4], words));
      list.appendChild(item);
    });
    card.appendChild(list);
  }

  function inFolder(card, wanted) {
    var f = card.dataset.folder;
    return !wanted || f === wanted || f.indexOf(wanted + "/") === 0;
  }

  function apply() {
    var words = terms(input.value);
    var visible = 0;
    var scored = [];
    cards.forEach(function (card) {
      var sha = card.dataset.sha;
      var ok = (!status.value || card.dataset.status === status.value) && inFolder(card, folder.value);
      var found = { score: 1, hits: [] };
      if (ok && words.length) {
        found = score(sha, card.foldedText, words);
        ok = found.score > 0;
      }
      card.hidden = !ok;
      showHits(card, sha, ok ? found.hits : [], words);
      if (ok) visible++;
      scored.push({ card: card, score: words.length ? found.score : 0 });
    });
    // Best first while searching; the page's own order otherwise.
    scored.sort(function (a, b) {
      return b.score - a.score || Number(a.card.dataset.order) - Number(b.card.dataset.order);
    });
    scored.forEach(function (s) { s.card.parentNode.appendChild(s.card); });
    [["failed-heading", "failed-cards"], ["drawings-heading", "drawing-cards"]].forEach(function (ids) {
      var heading = document.getElementById(ids[0]), section = document.getElementById(ids[1]);
      if (heading && section) heading.hidden = !section.querySelector("article.card:not([hidden])");
    });
    shown.textContent = visible + " of " + cards.length + " drawings shown";
    noMatch.hidden = visible > 0;
  }

  var timer = null;
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(apply, 120);
  });
  status.addEventListener("change", apply);
  folder.addEventListener("change", apply);
  apply();
})();
