// The page: the login form and the chat view, drawn from Chat's state.
// Every body goes through text.js (textContent only); no inline script or style.

import { Chat, LOBBY, lastNick, localUntil, roomKey } from "./chat.js";
import { fold, renderBody } from "./text.js";

const $ = (id) => document.getElementById(id);
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
const chat = new Chat(wsUrl);

const invite = new URLSearchParams(location.hash.slice(1)).get("invite");

// --- login -------------------------------------------------------------------------

$("nick").value = lastNick();
if (invite) {
  $("register").checked = true;
  $("invite-note").hidden = false;
}
($("nick").value ? $("password") : $("nick")).focus();

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const nick = $("nick").value.trim();
  const password = $("password").value;
  const registering = $("register").checked;
  $("login-error").textContent = "";
  if (!nick) { $("login-error").textContent = "Enter a nick: up to 32 letters, digits, _ and -."; $("nick").focus(); return; }
  if (registering && [...password].length < 8) {
    $("login-error").textContent = "To register, choose a password of at least 8 characters.";
    $("password").focus();
    return;
  }
  if ("Notification" in window && Notification.permission === "default") Notification.requestPermission().catch(() => {});
  $("connect").disabled = true;
  $("connect").textContent = "Connecting…";
  chat.login(nick, password, registering ? { password, invite } : null);
});

function showLogin(text) {
  $("connect").disabled = false;
  $("connect").textContent = "Connect";
  for (const d of document.querySelectorAll("dialog")) if (d.open) d.close();
  $("chat").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = text || "";
  $("password").value = "";
  (text ? $("password") : $("nick")).focus();
}

chat.addEventListener("loginfailed", (ev) => {
  showLogin(ev.detail.text);
  if (/password/i.test(ev.detail.text) === false) $("nick").focus();
});
chat.addEventListener("loggedout", () => showLogin(""));

chat.addEventListener("welcome", () => {
  $("password").value = "";
  if (invite) history.replaceState(null, "", location.pathname);
  $("register").checked = false;
  $("invite-note").hidden = true;
  $("login").hidden = true;
  $("chat").hidden = false;
  render();
  showDraft();
  $("message").focus();
});

// --- the chat view -----------------------------------------------------------------

chat.addEventListener("caughtup", (ev) => {
  const f = ev.detail;
  if (!chat.resumed || f.missed) {  // after a short drop, only when something came meanwhile
    $("summary-text").textContent = summaryText(f);
    $("summary").hidden = false;
  }
  chat.loadEarlier(chat.active);
});
$("summary-close").addEventListener("click", () => { $("summary").hidden = true; $("message").focus(); });

function summaryText(f) {
  const dms = Object.entries(f.dms || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const rooms = Object.entries(f.rooms || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const parts = dms.map(([nick, n]) => `${n} from ${nick}`).concat(rooms.map(([room, n]) => `${n} in #${room}`));
  if (!parts.length) return "While you were away: nothing new.";
  const total = f.missed || [...dms, ...rooms].reduce((s, [, n]) => s + n, 0);
  let text = `While you were away: ${total} new ${total === 1 ? "message" : "messages"} — ${parts.join(", ")}.`;
  if (f.mentions) text += ` ${f.mentions} ${f.mentions === 1 ? "mentions" : "mention"} you.`;
  if (f.truncated) text += " Older ones were left out.";
  return text;
}

chat.addEventListener("status", () => {
  $("status").textContent = chat.statusText;
  $("status").classList.toggle("offline", !!chat.offline);
});
chat.addEventListener("change", () => render());
chat.addEventListener("switched", () => { editing = null; picking = null; stopReply(); showDraft(); scrollToEnd(true); });
chat.addEventListener("typing", () => { $("typing").textContent = chat.typingText(chat.active); });
chat.addEventListener("problem", (ev) => { $("status").textContent = ev.detail.text; });
chat.addEventListener("history", (ev) => {
  if (ev.detail.conversation.key !== chat.active) return;
  const scroller = $("scroller");
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  render();
  scroller.scrollTop = scroller.scrollHeight - fromBottom;
});
chat.addEventListener("notify", (ev) => {
  const { message: m, conversation: c } = ev.detail;
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const title = c.kind === "dm" ? `${m.from} (direct message)` : `${m.from} in #${c.name}`;
  const n = new Notification(title, { body: m.body.slice(0, 200), tag: c.key });  // text: never HTML
  n.onclick = () => { window.focus(); chat.switchTo(c.key); n.close(); };
});
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) {
    const c = chat.conversations.get(chat.active);
    if (c && c.unread) { c.unread = 0; render(); }
    chat.scheduleRead();
  }
});

let nearBottom = true;
$("scroller").addEventListener("scroll", () => {
  const s = $("scroller");
  nearBottom = s.scrollHeight - s.scrollTop - s.clientHeight < 40;
  if (s.scrollTop < 20) chat.loadEarlier();
});
$("earlier").addEventListener("click", () => chat.loadEarlier());

