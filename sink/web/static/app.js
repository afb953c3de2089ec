/* mailsink inspector: live updates, endless scroll, selection and actions.
   Pages are rendered by the server; this only fetches row fragments (/inbox/rows)
   and talks to /api/v3. No framework, no build step, no inline script (the
   pages' CSP forbids it). */
(function () {
  "use strict";

  var body = document.body;
  var page = body.dataset.page;
  // Where the app is mounted ("" at /, "/mailhog" under a web path): every URL starts with it.
  var BASE = body.dataset.base || "";
  var baseTitle = document.title.replace(/^\(\d[\d,]*\) /, "");
  var counts = { total: +body.dataset.total || 0, unread: +body.dataset.unread || 0 };

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }
  function number(n) { return Number(n).toLocaleString("en-US"); }

  function api(method, path, data) {
    var options = { method: method, headers: { "Accept": "application/json" } };
    if (data !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(data);
    }
    return fetch(BASE + path, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        if (!response.ok) { throw new Error(json.error || ("HTTP " + response.status)); }
        return json;
      });
    });
  }

  function fail(error) { window.alert("mailsink: " + error.message); }

  function setCounts(total, unread) {
    counts.total = total; counts.unread = unread;
    document.title = (unread ? "(" + number(unread) + ") " : "") + baseTitle;
    var t = $("#total"), u = $("#unread");
    if (t) { t.textContent = number(total); }
    if (u) { u.textContent = number(unread); }
  }

  /* relative times, kept current */
  function relative(date) {
    var seconds = (Date.now() - date.getTime()) / 1000;
    if (seconds < 45) { return "just now"; }
    if (seconds < 3600) { return Math.round(seconds / 60) + " min ago"; }
    if (seconds < 86400) { return Math.round(seconds / 3600) + " h ago"; }
    if (seconds < 7 * 86400) { return Math.round(seconds / 86400) + " d ago"; }
    return date.toLocaleDateString();
  }
  function refreshTimes(root) {
    $all("time[datetime]", root).forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (isNaN(date)) { return; }
      el.title = date.toLocaleString() + " (" + el.getAttribute("datetime") + ")";
      if (!el.dataset.exact) { el.textContent = relative(date); }
      else { el.textContent = date.toLocaleString(); }
    });
  }

  /* live events over a WebSocket (/api/v3/ws; one per tab, outside the browser's
     six-connections-per-host limit); handlers get each event's JSON. After a
     reconnect, "resync" runs: events may have been missed meanwhile. */
  function listen(handlers) {
    if (!window.WebSocket) { return; }
    var live = $("#live"), liveText = $("#live-text");
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + BASE + "/api/v3/ws";
    var delay = 500, connected = false;
    function state(on, text) {
      if (live) { live.classList.toggle("off", !on); liveText.textContent = text; }
    }
    function connect() {
      var socket = new WebSocket(url);
      socket.onmessage = function (message) {
        var data = JSON.parse(message.data);
        if (typeof data.total === "number") { setCounts(data.total, data.unread); }
        if (data.event === "counts") {
          state(true, "live");
          delay = 500;
          if (connected && handlers.resync) { handlers.resync(); }
          connected = true;
        }
        if (handlers[data.event]) { handlers[data.event](data); }
      };
      socket.onclose = function () {
        state(false, "reconnecting");
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    connect();
  }

  /* search syntax help */
  var helpToggle = $("#search-help-toggle"), help = $("#search-help");
  if (helpToggle && help) {
    helpToggle.addEventListener("click", function (event) {
      event.preventDefault();
      help.hidden = !help.hidden;
    });
  }

  /* ---------------- inbox ---------------- */
  function inbox() {
    var section = $("#inbox"), list = $("#list"), empty = $("#empty");
    var query = section.dataset.query || "";
    var loading = false, headTimer = null, headBusy = false, headAgain = false;

    function rowsUrl(before) {
      var params = new URLSearchParams();
      if (query) { params.set("q", query); }
      if (before) { params.set("before", before); }
      return BASE + "/inbox/rows?" + params.toString();
    }
    function fragment(html) {
      var holder = document.createElement("div");
      holder.innerHTML = html;
      return holder;
    }
    function rowsById() {
      var map = {};
      $all(".msg", list).forEach(function (row) { map[row.dataset.id] = row; });
      return map;
    }
    function updateEmpty() {
      empty.hidden = !!$(".msg, .error-banner", list);
    }

    /* endless scroll: keyset pages ("before" the last row) */
    var observer = window.IntersectionObserver ? new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) { if (entry.isIntersecting) { loadMore(entry.target); } });
    }, { rootMargin: "600px" }) : null;
    function watchSentinel() {
      var sentinel = $(".more-rows", list);
      if (sentinel && observer) { observer.observe(sentinel); }
    }
    function loadMore(sentinel) {
      if (loading) { return; }
      loading = true;
      if (observer) { observer.unobserve(sentinel); }
      var rows = $all(".msg", list);
      var last = rows.length ? rows[rows.length - 1].dataset.id : sentinel.dataset.before;
      fetch(rowsUrl(last)).then(function (r) { return r.text(); }).then(function (html) {
        sentinel.remove();
        var known = rowsById(), holder = fragment(html);
        $all(".msg", holder).forEach(function (row) { if (known[row.dataset.id]) { row.remove(); } });
        while (holder.firstChild) { list.appendChild(holder.firstChild); }
        refreshTimes(list);
        syncSelection();
      }).catch(function () { /* the next scroll retries */ }).then(function () {
        loading = false;
        watchSentinel();
      });
    }

    /* new mail: fetch the head of the list (same search) and put the rows we
       lack on top; coalesced so a burst of mail costs one request. */
    function refreshHead() {
      if (headBusy) { headAgain = true; return; }
      headBusy = true;
      fetch(rowsUrl(null)).then(function (r) { return r.text(); }).then(function (html) {
        var holder = fragment(html), known = rowsById(), fresh = [], overlap = false;
        $all(".msg", holder).some(function (row) {
          if (known[row.dataset.id]) { overlap = true; return true; }
          fresh.push(row);
          return false;
        });
        if (!overlap) {
          // An empty list, or more new mail than one page: take the head as it is.
          list.innerHTML = "";
          while (holder.firstChild) { list.appendChild(holder.firstChild); }
          watchSentinel();
        } else {
          var anchor = list.firstChild;
          fresh.forEach(function (row) { list.insertBefore(row, anchor); });
        }
        fresh.forEach(function (row) { row.classList.add("fresh"); });
        refreshTimes(list);
        syncSelection();
        updateEmpty();
      }).catch(function () {}).then(function () {
        headBusy = false;
        if (headAgain) { headAgain = false; scheduleHead(); }
      });
    }
    function scheduleHead() {
      if (headTimer) { return; }
      headTimer = setTimeout(function () { headTimer = null; refreshHead(); }, 100);
    }

    function removeRows(ids) {
      var known = rowsById();
      ids.forEach(function (id) { if (known[id]) { known[id].remove(); } });
      var sentinel = $(".more-rows", list);
      if (sentinel && !$(".msg", list)) { loadMore(sentinel); }
      syncSelection();
      updateEmpty();
    }
    function setRead(ids, read) {
      var rows = ids ? ids.map(function (id) { return rowsById()[id]; }) : $all(".msg", list);
      rows.forEach(function (row) { if (row) { row.classList.toggle("unread", !read); } });
    }

    listen({
      "new": scheduleHead,
      "resync": scheduleHead,
      "deleted": function (data) {
        if (data.all) { list.innerHTML = ""; syncSelection(); updateEmpty(); }
        else { removeRows(data.ids || []); }
      },
      "read": function (data) { setRead(data.all ? null : data.ids, true); },
      "unread": function (data) { setRead(data.all ? null : data.ids, false); }
    });

    /* selection and actions */
    var selectAll = $("#select-all");
    function selectedIds() {
      return $all(".msg .select:checked", list).map(function (box) { return box.closest(".msg").dataset.id; });
    }
    function syncSelection() {
      var boxes = $all(".msg .select", list), checked = 0;
      boxes.forEach(function (box) {
        box.closest(".msg").classList.toggle("selected", box.checked);
        if (box.checked) { checked += 1; }
      });
      $all(".selection-actions button").forEach(function (b) { b.disabled = checked === 0; });
      selectAll.checked = checked > 0 && checked === boxes.length;
      selectAll.indeterminate = checked > 0 && checked < boxes.length;
    }
    list.addEventListener("change", function (event) {
      if (event.target.classList.contains("select")) { syncSelection(); }
    });
    selectAll.addEventListener("change", function () {
      $all(".msg .select", list).forEach(function (box) { box.checked = selectAll.checked; });
      syncSelection();
    });

    var actions = {
      "read": function () {
        var ids = selectedIds();
        return api("PATCH", "/api/v3/messages", { ids: ids, read: true }).then(function () { setRead(ids, true); });
      },
      "unread": function () {
        var ids = selectedIds();
        return api("PATCH", "/api/v3/messages", { ids: ids, read: false }).then(function () { setRead(ids, false); });
      },
      "delete": function () {
        var ids = selectedIds();
        return api("DELETE", "/api/v3/messages", { ids: ids }).then(function () { removeRows(ids); });
      },
      "read-all": function () {
        return api("PATCH", "/api/v3/messages", { read: true }).then(function () { setRead(null, true); });
      },
      "delete-all": function () {
        if (!window.confirm("Delete all " + number(counts.total) + " messages? This cannot be undone.")) {
          return Promise.resolve();
        }
        return api("DELETE", "/api/v3/messages").then(function () {
          list.innerHTML = ""; syncSelection(); updateEmpty();
        });
      }
    };
    $all(".toolbar [data-action]").forEach(function (button) {
      button.addEventListener("click", function () {
        actions[button.dataset.action]().then(syncSelection).catch(fail);
      });
    });

    watchSentinel();
    syncSelection();
  }

  /* ---------------- release (send on to a real SMTP server) ---------------- */
  function releaseForm(id, idPath) {
    var form = $("#release-form"), toggle = $("#release-toggle");
    if (!form || !toggle) { return; }
    var status = $("#release-status"), transcript = $("#release-transcript");
    var servers = $("#release-server"), loaded = false;
    toggle.addEventListener("click", function () {
      form.hidden = !form.hidden;
      toggle.setAttribute("aria-expanded", String(!form.hidden));
      if (!form.hidden && !loaded) {
        loaded = true;
        api("GET", "/api/v2/outgoing-smtp").then(function (saved) {
          Object.keys(saved).sort().forEach(function (name) {
            var option = document.createElement("option");
            option.value = name;
            option.textContent = name + " (" + saved[name].Host + ":" + saved[name].Port + ")";
            servers.appendChild(option);
          });
        }).catch(function () { /* no saved servers to offer */ });
        form.elements.to.focus();
      }
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var f = form.elements, body = { to: f.to.value.trim() };
      if (f.server.value) {
        body.server = f.server.value;
      } else {
        body.host = f.host.value.trim();
        body.port = Number(f.port.value) || 25;
        body.tls = f.tls.value;
        body.insecure = f.insecure.checked;
        if (f.username.value || f.password.value) {
          body.username = f.username.value;
          body.password = f.password.value;
          if (f.mechanism.value) { body.mechanism = f.mechanism.value; }
        }
      }
      $("#release-send").disabled = true;
      status.className = "release-status";
      status.textContent = "Releasing…";
      transcript.hidden = true;
      fetch(BASE + idPath + "/release", {
        method: "POST", body: JSON.stringify(body),
        headers: { "Accept": "application/json", "Content-Type": "application/json" }
      }).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (json) {
          if (response.ok) {
            status.classList.add("ok");
            status.textContent = "Released to " + json.accepted.join(", ") + " via " + json.server +
              (json.tls ? " (TLS)" : "") + ": " + (json.reply || "");
            transcript.textContent = (json.transcript || []).join("\n");
            transcript.hidden = !transcript.textContent;
          } else {
            status.classList.add("error");
            status.textContent = "Not released: " + (json.error || ("HTTP " + response.status)) +
              (json.stage ? " (at " + json.stage + ")" : "");
          }
        });
      }).catch(function (error) {
        status.classList.add("error");
        status.textContent = "Not released: " + error.message;
      }).then(function () { $("#release-send").disabled = false; });
    });
  }

  /* ---------------- message view ---------------- */
  function messageView() {
    var section = $("#message"), id = section.dataset.id;
    var idPath = "/api/v3/messages/" + encodeURIComponent(id);
    var tabs = $all(".tabs [data-tab]");

    function show(name) {
      var found = tabs.some(function (t) { return t.dataset.tab === name; });
      if (!found) { name = tabs[0].dataset.tab; }
      tabs.forEach(function (t) { t.setAttribute("aria-selected", String(t.dataset.tab === name)); });
      $all(".panel").forEach(function (p) { p.hidden = p.dataset.panel !== name; });
      return name;
    }
    tabs.forEach(function (tab) {
      tab.addEventListener("click", function () {
        history.replaceState(null, "", "#" + show(tab.dataset.tab));
      });
    });
    show(location.hash.slice(1));

    var frame = $("#html-frame");
    $all(".widths [data-width]").forEach(function (button) {
      button.addEventListener("click", function () {
        $all(".widths button").forEach(function (b) { b.classList.toggle("active", b === button); });
        var width = button.dataset.width;
        frame.style.width = width ? width + "px" : "100%";
        frame.classList.toggle("narrow", !!width);
      });
    });
    var loadRemote = $("#load-remote");
    if (loadRemote) {
      loadRemote.addEventListener("click", function () {
        frame.src = BASE + "/message/" + encodeURIComponent(id) + "/html?remote=1";
        $("#remote-note").hidden = true;
      });
    }

    var read = true, markButton = $("#mark-unread");
    markButton.addEventListener("click", function () {
      api("PATCH", idPath, { read: !read }).then(function () {
        read = !read;
        markButton.textContent = read ? "Mark unread" : "Mark read";
      }).catch(fail);
    });
    $("#delete-message").addEventListener("click", function () {
      api("DELETE", idPath).then(function () { location.href = BASE + "/"; }).catch(fail);
    });

    releaseForm(id, idPath);

    function gone() {
      $("#deleted-banner").hidden = false;
      $all(".message-actions button").forEach(function (b) { b.disabled = true; });
    }
    listen({
      "deleted": function (data) { if (data.all || (data.ids || []).indexOf(id) >= 0) { gone(); } },
      "read": function (data) { if (data.all || (data.ids || []).indexOf(id) >= 0) { read = true; markButton.textContent = "Mark unread"; } },
      "unread": function (data) { if (data.all || (data.ids || []).indexOf(id) >= 0) { read = false; markButton.textContent = "Mark read"; } }
    });
  }

  refreshTimes(document);
  setInterval(function () { refreshTimes(document); }, 30000);
  if (page === "inbox") { inbox(); }
  else if (page === "message") { messageView(); }
  else { listen({}); }
})();
