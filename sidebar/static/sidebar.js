/* The chat sidebar's behaviour: one function per tab (tabs.<key>, called when the tab opens), one click
 * handler per action, sends through WeCom's sendChatMessage (or shown on the page in demo mode).
 * The first screen is rendered by the server; tabs that need more load it from the JSON API on first open. */
(function () {
  "use strict";
  var S = window.SIDEBAR || {};
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var loaded = {};
  var wxReady = null; // a Promise once the JS-SDK is configured (WeCom only)
  var inChat = null;  // WeCom: a Promise of whether this page sits in this customer's chat (sends go there)
  var CHAT_ENTRIES = ["single_chat_tools", "group_chat_tools", "chat_attachment"];

  function esc(text) {
    return String(text == null ? "" : text).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }

  /* A list box's one muted line, in place of its items: loading, empty, or what went wrong. */
  function note(text) { return '<p class="sb-muted sb-pad">' + esc(text) + "</p>"; }
  function showFailure(box, r, fallback) { box.innerHTML = note(r.data.error || fallback || "加载失败"); }

  var toastTimer = null;
  function toast(message, isError) {
    var el = $("#sb-toast");
    el.textContent = message;
    el.className = "sb-toast" + (isError ? " is-error" : "");
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { el.hidden = true; }, isError ? 4000 : 2000);
  }

  function relogin() {
    location.href = S.login + "?next=" + encodeURIComponent(location.pathname + location.search);
  }

  /* fetch JSON; resolves {ok, status, data}; a 401 sends the guide to sign in again. */
  function api(method, url, body) {
    var opts = {method: method, credentials: "same-origin", headers: {"Accept": "application/json"}};
    if (method !== "GET") {
      opts.headers["Content-Type"] = "application/json";
      opts.headers["X-CSRF-Token"] = S.csrf;
      opts.body = JSON.stringify(body || {});
    }
    return fetch(url, opts).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        // A send or a close moves tasks and figures on the server: what the 任务 tab kept is stale.
        if (method !== "GET" && res.ok) fetchedAt = {};
        if (res.status === 401) {
          toast(data.error || "登录已过期，请重新进入侧边栏", true);
          setTimeout(relogin, 800);
        }
        return {ok: res.ok, status: res.status, data: data};
      });
    }, function () {
      return {ok: false, status: 0, data: {error: "网络不通，请稍后再试"}};
    });
  }

  function customerPath(rest) {
    return "/api/sidebar/customers/" + encodeURIComponent(S.customer) + rest;
  }

  /* ---------------------------------------------------------------- sending into the chat */

  function send(message) {
    if (S.demo) {
      var li = document.createElement("li");
      li.textContent = message.msgtype === "news"
        ? "[图文] " + message.news.title + " → " + message.news.link
        : message.text.content;
      $("#sb-demo-sent-list").appendChild(li);
      return Promise.resolve(true);
    }
    return (wxReady || Promise.reject(new Error("JS-SDK 未就绪"))).then(function () {
      return new Promise(function (resolve) {
        window.wx.invoke("sendChatMessage", message, function (res) {
          resolve(res && res.err_msg === "sendChatMessage:ok");
        });
      });
    }).catch(function () {
      toast("企业微信接口未就绪，请稍后再试", true);
      return false;
    });
  }

  /* ---------------------------------------------------------------- scripts: tap → edit → send → feedback */

  var editing = null;
  function scriptData(el) {
    var id = el.getAttribute("data-script");
    return {id: id, source: el.getAttribute("data-source") || "suggested",
            body: $(".sb-script__body", el).textContent, query: el.getAttribute("data-query") || null};
  }
  function openEditor(el) {
    editing = scriptData(el);
    $("#sb-editor-text").value = editing.body;
    $("#sb-editor").hidden = false;
    $("#sb-editor-text").focus();
  }
  function sendEdited() {
    if (!editing) return;
    var text = $("#sb-editor-text").value.trim();
    if (!text) { toast("内容不能为空", true); return; }
    var script = editing;
    $("#sb-editor").hidden = true;
    editing = null;
    send({msgtype: "text", enterChat: true, text: {content: text}}).then(function (sent) {
      if (!sent) return;
      toast("已发送");
      api("POST", "/api/suggest/feedback", {script: script.id, customer: S.customer, query: script.query,
                                            source: script.source, edited: text !== script.body.trim()});
    });
  }

  function scriptHtml(s, source, query) {
    return '<div class="sb-script" data-action="script" tabindex="0" data-script="' + esc(s.external_id) +
      '" data-source="' + esc(source) + '"' + (query ? ' data-query="' + esc(query) + '"' : "") + ">" +
      '<div class="sb-script__title">' + esc(s.title) +
      (s.category ? '<span class="sb-muted"> · ' + esc(s.category) + "</span>" : "") + "</div>" +
      '<div class="sb-script__body">' + esc(s.body) + "</div></div>";
  }

  function searchScripts(q) {
    var box = $("#sb-script-results");
    box.innerHTML = note("搜索中…");
    api("GET", "/api/suggest?top=8&q=" + encodeURIComponent(q) + "&customer=" + encodeURIComponent(S.customer))
      .then(function (r) {
        if (!r.ok) { showFailure(box, r, "搜索失败"); return; }
        var scripts = r.data.scripts || [];
        box.innerHTML = '<div class="weui-cells__title">搜索结果</div>' + (scripts.length
          ? scripts.map(function (s) { return scriptHtml(s, "searched", q); }).join("")
          : note("没有找到合适的话术，换个说法试试"));
      });
  }

  /* ---------------------------------------------------------------- the tabs: one function each */

  var tabs = {
    customer: function (panel, first) { if (first && S.customer) loadRecommendations(); },
    tags: function () {},
    scripts: function (panel, first) {
      if (!first) return;
      api("GET", "/api/sidebar/scripts/categories").then(function (r) {
        var box = $("#sb-script-categories");
        var cats = (r.data && r.data.categories) || [];
        box.innerHTML = cats.length ? cats.map(function (c) {
          return '<button type="button" class="sb-chip" data-action="category" data-category="' + esc(c.category) +
            '">' + esc(c.category) + ' <span class="sb-muted">' + c.count + "</span></button>";
        }).join("") : '<span class="sb-muted">话术库还是空的</span>';
      });
    },
    content: function (panel, first) {
      if (!first || !S.customer) return;  // the workbench renders today's content on the server
      api("GET", customerPath("/content")).then(function (r) {
        var box = $("#sb-content-list");
        var items = (r.data && r.data.content) || [];
        if (!r.ok) { showFailure(box, r); return; }
        box.innerHTML = items.length ? items.map(function (c) {
          return '<div class="sb-content" data-content="' + esc(c.external_id) + '">' +
            (c.cover_url ? '<img src="' + esc(c.cover_url) + '" alt="" loading="lazy">' : "") +
            '<div class="sb-content__bd"><div class="sb-content__title">' + esc(c.title) + "</div>" +
            '<div class="sb-content__desc">' + esc(c.summary) + "</div></div>" +
            (c.url ? '<button type="button" class="weui-btn weui-btn_mini weui-btn_primary" data-action="content-send"' +
              ' data-content="' + esc(c.external_id) + '">发送</button>' : '<span class="sb-muted">无链接</span>') +
            "</div>";
        }).join("") : note("暂时没有适合这位客户的素材");
      });
    },
    tasks: function (panel, first) {
      if (!S.customer) return;  // the workbench renders every task on the server
      if (first) onPullDown(panel, function () { toast("正在刷新"); loadMyMonth(true); loadAllTasks(true); });  // phones; desktops tap 刷新
      loadMyMonth();
      loadAllTasks();
    },
    coupons: function () { loadCoupons(); },  // reloaded on each open: stock and the caps move
    ranking: function (panel, first) { if (first) loadRanking(); }
  };

  /* ---------------------------------------------------------------- 任务 and my month: kept for the page's life */

  /* Reopening the 任务 tab asks nothing again: what it fetched is fetched anew only when the guide closes a task,
   * pulls the tab down, or opens it more than FRESH_MS after the last fetch. */
  var FRESH_MS = 5 * 60 * 1000;
  var fetchedAt = {};  // what → when it was last asked for
  var newest = {};  // what → the number of its newest request: an older answer arriving late is dropped

  function fetchKept(what, url, force, render) {
    if (!force && fetchedAt[what] && Date.now() - fetchedAt[what] < FRESH_MS) return;
    fetchedAt[what] = Date.now();
    var n = newest[what] = (newest[what] || 0) + 1;
    api("GET", url).then(function (r) {
      if (n !== newest[what]) return;
      if (!r.ok) delete fetchedAt[what];  // a failure is asked again on the next open
      render(r);
    });
  }

  function monthFigures(m) { return "业绩 ¥" + m.gmv + " · 订单 " + m.orders + " · 提成 ¥" + m.commission; }

  /* The guide's month (attributed orders, GMV, commission), on the 任务 and 排行 tabs. */
  function loadMyMonth(force) {
    fetchKept("month", "/api/me/month", force, function (r) {
      if (!r.ok) return;
      var mine = $("#sb-my-month"), ranking = $("#sb-rank-month");
      if (mine) mine.textContent = "本月" + monthFigures(r.data);
      if (ranking) ranking.textContent = "我的本月：" + monthFigures(r.data);
    });
  }

  function loadAllTasks(force) {
    fetchKept("tasks", "/api/tasks", force, function (r) {
      var box = $("#sb-all-tasks");
      if (!r.ok) { showFailure(box, r); return; }
      var s = r.data.summary || {};
      $("#sb-task-summary").textContent = "待办 " + (s.open || 0) + " / 共 " + (s.total || 0);
      var list = (r.data.tasks || []).filter(function (t) { return !t.more; });
      box.innerHTML = list.length ? list.map(taskHtml).join("") : note("今天没有任务");
    });
  }

  /* Pull to refresh: a downward drag of PULL_PX that starts with the page scrolled to its top. */
  var PULL_PX = 70;
  function onPullDown(panel, refresh) {
    var startY = null;
    panel.addEventListener("touchstart", function (ev) {
      var atTop = (document.scrollingElement || document.documentElement).scrollTop <= 0;
      startY = atTop && ev.touches.length === 1 ? ev.touches[0].clientY : null;
    }, {passive: true});
    panel.addEventListener("touchend", function (ev) {
      if (startY === null || !ev.changedTouches.length) return;
      var pulled = ev.changedTouches[0].clientY - startY;
      startY = null;
      if (pulled >= PULL_PX) refresh();
    }, {passive: true});
  }

  /* ---------------------------------------------------------------- 客户: recommended products (货找人) */

  function loadRecommendations() {
    var box = $("#sb-recs");
    if (!box) return;
    api("GET", "/api/customers/" + encodeURIComponent(S.customer) + "/recommendations?top=5").then(function (r) {
      if (!r.ok) { showFailure(box, r); return; }
      var list = r.data.recommendations || [];
      box.innerHTML = list.length ? list.map(function (p) {
        return '<div class="sb-rec" data-action="rec-send" data-sku="' + esc(p.sku) + '" tabindex="0">' +
          '<div class="sb-rec__bd"><div class="sb-rec__name">' + esc(p.name) + "</div>" +
          '<div class="sb-rec__reason"><span class="sb-badge">' + esc(p.source_label) + "</span> " + esc(p.reason) +
          "</div></div>" + '<div class="sb-rec__price">¥' + esc(p.price) + "</div></div>";
      }).join("") : note("暂时没有推荐商品");
    });
  }

  /* Sends go to the chat the sidebar is open in. Opened from a push (an app message) or from another
   * customer's chat, there is no chat or the wrong one: refuse before anything is counted. */
  function whenInChat(action) {
    (S.demo ? Promise.resolve(true) : (inChat || Promise.resolve(false))).then(function (ok) {
      if (ok) action();
      else toast("请在与这位客户的聊天中打开侧边栏再发送", true);
    });
  }

  function sendRecommendation(el) {
    if (el.classList.contains("is-busy")) return;
    el.classList.add("is-busy");
    api("POST", "/api/customers/" + encodeURIComponent(S.customer) + "/recommendations/" +
        encodeURIComponent(el.getAttribute("data-sku")) + "/send", {}).then(function (r) {
      el.classList.remove("is-busy");
      if (r.data.quota) showQuota(r.data.quota);
      if (!r.ok) { toast(r.data.error || "发送失败", true); return; }
      send(r.data.message).then(function (sent) { if (sent) toast("已发送"); });
    });
  }

  /* ---------------------------------------------------------------- 排行: the team's day and my month */

  function loadRanking() {
    loadMyMonth();
    api("GET", "/api/sidebar/ranking").then(function (r) {
      var box = $("#sb-ranking");
      if (!r.ok) { showFailure(box, r); return; }
      var rows = r.data.rows || [];
      box.innerHTML = rows.length ? '<table class="sb-rank"><thead><tr><th>#</th><th>导购</th><th>业绩</th>' +
        "<th>订单</th><th>任务</th></tr></thead><tbody>" + rows.map(function (row) {
          return '<tr class="' + (row.me ? "is-me" : "") + '" data-userid="' + esc(row.userid) + '"><td>' + row.rank +
            "</td><td>" + esc(row.name) + (row.me ? "（我）" : "") + "</td><td>¥" + esc(row.gmv) + "</td><td>" +
            row.orders + "</td><td>" + row.tasks_done + "/" + row.tasks_total + "</td></tr>";
        }).join("") + "</tbody></table>" : note("今天还没有团队数据");
    });
  }

  /* ---------------------------------------------------------------- coupons: list → issue → send */

  function couponPath() { return "/api/customers/" + encodeURIComponent(S.customer) + "/coupons"; }

  function loadCoupons() {
    api("GET", couponPath()).then(function (r) {
      var box = $("#sb-coupon-templates");
      if (!r.ok) { showFailure(box, r); return; }
      var q = r.data.quota || {};
      $("#sb-coupon-quota").textContent = q.allowed ? "今天还可发 " + q.today_left + " 条营销消息" : (q.reason || "");
      var list = r.data.templates || [];
      box.innerHTML = list.length ? list.map(function (t) {
        var stock = t.stock_left == null ? "" : " · 剩 " + t.stock_left + " 张";
        return '<div class="sb-coupon" data-coupon="' + esc(t.external_id) + '"><div class="sb-coupon__bd">' +
          '<div class="sb-coupon__value">' + esc(t.value) + '</div><div class="sb-coupon__name">' + esc(t.name) +
          '<span class="sb-muted"> · ' + esc(t.kind_label) + stock + "</span></div>" +
          (t.reason ? '<div class="sb-muted">' + esc(t.reason) + "</div>" : "") + "</div>" +
          '<button type="button" class="weui-btn weui-btn_mini weui-btn_primary" data-action="coupon-issue"' +
          ' data-template="' + esc(t.external_id) + '"' + (t.can_issue ? "" : " disabled") + ">发券</button></div>";
      }).join("") : note("暂时没有可发的券");
      var held = r.data.coupons || [];
      $("#sb-coupon-held").innerHTML = held.length ? held.map(function (c) {
        return '<div class="sb-coupon sb-coupon_' + esc(c.status) + '"><div class="sb-coupon__bd">' +
          '<div class="sb-coupon__name">' + esc(c.name) + ' <span class="sb-muted">' + esc(c.value) + "</span></div>" +
          '<div class="sb-muted">' + esc(c.status_label) + " · 券码 " + esc(c.code) + " · " + esc(c.valid_until) +
          " 到期</div></div></div>";
      }).join("") : note("还没有领过券");
    });
  }

  function issueCoupon(btn) {
    btn.disabled = true;
    api("POST", couponPath(), {template: btn.getAttribute("data-template")}).then(function (r) {
      if (!r.ok) { btn.disabled = false; toast(r.data.error || "发券失败", true); return; }
      send({msgtype: "text", enterChat: true, text: {content: r.data.text}}).then(function (sent) {
        toast(sent ? "券已发出" : "券已生成，请把券码发给顾客：" + r.data.code, !sent);
        loadCoupons();
      });
    });
  }

  var SKIP_REASONS = ["客户已回复", "已线下联系", "暂不合适", "联系不上"];
  function taskHtml(t) {
    var labels = {open: "", done: "已完成", skipped: "已跳过"};
    var status = labels.hasOwnProperty(t.status) ? labels[t.status] : t.status;
    var ops = t.status === "open"
      ? '<div class="sb-task__ops"><button type="button" class="weui-btn weui-btn_mini weui-btn_primary" data-action="task-done" data-task="' +
        t.id + '">完成</button>' + SKIP_REASONS.map(function (r) {
          return '<button type="button" class="weui-btn weui-btn_mini weui-btn_default" data-action="task-skip" data-task="' +
            t.id + '" data-reason="' + esc(r) + '">跳过：' + esc(r) + "</button>";
        }).join("") + "</div>"
      : (t.skip_reason ? '<div class="sb-muted">原因：' + esc(t.skip_reason) + "</div>" : "");
    return '<div class="sb-task sb-task_' + esc(t.status) + '" data-task="' + t.id + '"><div class="sb-task__head">' +
      '<span class="sb-badge">' + esc(t.rule_label) + "</span>" +
      (t.customer_name ? '<span class="sb-task__who">' + esc(t.customer_name) + "</span>" : "") +
      '<span class="sb-task__status">' + esc(status) + "</span></div>" +
      '<div class="sb-task__reason">' + esc(t.reason) + "</div>" + ops + "</div>";
  }

  function switchTab(key) {
    var btn = $('.sb-tab[data-tab="' + key + '"]');
    if (!btn) return;
    Array.prototype.forEach.call(document.querySelectorAll(".sb-tab"), function (b) {
      var on = b === btn;
      b.classList.toggle("is-active", on);
      b.setAttribute("aria-selected", on ? "true" : "false");
    });
    Array.prototype.forEach.call(document.querySelectorAll(".sb-panel"), function (p) {
      p.classList.toggle("is-active", p.getAttribute("data-panel") === key);
    });
    var first = !loaded[key];
    loaded[key] = true;
    if (tabs[key]) tabs[key]($("#tab-" + key), first);
  }

  /* ---------------------------------------------------------------- actions */

  /* The 客户 tab's tag line follows what the 标签 tab shows as on. */
  function refreshProfileTags() {
    var box = $("#sb-profile-tags");
    if (!box) return;
    box.innerHTML = Array.prototype.map.call(document.querySelectorAll("#tab-tags .sb-chip.is-on"), function (b) {
      return '<span class="sb-chip is-on">' + esc(b.textContent) + "</span>";
    }).join("");
  }

  function toggleTag(btn) {
    if (btn.classList.contains("is-busy")) return;
    var on = !btn.classList.contains("is-on");
    btn.classList.add("is-busy");
    api("POST", customerPath("/tags"), {tag: parseInt(btn.getAttribute("data-tag"), 10), on: on}).then(function (r) {
      btn.classList.remove("is-busy");
      if (!r.ok) { toast(r.data.error || "操作失败", true); return; }
      btn.classList.toggle("is-on", r.data.on);
      btn.setAttribute("aria-pressed", r.data.on ? "true" : "false");
      refreshProfileTags();
      toast(r.data.on ? "已打上「" + r.data.name + "」" : "已去掉「" + r.data.name + "」");
    });
  }

  function addNote(form) {
    var input = $("#sb-note-input");
    var name = input.value.trim();
    if (!name) { toast("标签名不能为空", true); return; }
    if (name.length > 30) { toast("标签名不能超过30个字", true); return; }
    api("POST", customerPath("/notes"), {name: name}).then(function (r) {
      if (!r.ok) { toast(r.data.error || "添加失败", true); return; }
      var box = $("#sb-note-tags");
      var hint = $(".sb-muted", box);
      if (hint) hint.remove();
      var existing = box.querySelector('[data-tag="' + r.data.id + '"]');
      if (existing) { existing.classList.add("is-on"); }
      else {
        box.insertAdjacentHTML("beforeend", '<button type="button" class="sb-chip is-on" data-action="tag" data-tag="' +
          r.data.id + '" aria-pressed="true">' + esc(r.data.name) + "</button>");
      }
      input.value = "";
      refreshProfileTags();
      toast("已添加「" + r.data.name + "」");
    });
  }

  function closeTask(btn, action) {
    var id = btn.getAttribute("data-task");
    var body = action === "skip" ? {reason: btn.getAttribute("data-reason")} : {};
    api("POST", "/api/tasks/" + id + "/" + action, body).then(function (r) {
      if (!r.ok && !(r.status === 409 && r.data.status)) { toast(r.data.error || "操作失败", true); return; }
      // Closed, here or already elsewhere (409: a send completed it): every copy of it shows its state.
      Array.prototype.forEach.call(document.querySelectorAll('.sb-task[data-task="' + id + '"]'), function (el) {
        el.className = "sb-task sb-task_" + r.data.status;
        $(".sb-task__status", el).textContent = r.data.status === "done" ? "已完成" : "已跳过";
        var ops = $(".sb-task__ops", el);
        if (ops) ops.remove();
      });
      toast(r.ok ? (r.data.status === "done" ? "任务已完成" : "已跳过") : r.data.error, !r.ok);
      if (S.customer) loadAllTasks(true);  // the day's summary and list move with it
    });
  }

  function showQuota(q) {
    var el = $("#sb-quota");
    if (!el) return;
    el.textContent = q.allowed
      ? "这位客户今天还能收 " + q.today_left + " 条营销消息（7天内还剩 " + q.week_left + " 条）"
      : "暂不能发营销素材：" + q.reason;
  }

  function sendContent(btn) {
    btn.disabled = true;
    api("POST", customerPath("/content/" + encodeURIComponent(btn.getAttribute("data-content")) + "/send"), {})
      .then(function (r) {
        btn.disabled = false;
        if (r.data.quota) showQuota(r.data.quota);
        if (!r.ok) { toast(r.data.error || "发送失败", true); return; }
        send(r.data.message).then(function (sent) { if (sent) toast("已发送"); });
      });
  }

  function showCategory(btn) {
    var cat = btn.getAttribute("data-category");
    api("GET", "/api/sidebar/scripts?category=" + encodeURIComponent(cat)).then(function (r) {
      var box = $("#sb-script-category-list");
      if (!r.ok) { toast(r.data.error || "加载失败", true); return; }
      box.innerHTML = '<div class="weui-cells__title">' + esc(cat) + "</div>" +
        (r.data.scripts || []).map(function (s) { return scriptHtml(s, "searched", null); }).join("");
    });
  }

  document.addEventListener("click", function (ev) {
    var el = ev.target.closest("[data-action], .sb-tab");
    if (!el) return;
    if (el.classList.contains("sb-tab")) { switchTab(el.getAttribute("data-tab")); return; }
    switch (el.getAttribute("data-action")) {
      case "script": openEditor(el); break;
      case "editor-cancel": $("#sb-editor").hidden = true; editing = null; break;
      case "editor-send": sendEdited(); break;
      case "tag": toggleTag(el); break;
      case "task-done": closeTask(el, "done"); break;
      case "task-skip": closeTask(el, "skip"); break;
      case "tasks-refresh": toast("正在刷新"); loadMyMonth(true); loadAllTasks(true); break;
      case "content-send": whenInChat(function () { sendContent(el); }); break;
      case "category": showCategory(el); break;
      case "coupon-issue": whenInChat(function () { issueCoupon(el); }); break;
      case "rec-send": whenInChat(function () { sendRecommendation(el); }); break;
    }
  });
  document.addEventListener("submit", function (ev) {
    if (ev.target.id === "sb-note-form") { ev.preventDefault(); addNote(ev.target); }
    if (ev.target.id === "sb-script-search") {
      ev.preventDefault();
      var q = $("#sb-script-q").value.trim();
      if (!q) { toast("请输入顾客的问题或关键词", true); return; }
      searchScripts(q);
    }
  });

  /* ---------------------------------------------------------------- WeCom JS-SDK */

  function wecomInit() {
    if (!window.wx) {
      if (S.workbench) location.replace(S.workbench);  // no WeCom, so no chat: the workbench
      else toast("请在企业微信中打开侧边栏", true);
      return;
    }
    var url = location.href.split("#")[0];
    wxReady = api("GET", "/api/sidebar/jssdk?url=" + encodeURIComponent(url)).then(function (r) {
      if (!r.ok) throw new Error(r.data.error || "签名失败");
      return new Promise(function (resolve, reject) {
        window.wx.config(r.data.config);
        window.wx.ready(function () {
          var cfg = r.data.agentConfig;
          cfg.success = resolve;
          cfg.fail = function (res) { reject(new Error((res && res.errMsg) || "agentConfig 失败")); };
          window.wx.agentConfig(cfg);
        });
        window.wx.error(function (res) { reject(new Error((res && res.errMsg) || "config 失败")); });
      });
    });
    wxReady.catch(function (e) { toast(e.message, true); });
    if (S.customer) {
      inChat = wxReady.then(function () {
        return new Promise(function (resolve) {
          window.wx.invoke("getContext", {}, function (ctx) {
            var entry = (ctx && ctx.entry) || "";
            if (CHAT_ENTRIES.indexOf(entry) < 0) { resolve(false); return; }
            if (entry !== "single_chat_tools") { resolve(true); return; }
            window.wx.invoke("getCurExternalContact", {}, function (res) {  // the chat is this customer's?
              resolve(!!(res && res.userId === S.customer));
            });
          });
        });
      }).catch(function () { return false; });
      inChat.then(function (ok) {
        var note = $("#sb-not-in-chat");
        if (note) note.hidden = ok;
      });
    }
    if (!S.workbench) return;  // only the chat toolbar's page (no customer, no tab) asks whose chat this is
    wxReady.then(function () {
      window.wx.invoke("getContext", {}, function (ctx) {
        var entry = (ctx && ctx.entry) || "";
        window.wx.invoke("getCurExternalContact", {}, function (res) {
          if (res && res.err_msg === "getCurExternalContact:ok" && res.userId) {
            location.replace("/sidebar/?customer=" + encodeURIComponent(res.userId) + "&entry=" + encodeURIComponent(entry));
          } else {
            location.replace(S.workbench);  // not in a customer's chat (the app's menu, a group chat)
          }
        });
      });
    }, function () { location.replace(S.workbench); });
  }

  if (!S.demo) wecomInit();
  if (S.tab) {  // the server rendered this tab active (?tab=, or the time of day): load what it needs
    loaded[S.tab] = true;
    if (tabs[S.tab]) tabs[S.tab]($("#tab-" + S.tab), true);
  }
})();