function scrollToEnd(force) {
  const s = $("scroller");
  if (force || nearBottom) s.scrollTop = s.scrollHeight;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function timeOf(ts) {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function render() {
  if ($("chat").hidden) return;
  renderSidebar();
  renderMessages();
  renderMembers();
  const c = chat.conversations.get(chat.active);
  $("conv-title").textContent = c ? (c.kind === "room" ? `#${c.name}` : `@${c.name}`) : "";
  $("leave").hidden = !c || c.kind !== "room" || c.key === LOBBY;
  renderRoomHeader(c);
  const total = chat.totalUnread();
  document.title = total ? `(${total}) chinwag` : "chinwag";
  $("typing").textContent = chat.typingText(chat.active);
  $("account-action").textContent = chat.account ? "Change password" : "Register this nick";
  $("receipts-row").hidden = !chat.account;
  $("receipts").checked = chat.receiptsOn();
}

function renderSidebar() {
  const list = $("conversations");
  const rooms = [...chat.conversations.values()].filter((c) => c.kind === "room").sort((a, b) => a.name.localeCompare(b.name));
  const dms = [...chat.conversations.values()].filter((c) => c.kind === "dm").sort((a, b) => fold(a.name).localeCompare(fold(b.name)));
  const focused = document.activeElement && list.contains(document.activeElement) ? document.activeElement.dataset.key : null;
  list.replaceChildren();
  const section = (title) => { const li = el("li", "heading", title); li.setAttribute("aria-hidden", "true"); list.append(li); };
  section("Rooms");
  for (const c of rooms) list.append(entry(c, `#${c.name}`));
  if (dms.length) section("Direct messages");
  for (const c of dms) list.append(entry(c, `@${c.name}`));
  if (focused) list.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
}

function entry(c, label) {
  const li = el("li");
  const button = el("button");
  button.type = "button";
  button.dataset.key = c.key;
  if (c.key === chat.active) button.setAttribute("aria-current", "true");
  button.append(el("span", "name", label));
  if (c.unread) {
    button.append(el("span", "unread", String(c.unread)));
    button.setAttribute("aria-label", `${label}, ${c.unread} unread`);
  }
  button.addEventListener("click", () => { closePanes(); saveDraft(); chat.switchTo(c.key); $("message").focus(); });
  li.append(button);
  return li;
}

function renderMessages() {
  const c = chat.conversations.get(chat.active);
  const list = $("messages");
  const active = document.activeElement;
  const focus = active && list.contains(active) ? active.dataset.focus : null;
  const caret = focus === "editbox" ? [active.selectionStart, active.selectionEnd] : null;
  list.replaceChildren();
  if (!c) return;
  $("earlier").hidden = !c.more || chat.phase !== "live";
  const notices = c.notices || [];
  let n = 0;
  let lastDay = "";
  for (const m of c.messages) {
    while (n < notices.length && notices[n].after < m.id) list.append(el("li", "notice", notices[n++].text));
    const day = new Date(m.ts).toDateString();
    if (day !== lastDay) { list.append(el("li", "day", new Date(m.ts).toLocaleDateString())); lastDay = day; }
    if (m.id === c.dividerBefore) list.append(el("li", "divider", "New since you were away"));
    list.append(messageItem(m));
    if (c.gaps.has(m.id)) {
      // Issue 15: a jump loaded a page far back; newer messages up to the rest are not loaded.
      const gap = el("li", "gap");
      gap.append(button("Load newer messages", "Load the messages after this one", `gap:${m.id}`, () => chat.loadGap(c.key, m.id)));
      list.append(gap);
    }
  }
  while (n < notices.length) list.append(el("li", "notice", notices[n++].text));
  for (const item of chat.pending(c.key)) list.append(pendingItem(item));
  if (focus) {
    const again = list.querySelector(`[data-focus="${CSS.escape(focus)}"]`);
    if (again) { again.focus(); if (caret) again.setSelectionRange(...caret); } else $("message").focus();
  }
  scrollToEnd(false);
}

// --- one message: its quote, body, reactions, ticks and actions -------------------

const EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];
let editing = null;  // {id, text} while a message is edited in place
let picking = null;  // the id of the message whose reaction picker is open
let replying = null; // the message the composer answers
let flashId = null;  // the message a jump just showed

function clip(text, n) { return text.length > n ? text.slice(0, n - 1) + "…" : text; }

function firstLine(m) {
  return m.deleted ? "message deleted" : clip(m.body.split("\n").find((l) => l.trim()) || "", 120);
}

function button(text, label, focusKey, onClick) {
  const b = el("button", "", text);
  b.type = "button";
  if (label) b.setAttribute("aria-label", label);
  if (focusKey) b.dataset.focus = focusKey;
  b.addEventListener("click", onClick);
  return b;
}

function messageItem(m) {
  const li = el("li", m.id === flashId ? "message flash" : "message");
  li.dataset.id = String(m.id);
  li.dataset.focus = `${m.id}:item`;
  li.tabIndex = -1;
  const mine = fold(m.from) === fold(chat.nick);
  if (mine) li.classList.add("mine");
  if (!mine && chat.mentionsMe(m)) li.classList.add("mention");
  const time = el("time", "meta", timeOf(m.ts));
  time.dateTime = m.ts;
  li.append(time, el("span", "from", m.notice ? `-${m.from}-` : m.from)); // -nick-: a notice
  if (m.notice) li.classList.add("notice");
  if (m.reply_to) li.append(quote(m));
  if (m.deleted) {
    if (editing && editing.id === m.id) editing = null;
    li.classList.add("deleted");
    li.append(el("span", "body gone", "message deleted"));
    return li;
  }
  if (editing && editing.id === m.id) li.append(editBox(m));
  else li.append(renderBody(m.body, mentioned(m)));
  if (m.edited) li.append(el("span", "edited", "(edited)"));
  const c = chat.conversations.get(chat.keyOf(m));
  if (mine && c && c.kind === "dm" && chat.receiptsOn()) {
    const state = m.id <= c.seenBy ? "read" : m.id <= c.delivered ? "delivered" : "sent";
    li.append(el("span", `tick ${state}`, { read: "✓✓ read", delivered: "✓✓ delivered", sent: "✓ sent" }[state]));
  }
  if (m.reactions.length) {
    const chips = el("span", "reactions");
    for (const r of m.reactions) {
      const on = chat.reacted(m, r.emoji);
      const b = button(`${r.emoji} ${r.nicks.length}`, `${r.emoji} ${r.nicks.length}`, `${m.id}:chip:${r.emoji}`,
        () => chat.act(m, "react", { emoji: r.emoji, on: !chat.reacted(m, r.emoji) }));
      b.title = r.nicks.join(", ");
      b.setAttribute("aria-pressed", String(on));
      chips.append(b);
    }
    li.append(chips);
  }
  const bar = el("span", "actions");
  bar.setAttribute("role", "toolbar");
  bar.setAttribute("aria-label", `Actions on ${m.from}'s message`);
  bar.append(
    button("Reply", "", `${m.id}:reply`, () => startReply(m)),
    button("React", "", `${m.id}:react`, () => { picking = picking === m.id ? null : m.id; renderMessages(); focusIn(m.id, ".picker button"); }),
  );
  if (mine) {
    bar.append(
      button("Edit", "", `${m.id}:edit`, () => startEdit(m)),
      button("Delete", "", `${m.id}:delete`, () => askDelete(m)),
    );
  }
  li.append(bar);
  if (picking === m.id) li.append(picker(m));
  // Right-click (or the context-menu key) opens the actions, except on a link or a selection.
  li.addEventListener("contextmenu", (ev) => {
    if (ev.target.closest("a, textarea") || String(getSelection())) return;
    ev.preventDefault();
    bar.querySelector("button").focus();
  });
  return li;
}

/** The @nicks to mark in `m`: the server's `mentions`, and me (folded nick -> class). */
function mentioned(m) {
  const names = new Map((m.mentions || []).map((n) => [fold(n), "at"]));
  if (chat.nick) names.set(fold(chat.nick), "at me");
  return names;
}

function focusIn(id, selector) {
  $("messages").querySelector(`li[data-id="${id}"] ${selector}`)?.focus();
}

function quote(m) {
  const target = chat.byId.get(m.reply_to);
  const text = target ? `${target.from}: ${firstLine(target)}` : "an earlier message";
  const b = button("", `Reply to ${text}`, `${m.id}:quote`, () => chat.showMessage(chat.keyOf(m), m.reply_to));
  b.className = "quote";
  b.append(el("span", "", "↪ "), el("span", "said", text));
  return b;
}

function picker(m) {
  const box = el("span", "picker");
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", "Pick a reaction");
  for (const e of EMOJI) {
    box.append(button(e, `React with ${e}`, `${m.id}:pick:${e}`, () => {
      picking = null;
      chat.act(m, "react", { emoji: e, on: !chat.reacted(m, e) });
      render();
      focusIn(m.id, "[data-focus$=':react']");
    }));
  }
  box.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") { ev.stopPropagation(); picking = null; renderMessages(); focusIn(m.id, "[data-focus$=':react']"); }
  });
  return box;
}

function editBox(m) {
  const box = el("textarea", "editbox");
  box.value = editing.text;
  box.rows = Math.min(8, editing.text.split("\n").length);
  box.maxLength = 4000;
  box.dataset.focus = "editbox";
  box.setAttribute("aria-label", "Edit message");
  box.addEventListener("input", () => { editing.text = box.value; });
  box.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") { ev.preventDefault(); ev.stopPropagation(); stopEdit(); }
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      const body = box.value.replace(/\s+$/, "");
      if (!body.trim()) { $("status").textContent = "An edit cannot be empty: use Delete to remove a message."; return; }
      if (body !== m.body) chat.act(m, "edit", { body });
      stopEdit();
    }
  });
  return box;
}

function startEdit(m) {
  editing = { id: m.id, text: m.body };
  picking = null;
  renderMessages();
  const box = $("messages").querySelector(".editbox");
  if (box) { box.focus(); box.setSelectionRange(box.value.length, box.value.length); box.scrollIntoView({ block: "nearest" }); }
}

function stopEdit() {
  editing = null;
  renderMessages();
  $("message").focus();
}

let deleting = null;
function askDelete(m) {
  deleting = m;
  $("delete-preview").textContent = firstLine(m);
  openDialog("delete-dialog");
  $("delete-cancel").focus();
}
$("delete-confirm").addEventListener("click", () => {
  if (deleting) chat.act(deleting, "delete", {});
  deleting = null;
  $("delete-dialog").close();
});
$("delete-cancel").addEventListener("click", () => $("delete-dialog").close());
$("delete-dialog").addEventListener("close", () => { deleting = null; $("message").focus(); });

function startReply(m) {
  replying = m;
  $("reply-text").textContent = `Replying to ${m.from}: ${firstLine(m)}`;
  $("reply-bar").hidden = false;
  $("message").focus();
}

function stopReply() {
  replying = null;
  $("reply-bar").hidden = true;
}
$("reply-cancel").addEventListener("click", () => { stopReply(); $("message").focus(); });

chat.addEventListener("reveal", (ev) => {
  const { conversation: c, id, found } = ev.detail;
  if (c.key !== chat.active) return;
  const li = $("messages").querySelector(`li[data-id="${id}"]`);
  if (!found || !li) { chat.notice(c.key, ev.detail.error ? `That message could not be loaded (${ev.detail.error}). Try again in a moment.` : "That message is not available: it may have been deleted, or you may no longer see it."); return; }
  flashId = id;
  li.classList.add("flash");
  li.focus();
  li.scrollIntoView({ block: "center" });
  setTimeout(() => { flashId = null; $("messages").querySelector(".flash")?.classList.remove("flash"); }, 2000);
});

function pendingItem(item) {
  const li = el("li", "message mine pending");
  li.dataset.cid = item.cid;
  li.append(el("span", "from", chat.nick), renderBody(item.body));
  if (item.failed) {
    li.classList.add("failed");
    li.append(el("span", "state", `not sent: ${item.failed}`));
    const b = el("button", "dismiss", "Dismiss");
    b.type = "button";
    b.addEventListener("click", () => chat.dismiss(item.cid));
    li.append(b);
  } else {
    li.append(el("span", "state", chat.phase === "live" ? "sending…" : "pending — will send when back online"));
  }
  return li;
}

function renderMembers() {
  const c = chat.conversations.get(chat.active);
  const list = $("members");
  list.replaceChildren();
  $("members-pane").hidden = !c || c.kind !== "room";
  $("toggle-members").hidden = !c || c.kind !== "room";
  if (!c || !c.members) return;
  const focused = document.activeElement && list.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
  for (const u of c.members) {
    const li = el("li");
    const b = el("button", "", u.nick + (u.account ? "" : " (guest)"));
    b.type = "button";
    b.title = `Message ${u.nick}`;
    b.addEventListener("click", () => { closePanes(); saveDraft(); chat.openDm(u.nick); $("message").focus(); });
    li.append(b);
    if (fold(u.nick) !== fold(chat.nick)) {
      const open = menuFor === fold(u.nick);
      // Named "Actions" in its list item (not "Actions for bob", which a search for bob would find).
      const more = button("⋯", "Actions", `more:${fold(u.nick)}`, () => {
        menuFor = open ? null : fold(u.nick);
        renderMembers();
        $("members").querySelector(menuFor ? ".menu button" : `[data-focus="more:${CSS.escape(fold(u.nick))}"]`)?.focus();
      });
      more.className = "more";
      more.title = `Actions for ${u.nick}`;
      more.setAttribute("aria-expanded", String(open));
      li.append(more);
      if (open) li.append(memberMenu(c, u.nick));
    }
    list.append(li);
  }
  if (focused) list.querySelector(`[data-focus="${CSS.escape(focused)}"]`)?.focus();
}

// --- moderation: the room header, a member's actions, room settings, blocks (§11, §12) ---

let menuFor = null;  // the folded nick whose actions are open in the member list

function renderRoomHeader(c) {
  const room = c && c.kind === "room" ? c : null;
  const info = room && room.info;
  $("room-topic").textContent = info ? info.topic : "";  // text: a topic is never HTML
  $("room-topic").title = info ? info.topic : "";
  const badges = [];
  if (info && info.private) badges.push("private");
  if (info && info.announce) badges.push("announcements");
  if (room && room.role !== "member") badges.push(room.role === "admin" ? "you: admin" : `you: ${room.role}`);
  if (room && room.mutedUntil !== null && (!room.mutedUntil || Date.parse(room.mutedUntil) > Date.now())) {
    badges.push(room.mutedUntil ? `you are muted until ${localUntil(room.mutedUntil)}` : "you are muted");
  }
  $("room-badges").replaceChildren(...badges.map((t) => el("span", "", t)));
  $("room-settings").hidden = !room || !chat.rights(room, "").settings;
}

/** The actions on `nick` in room `c` that this user has rights to. */
function memberMenu(c, nick) {
  const box = el("div", "menu");
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", `Actions for ${nick}`);
  const rights = chat.rights(c, nick);
  const done = () => { menuFor = null; renderMembers(); };
  if (rights.mod && c.key !== LOBBY) {  // everyone stays in the lobby: no kick or ban there
    box.append(
      button("Kick", "", "", () => { done(); askModeration("kick", c, nick); }),
      button("Ban…", "", "", () => { done(); askModeration("ban", c, nick); }),
    );
  }
  if (rights.mod) {
    box.append(
      button("Mute…", "", "", () => { done(); askModeration("mute", c, nick); }),
      button("Unmute", "", "", () => { done(); moderate("unmute", c, nick, {}); }),
    );
  }
  if (rights.grant) {
    const mod = c.roles.get(fold(nick)) === "mod";
    box.append(button(mod ? "Make member" : "Make mod", "", "", () => { done(); moderate("grant", c, nick, { role: mod ? "member" : "mod" }); }));
  }
  const blocked = chat.isBlocked(nick);
  box.append(button(blocked ? "Unblock" : "Block", "", "", () => {
    done();
    if (!chat.request(blocked ? "unblock" : "block", { nick }, nick)) offline();
  }));
  return box;
}

function offline() { $("status").textContent = "Offline: try again once you are back online."; }

function moderate(what, c, nick, fields) {
  if (!chat.request(what, { room: c.name, nick, ...fields }, nick, c.name)) offline();
}

let pendingModeration = null;  // {what, room, nick} while the kick/ban/mute dialog is open
function askModeration(what, c, nick) {
  pendingModeration = { what, room: c.name, nick };
  const verb = { kick: "Kick", ban: "Ban", mute: "Mute" }[what];
  $("mod-title").textContent = `${verb} ${nick} ${what === "mute" ? "in" : "from"} #${c.name}`;
  $("mod-confirm").textContent = verb;
  $("mod-for-row").hidden = $("mod-for").hidden = what === "kick";
  $("mod-for").value = "3600";
  $("mod-reason").value = "";
  $("mod-error").textContent = "";
  openDialog("mod-dialog");
  $(what === "kick" ? "mod-reason" : "mod-for").focus();
}
$("mod-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const req = pendingModeration;
  if (!req) return;
  const frame = { room: req.room, nick: req.nick, reason: $("mod-reason").value.trim() };
  if (req.what !== "kick") {
    const seconds = Number($("mod-for").value);
    frame.until = seconds ? new Date(Date.now() + seconds * 1000).toISOString() : null;
  }
  if (!chat.request(req.what, frame, req.nick, req.room)) { $("mod-error").textContent = "Offline: try again once you are back online."; return; }
  $("mod-dialog").close();
});
$("mod-cancel").addEventListener("click", () => $("mod-dialog").close());
$("mod-dialog").addEventListener("close", () => { pendingModeration = null; $("message").focus(); });

chat.addEventListener("moderated", (ev) => {
  const d = ev.detail;
  if ($("settings-dialog").open && (d.what === "settings" || d.what === "invite")) {
    $("settings-error").textContent = d.ok ? "" : d.text;
    if (d.ok && d.what === "settings") $("settings-dialog").close();
    if (d.ok && d.what === "invite") { $("settings-note").textContent = `${d.nick} is invited.`; $("invite-nick").value = ""; }
    return;
  }
  if (!d.ok) chat.notice(d.room ? roomKey(d.room) : chat.active, d.text);
  else if (d.what === "block") chat.notice(chat.active, `You blocked ${d.nick}: nothing they send reaches you now. Unblock them under “Blocked people”.`);
  else if (d.what === "unblock") chat.notice(chat.active, `You unblocked ${d.nick}.`);
});

$("room-settings").addEventListener("click", () => {
  const c = chat.conversations.get(chat.active);
  if (!c || c.kind !== "room") return;
  const info = c.info || { topic: "", private: false, announce: false, retention_days: null };
  const flags = chat.rights(c, "").flags;
  $("settings-title").textContent = `#${c.name} settings`;
  $("settings-topic").value = info.topic;
  $("settings-private").checked = info.private;
  $("settings-announce").checked = info.announce;
  $("settings-retention").value = info.retention_days ? String(info.retention_days) : "";
  $("settings-key").value = info.key || "";
  $("settings-limit").value = info.limit ? String(info.limit) : "";
  $("settings-private").disabled = $("settings-announce").disabled = $("settings-retention").disabled = !flags;
  $("settings-note").textContent = flags ? "" : "Only the owner can make the room private or for announcements, or say how long it keeps messages.";
  $("settings-error").textContent = "";
  $("invite-nick").value = "";
  openDialog("settings-dialog");
  $("settings-topic").focus();
});
$("settings-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const c = chat.conversations.get(chat.active);
  if (!c || c.kind !== "room") return;
  const info = c.info || { topic: "", private: false, announce: false, retention_days: null };
  const frame = { room: c.name };
  const topic = $("settings-topic").value.trim();
  if (topic !== info.topic) frame.topic = topic;
  if (!$("settings-private").disabled && $("settings-private").checked !== info.private) frame.private = $("settings-private").checked;
  if (!$("settings-announce").disabled && $("settings-announce").checked !== info.announce) frame.announce = $("settings-announce").checked;
  const typed = $("settings-retention").value.trim();
  if (!$("settings-retention").disabled) {
    if (typed && !/^[1-9][0-9]*$/.test(typed)) { $("settings-error").textContent = "Keep messages for: a whole number of days, or empty for the server's setting."; return; }
    const days = typed ? Number(typed) : null;
    if (days !== (info.retention_days || null)) frame.retention_days = days || 0;
  }
  const most = $("settings-limit").value.trim();  // ircmodes: the key and the member limit
  if (most && !/^[1-9][0-9]*$/.test(most)) { $("settings-error").textContent = "At most: a whole number of people, or empty for no limit."; return; }
  if ((most ? Number(most) : null) !== (info.limit || null)) frame.limit = most ? Number(most) : 0;
  const key = $("settings-key").value.trim();
  if (key !== (info.key || "")) frame.key = key;
  if (Object.keys(frame).length === 1) { $("settings-dialog").close(); return; }
  if (!chat.request("settings", frame, "", c.name)) $("settings-error").textContent = "Offline: try again once you are back online.";
});
$("invite-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const c = chat.conversations.get(chat.active);
  const nick = $("invite-nick").value.trim().replace(/^@/, "");
  if (!c || c.kind !== "room" || !nick) return;
  if (!chat.request("invite", { room: c.name, nick }, nick, c.name)) $("settings-error").textContent = "Offline: try again once you are back online.";
});
$("settings-close").addEventListener("click", () => $("settings-dialog").close());
$("settings-dialog").addEventListener("close", () => $("message").focus());

function renderBlocks() {
  const list = $("block-list");
  list.replaceChildren();
  const nicks = chat.blocks;
  $("blocks-note").textContent = nicks === null ? "Loading…"
    : nicks.length ? "Nothing they send reaches you; they are not told." : "You block nobody. Block someone from their actions in the people list.";
  for (const nick of nicks || []) {
    const li = el("li");
    li.append(el("span", "name", nick), button("Unblock", `Unblock ${nick}`, `unblock:${fold(nick)}`, () => {
      if (!chat.request("unblock", { nick }, nick)) $("blocks-note").textContent = "Offline: try again once you are back online.";
    }));
    list.append(li);
  }
}
$("show-blocks").addEventListener("click", () => { openDialog("blocks-dialog"); chat.askBlocks(); renderBlocks(); $("blocks-close").focus(); });
$("blocks-close").addEventListener("click", () => $("blocks-dialog").close());
$("blocks-dialog").addEventListener("close", () => $("message").focus());
chat.addEventListener("change", () => { if ($("blocks-dialog").open) renderBlocks(); });

// --- typing and sending ------------------------------------------------------------

function saveDraft() { chat.saveDraft(chat.active, $("message").value); }
function showDraft() { $("message").value = chat.draft(chat.active); }

$("message").addEventListener("input", () => {
  saveDraft();
  chat.typed($("message").value.trim() !== "");
});
$("message").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); $("send-form").requestSubmit(); }
  if (ev.key === "Escape" && replying) { ev.stopPropagation(); stopReply(); }
  if (ev.key === "ArrowUp" && $("message").value === "") {
    const c = chat.conversations.get(chat.active);
    const me = fold(chat.nick);
    const last = c && [...c.messages].reverse().find((m) => fold(m.from) === me && !m.deleted);
    if (last) { ev.preventDefault(); startEdit(last); }
  }
  if (ev.key === "Tab" && !ev.shiftKey && complete()) ev.preventDefault();
  else if (ev.key !== "Tab") completion = null;
});

// @-completion: Tab after "@bo" completes a nick of this conversation; Tab again cycles.
let completion = null; // {start, end, names, index}
function complete() {
  const box = $("message");
  if (box.selectionStart !== box.selectionEnd) return false;
  if (!completion) {
    const before = box.value.slice(0, box.selectionStart);
    const found = before.match(/@([\p{L}\p{M}\p{N}_-]*)$/u);
    if (!found) return false;
    const prefix = fold(found[1]);
    const c = chat.conversations.get(chat.active);
    const names = new Map();
    for (const u of (c && c.members) || []) names.set(fold(u.nick), u.nick);
    for (const m of (c && c.messages) || []) names.set(fold(m.from), m.from);
    if (c && c.kind === "dm") names.set(fold(c.name), c.name);
    names.delete(fold(chat.nick));
    const list = [...names].filter(([k]) => k.startsWith(prefix)).map(([, n]) => n).sort((a, b) => fold(a).localeCompare(fold(b)));
    if (!list.length) return false;
    completion = { start: before.length - found[0].length, end: box.selectionStart, names: list, index: -1 };
  }
  completion.index = (completion.index + 1) % completion.names.length;
  const text = `@${completion.names[completion.index]} `;
  box.setRangeText(text, completion.start, completion.end, "end");
  completion.end = completion.start + text.length;
  saveDraft();
  return true;
}
$("send-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const body = $("message").value.replace(/\s+$/, "");
  if (!body.trim()) return;
  if ([...body].length > 4000) { $("status").textContent = "Too long: a message is at most 4,000 characters."; return; }
  $("message").value = "";
  chat.saveDraft(chat.active, "");
  nearBottom = true;
  if (!command(body)) {
    const answer = replying && chat.keyOf(replying) === chat.active ? replying.id : null;
    chat.sendText(body.startsWith("//") ? body.slice(1) : body, answer);
  }
  stopReply();
  $("message").focus();
});

const HELP = "Commands: /join ROOM [KEY], /leave, /dm NICK [TEXT], /topic TEXT, /invite NICK, /unban NICK, /unmute NICK, /block NICK, /unblock NICK, /help."
  + " A person's other actions are in the People list (⋯). Start a message with // to send one that begins with /.";

/** The few slash commands the terminal client has too; true if `text` was one. */
function command(text) {
  const m = text.match(/^\/(\w+)(?:\s+(\S+))?(?:\s+([\s\S]*))?$/);
  if (!m || text.startsWith("//")) return false;
  const [, name, arg, rest] = m;
  const c = chat.conversations.get(chat.active);
  switch (name.toLowerCase()) {
    case "join":
      if (arg) chat.join(arg.replace(/^#/, "").toLowerCase(), (rest || "").trim()); else chat.notice(chat.active, "Usage: /join ROOM [KEY]");
      return true;
    case "leave": case "part":
      if (c && c.kind === "room" && c.key !== LOBBY) chat.leave(c.name);
      else chat.notice(chat.active, "Everyone stays in the lobby; /leave leaves the room you are in.");
      return true;
    case "dm": case "msg": case "query":
      if (!arg) { chat.notice(chat.active, "Usage: /dm NICK [TEXT]"); return true; }
      chat.openDm(arg.replace(/^@/, ""));
      if (rest && rest.trim()) chat.sendText(rest);
      return true;
    case "help":
      chat.notice(chat.active, HELP);
      return true;
    case "block": case "unblock":
      if (!arg) chat.notice(chat.active, `Usage: /${name.toLowerCase()} NICK`);
      else if (!chat.request(name.toLowerCase(), { nick: arg.replace(/^@/, "") }, arg.replace(/^@/, ""))) offline();
      return true;
    case "topic": case "invite": case "unban": case "unmute": {
      const what = name.toLowerCase();
      if (!c || c.kind !== "room") { chat.notice(chat.active, `/${what} acts on a room: open one first.`); return true; }
      if (what === "topic") {
        const topic = [arg, rest].filter(Boolean).join(" ").trim();
        if (!topic) chat.notice(c.key, c.info && c.info.topic ? `The topic of #${c.name}: ${c.info.topic}` : `#${c.name} has no topic.`);
        else if (!chat.request("settings", { room: c.name, topic }, "", c.name)) offline();
      } else if (!arg) chat.notice(chat.active, `Usage: /${what} NICK`);
      else moderate(what, c, arg.replace(/^@/, ""), {});
      return true;
    }
    default:
      chat.notice(chat.active, `/${name} is not a command here. ${HELP}`);
      return true;
  }
}

$("open-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("open-name").value.trim();
  if (!text) return;
  $("open-name").value = "";
  closePanes();
  saveDraft();
  if (text.startsWith("@")) chat.openDm(text.slice(1));
  else {
    const room = text.replace(/^#/, "").toLowerCase();
    if (chat.conversations.has(roomKey(room))) chat.switchTo(roomKey(room)); else chat.join(room);
  }
  $("message").focus();
});

$("logout").addEventListener("click", () => chat.logout());
$("leave").addEventListener("click", () => {
  const c = chat.conversations.get(chat.active);
  if (c && c.kind === "room" && c.key !== LOBBY) chat.leave(c.name);
});

// Phone width: the conversation list and the people list open over the chat.
function closePanes() {
  for (const [button, pane] of [["toggle-side", "side"], ["toggle-members", "members-pane"]]) {
    $(pane).classList.remove("open");
    $(button).setAttribute("aria-expanded", "false");
  }
}
for (const [button, pane] of [["toggle-side", "side"], ["toggle-members", "members-pane"]]) {
  $(button).addEventListener("click", () => {
    const open = !$(pane).classList.contains("open");
    closePanes();
    $(pane).classList.toggle("open", open);
    $(button).setAttribute("aria-expanded", String(open));
    if (open) $(pane).querySelector("button, input")?.focus();
  });
}
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closePanes(); });


// --- the room list -----------------------------------------------------------------

function openDialog(id) {
  closePanes();
  if (!$(id).open) $(id).showModal();
}

function askRooms() {
  $("room-list").replaceChildren();
  $("rooms-note").textContent = chat.listRooms() ? "Loading the room list…" : "Offline: the room list comes once you are back online.";
}

$("browse-rooms").addEventListener("click", () => { openDialog("rooms-dialog"); askRooms(); $("rooms-refresh").focus(); });
$("rooms-refresh").addEventListener("click", askRooms);
$("rooms-close").addEventListener("click", () => $("rooms-dialog").close());
$("rooms-dialog").addEventListener("close", () => $("message").focus());

chat.addEventListener("rooms", (ev) => {
  if (!$("rooms-dialog").open) return;
  const list = $("room-list");
  list.replaceChildren();
  if (ev.detail.text) { $("rooms-note").textContent = ev.detail.text; return; }
  const { rooms, truncated } = chat.roomList;
  $("rooms-note").textContent = rooms.length
    ? `${rooms.length} ${rooms.length === 1 ? "room" : "rooms"}` + (truncated ? " (only the busiest are listed)" : "") + ". Pick one to join it."
    : "No rooms yet: join one by name in the menu.";
  for (const r of rooms) {
    const inIt = chat.conversations.has(roomKey(r.name));
    const b = el("button");
    b.type = "button";
    b.append(el("span", "name", `#${r.name}`), el("span", "count", `${r.online} online` + (inIt ? ", joined" : "")));
    b.addEventListener("click", () => {
      $("rooms-dialog").close();
      saveDraft();
      if (inIt) chat.switchTo(roomKey(r.name)); else chat.join(r.name);
    });
    const li = el("li");
    li.append(b);
    list.append(li);
  }
  list.querySelector("button")?.focus();
});

// --- the account: register this nick, change the password ---------------------------

/** The token of what was pasted: a token, a web link (#invite=…) or a chinwag:// link (?t=…). */
function inviteToken(text) {
  const found = text.trim().match(/(?:[?&]t|invite)=([^&\s#]+)/);
  return found ? decodeURIComponent(found[1]) : text.trim();
}

$("account-action").addEventListener("click", () => {
  const registering = !chat.account;
  $("account-title").textContent = registering ? "Register this nick" : "Change password";
  $("register-form").hidden = !registering;
  $("passwd-form").hidden = registering;
  $("register-intro").textContent = `Keep “${chat.nick}” as your account: nobody else can use it, and you log in with this password.`;
  $("account-error").textContent = "";
  for (const id of ["register-password", "old-password", "new-password"]) $(id).value = "";
  if (invite && !$("register-invite").value) $("register-invite").value = invite;
  openDialog("account-dialog");
  $(registering ? "register-password" : "old-password").focus();
});
$("account-close").addEventListener("click", () => $("account-dialog").close());
$("account-dialog").addEventListener("close", () => {
  for (const id of ["register-password", "old-password", "new-password"]) $(id).value = "";
  $("message").focus();
});

function accountProblem(text, field) {
  $("account-error").textContent = text;
  $(field).focus();
}

$("register-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const password = $("register-password").value;
  if ([...password].length < 8) { accountProblem("Too short: a password needs at least 8 characters.", "register-password"); return; }
  $("account-error").textContent = "";
  if (!chat.registerNick(password, inviteToken($("register-invite").value))) {
    accountProblem("Offline: try again once you are back online.", "register-password");
  }
});

$("passwd-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const old = $("old-password").value;
  const password = $("new-password").value;
  if (!old) { accountProblem("Enter your current password.", "old-password"); return; }
  if ([...password].length < 8) { accountProblem("Too short: a new password needs at least 8 characters.", "new-password"); return; }
  $("account-error").textContent = "";
  if (!chat.changePassword(old, password)) accountProblem("Offline: try again once you are back online.", "old-password");
});

chat.addEventListener("account", (ev) => {
  if (ev.detail.ok) {
    if ($("account-dialog").open) $("account-dialog").close();
    chat.notice(chat.active, ev.detail.text);
    render();
    return;
  }
  if (!$("account-dialog").open) { chat.notice(chat.active, ev.detail.text); return; }
  accountProblem(ev.detail.text, $("passwd-form").hidden ? "register-password" : "old-password");
});

// --- search ------------------------------------------------------------------------

let lastSearch = null; // {q, oldest}

$("search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = $("search-q").value.trim();
  if (!q) return;
  lastSearch = { q, oldest: null };
  $("results").replaceChildren();
  $("results-more").hidden = true;
  openDialog("search-dialog");
  $("results-note").textContent = chat.search(q) ? "Searching…" : "Offline: search once you are back online.";
  $("search-close").focus();
});
$("results-more").addEventListener("click", () => {
  if (lastSearch && lastSearch.oldest) chat.search(lastSearch.q, lastSearch.oldest);
});
$("search-close").addEventListener("click", () => $("search-dialog").close());
$("search-dialog").addEventListener("close", () => { if (!$("search-dialog").dataset.jumping) $("message").focus(); delete $("search-dialog").dataset.jumping; });

chat.addEventListener("results", (ev) => {
  const f = ev.detail;
  if (!$("search-dialog").open || !lastSearch) return;
  if (f.error) { $("results-note").textContent = `The search did not run: ${f.text}.`; return; }
  if (f.q !== lastSearch.q) return;
  const list = $("results");
  const first = !lastSearch.oldest;
  for (const m of f.messages || []) {
    if (typeof m.body !== "string") continue;
    lastSearch.oldest = m.id;
    const where = m.room ? `#${m.room}` : `@${chat.otherOf(m)}`;
    const b = el("button");
    b.type = "button";
    b.append(el("span", "meta", `${where} · ${m.from} · ${new Date(m.ts).toLocaleString()}`), renderBody(clip(m.body, 300)));
    b.addEventListener("click", () => {
      $("search-dialog").dataset.jumping = "1";
      $("search-dialog").close();
      saveDraft();
      const key = chat.keyOf(m);
      chat.conversation(key, m.room ?? chat.otherOf(m));
      chat.showMessage(key, m.id);
    });
    const li = el("li");
    li.append(b);
    list.append(li);
  }
  const n = list.children.length;
  $("results-note").textContent = n ? `${n} ${n === 1 ? "message" : "messages"} with “${f.q}”, newest first.` : `Nothing found for “${f.q}”.`;
  $("results-more").hidden = !f.more;
  if (first) list.querySelector("button")?.focus();
});

// --- DM receipts --------------------------------------------------------------------

$("receipts").addEventListener("change", () => {
  if (!chat.setReceipts($("receipts").checked)) {
    $("receipts").checked = !$("receipts").checked;
    $("status").textContent = "Offline: change this once you are back online.";
  }
  render();
});
