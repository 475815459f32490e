// The client's state and its WebSocket session: no DOM here.
// One JSON frame per WebSocket text message (docs/protocol.md). Messages are kept by
// id (duplicates dropped); what the user sends waits in an outbox (localStorage) with
// its cid until the server's ack, and is sent again with the same cid after a reconnect.

import { fold, mentions } from "./text.js";

const STORE = "chinwag.";
const BACKOFF_MIN = 500;
const BACKOFF_MAX = 8000;
const TYPING_EVERY = 3000;
const TYPING_TTL = 6000;
const SEEN_DELAY = 500;
const READ_DELAY = 500;
const READ_EVERY = 3000;   // a `read` costs a command token: in a busy room, one per 3 s at most
const AROUND = 25;          // a jump far back loads this many messages each side of its target
const RETRYABLE = new Set(["server_error", "rate_limited"]);

export const LOBBY = "room:lobby";

// What a presence event says in the conversation (moderation's events too, protocol §12).
const PRESENCE_WORDS = {
  join: "joined", leave: "left", kick: "was kicked", ban: "was banned", unban: "was unbanned",
  mute: "was muted", unmute: "was unmuted", invite: "was invited", grant: "was given a new role",
  voice: "was given voice", unvoice: "lost voice",
};

// Ranks of the room roles (protocol §12): nobody acts on their equal or better.
const RANKS = { member: 0, mod: 1, owner: 2, admin: 3 };

export function roomKey(room) { return `room:${room}`; }
export function dmKey(nick) { return `dm:${fold(nick)}`; }

function load(name, fallback) {
  try {
    const raw = localStorage.getItem(STORE + name);
    return raw === null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}
function save(name, value) {
  try { localStorage.setItem(STORE + name, JSON.stringify(value)); } catch { /* full or disabled */ }
}

/** This browser's device id: made once, kept in localStorage (never a password). */
export function deviceId() {
  let id = load("device", null);
  if (typeof id !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    id = "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    save("device", id);
  }
  return id;
}

export function lastNick() { return load("nick", ""); }

/** The login refusals in plain words (what to do next). */
export function explainError(code, message, nick, registering, reason = "", until = null) {
  switch (code) {
    case "banned": {
      const why = (message || "").match(/\((.+)\)$/);
      return `“${nick}” is banned from this server ${until ? `until ${localUntil(until)}` : "until its admin lifts the ban"}`
        + (why ? ` (${why[1]})` : "") + ". Ask the server's admin if you think this is a mistake.";
    }
    case "password_required":
      return registering
        ? `“${nick}” is already registered. Untick “Register” and enter its password.`
        : `“${nick}” is registered: enter its password.`;
    case "bad_password": return `Wrong password for “${nick}”.`;
    case "nick_taken": return `Someone online is using “${nick}” right now. Pick another nick, or try again in a moment.`;
    case "nick_registered": return `“${nick}” is already registered. Untick “Register” and log in with its password.`;
    case "bad_nick": return `“${nick}” can't be used (${message}). Nicks are up to 32 letters, digits, _ and -.`;
    case "weak_password": return `Too short: ${message || "a password needs at least 8 characters"}.`;
    case "rate_limited": return message || "Too many attempts. Wait a little and try again.";
    case "forbidden":
      if (reason === "invite_required") return "This server needs an invite to register: paste the invite code or link, or ask its admin for one.";
      if (reason === "bad_invite") return "That invite is unknown, used up or expired: ask the server's admin for a new one.";
      if (reason === "registration_closed") return "This server takes no new accounts right now. You can go on chatting as a guest.";
      return `The server refused to register: ${message}. Ask its admin for an invite link.`;
    default: return `The server refused: ${message || code}.`;
  }
}

/** The refusals of a password change in plain words; nothing changed in any of them. */
export function explainPasswd(code, message) {
  switch (code) {
    case "bad_password": return "The current password is wrong, so nothing changed. Type it again.";
    case "weak_password": return `Too short: ${message || "a password needs at least 8 characters"}. Nothing changed.`;
    case "forbidden": return "A guest has no password: register this nick first.";
    case "rate_limited": return (message || "Too many attempts.") + " Wait a little and try again; nothing changed.";
    default: return `The server refused: ${message || code}. Nothing changed.`;
  }
}

/** Why an edit, a deletion or a reaction was refused, in plain words; nothing changed. */
export function explainAction(act, code, reason, message) {
  const what = { edit: "edit", delete: "delete", react: "react to" }[act] || act;
  if (reason === "not_sender") return `Only the sender can ${what} that message.`;
  if (reason === "deleted") return `That message was deleted, so you cannot ${what} it.`;
  if (reason === "edit_window") return "Too late to edit: that message is too old. Send a new one instead.";
  if (code === "not_found") return `That message is gone or no longer visible to you, so you cannot ${what} it.`;
  if (code === "bad_body") return `Not saved: ${message || "the new text is not a valid message"}.`;
  return `Could not ${what} that message: ${message || code}.`;
}

/** A time of a ban or a mute, in local time: "14:05" today, else with the date. */
export function localUntil(until) {
  const d = new Date(until);
  if (Number.isNaN(d.getTime())) return "";
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

/** Why a room refused a message or a join (protocol §12), in plain words. */
export function explainRoom(room, code, reason, until, message) {
  const till = until ? ` until ${localUntil(until)}` : " until a moderator lifts it";
  if (reason === "muted") return `You are muted in #${room}${till}.`;
  if (reason === "announce") return `Only the owner and mods speak in #${room} (an announcement room).`;
  if (reason === "banned") return `You are banned from #${room}${till}.`;
  if (reason === "private") return `#${room} is private: ask its owner or a mod to invite you.`;
  return `#${room}: ${message || code}.`;
}

/** Why a moderation request was refused (protocol §12), in plain words; nothing changed. */
export function explainModeration(what, nick, code, reason, message) {
  if (reason === "not_allowed") return `Only the room's owner${what === "grant" || what === "settings" ? "" : " or a mod"} can do that.`;
  if (reason === "rank") return `${nick} is a mod or above here: you cannot act on them.`;
  if (reason === "not_admin") return "Only a server admin can do that.";
  if (reason === "lobby") return "Everyone stays in the lobby: it cannot be closed to anyone, or made private.";
  if (reason === "guest" && what === "grant") return `${nick} is a guest: only an account can be a server admin.`;
  if (reason === "guest") return "Only an account can do that: register your nick first.";
  if (reason === "limit") return "This room keeps as many bans, mutes, invites and mods as it can: lift one first.";
  if (code === "no_such_user") return `Nobody called ${nick} is registered or online.`;
  if (code === "not_member") return `${message || "not a member"}.`;
  return `Not done: ${message || code}.`;
}

class Conversation {
  constructor(key, name) {
    this.key = key;
    this.kind = key.startsWith("room:") ? "room" : "dm";
    this.name = name;          // room name, or the other party's display nick
    this.messages = [];        // sorted by id
    this.unread = 0;
    this.dividerBefore = null; // id of the first message replayed at the last login
    this.more = true;          // whether history may have older messages
    this.loading = false;
    this.members = null;       // [{nick, account}] once `who` answered
    this.typing = new Map();   // folded nick -> {nick, until}
    this.readUpto = 0;         // the account's read marker here (from any device)
    this.readSent = 0;         // the last `read` this page sent
    this.unreadBefore = 0;     // unread when the backlog began
    this.delivered = 0;        // DM receipts: the other party has my DMs up to this id…
    this.seenBy = 0;           // …and has read them up to this one
    this.reveal = null;        // {id, waiting}: a message to show once history brings it
    this.gaps = new Set();     // ids after which newer messages are not loaded yet (a jump)
    this.info = null;          // a room's {topic, private, announce, retention_days} (room_info, §12)
    this.role = "member";      // my role in the room (room_info.role)
    this.roles = new Map();    // folded nick -> role: from `who` rows, then grants seen
    this.mutedUntil = null;    // when I am muted here: the end (ISO) or "" for until lifted
  }
  lastId() { return this.messages.length ? this.messages[this.messages.length - 1].id : 0; }
  oldestId() { return this.messages.length ? this.messages[0].id : null; }
}

/** A room's settings and my role there, from a `room_info` or a `who` that carries them (§12). */
function takeRoomInfo(c, f) {
  const days = Number.isInteger(f.retention_days) && f.retention_days > 0 ? f.retention_days : null;
  const limit = Number.isInteger(f.limit) && f.limit > 0 ? f.limit : null;  // ircmodes (§12.6)
  c.info = {
    topic: typeof f.topic === "string" ? f.topic : "", private: !!f.private, announce: !!f.announce, retention_days: days,
    keyed: f.keyed === true, key: typeof f.key === "string" ? f.key : null, limit,
  };
  if (typeof f.role === "string" && Object.hasOwn(RANKS, f.role)) c.role = f.role;
}

export class Chat extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.device = deviceId();
    this.ws = null;
    this.phase = "offline";    // offline | connecting | backlog | live
    this.nick = "";
    this.account = false;
    this.password = null;      // in memory only, for reconnecting
    this.register = null;      // {password, invite, late} while registering
    this.newPassword = null;   // while a `passwd` is on its way
    this.roomList = null;      // the last `rooms` reply: {rooms, truncated}
    this.wanted = false;       // whether to stay connected
    this.loggedIn = false;     // whether a welcome came since the user pressed Connect
    this.attempt = 0;
    this.timer = null;
    this.conversations = new Map();
    this.active = LOBBY;
    this.ids = new Set();
    this.byId = new Map();     // message id -> message, for edits, deletions, reactions, replies
    this.maxId = 0;
    this.readTimer = null;
    this.readAt = 0;           // when the last `read` went
    this.seenSent = 0;
    this.seenTimer = null;
    this.summary = null;
    this.retryAt = 0;
    this.motdShown = false;
    this.outbox = load("outbox", []);
    this.lastTyping = 0;
    this.statusText = "";
    this.blocks = null;        // the nicks this user blocks (the `blocks` reply), once asked
    this.requests = new Map(); // ref -> {what, nick, room}: moderation requests on their way
    this.pageFrames = new Map(); // ref -> frame: a jump's or a gap's history request (issue 15)
    this.asked = 0;
    this.ending = "";          // why the server ended the session (bye), shown at the login form
    this.conversation(LOBBY, "lobby");
  }

  emit(type, detail = {}) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  conversation(key, name) {
    let c = this.conversations.get(key);
    if (!c) {
      c = new Conversation(key, name ?? key.slice(key.indexOf(":") + 1));
      this.conversations.set(key, c);
      if (c.kind === "dm") this.rememberDms();
    } else if (name && c.kind === "dm") {
      c.name = name;
    }
    return c;
  }

  /** An account's DMs are kept in this browser, so that the next login lists them again. */
  rememberDms() {
    if (!this.account || !this.loggedIn) return;
    const names = [...this.conversations.values()].filter((c) => c.kind === "dm").map((c) => c.name);
    save("dms." + fold(this.nick), names.sort((a, b) => fold(a).localeCompare(fold(b))));
  }

  totalUnread() {
    let n = 0;
    for (const c of this.conversations.values()) n += c.unread;
    return n;
  }

  // --- the session --------------------------------------------------------------

  login(nick, password, register = null) {
    // A login from the form starts from a clean page: nothing of an earlier nick stays.
    this.conversations.clear();
    this.conversation(LOBBY, "lobby");
    this.active = LOBBY;
    this.ids.clear();
    this.byId.clear();
    this.maxId = 0;
    this.seenSent = 0;
    this.nick = nick;
    this.ending = "";
    this.blocks = null;
    this.password = register ? null : password || null;
    this.register = register;
    this.wanted = true;
    this.loggedIn = false;
    this.attempt = 0;
    this.open();
  }

  logout() {
    this.wanted = false;
    this.password = null;
    clearTimeout(this.timer);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      // What is on screen counts as seen: the next login does not bring it back as new.
      clearTimeout(this.seenTimer);
      this.seenTimer = null;
      if (this.phase === "live" && this.maxId > this.seenSent) this.send({ type: "seen", upto: this.maxId });
      this.send({ type: "bye" });
    } else this.drop();
  }

  open() {
    clearTimeout(this.timer);
    this.phase = "connecting";
    this.status("Connecting…");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.closed(`Cannot open ${this.url}: ${err.message}`);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      const hello = { type: "hello", proto: 1, nick: this.nick, device: this.device, client: "chinwag-web/1", ref: "hello" };
      if (this.password) hello.password = this.password;
      this.send(hello);
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      if (frame && typeof frame.type === "string") this.receive(frame);
    };
    ws.onclose = () => { if (ws === this.ws) this.closed(); };
  }

  drop() {
    const ws = this.ws;
    this.ws = null;
    if (ws) { ws.onclose = null; ws.close(); }
    this.phase = "offline";
  }

  closed(reason) {
    this.drop();
    if (!this.wanted) {
      if (this.ending) { const text = this.ending; this.ending = ""; this.emit("loginfailed", { text }); }
      else this.emit("loggedout");
      return;
    }
    if (!this.loggedIn) {
      // Never got in: tell the login form, unless it was a dropped connection mid-retry.
      this.wanted = false;
      this.emit("loginfailed", { text: reason || `Nobody answered at ${location.host}. Is the chinwag server running?` });
      return;
    }
    this.retry();
  }

  retry(after) {
    const delay = after ?? Math.min(BACKOFF_MAX, BACKOFF_MIN * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.offlineStatus();
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
    this.emit("change");
  }

  offlineStatus() {
    const queued = this.pendingCount();
    const wait = Math.max(1, Math.ceil((this.retryAt - Date.now()) / 1000));
    this.status(`Offline — reconnecting in ${wait} s` + (queued ? ` (${queued} waiting to send)` : ""), true);
  }

  status(text, offline = false) {
    this.statusText = text;
    this.offline = offline;
    this.emit("status");
  }

  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  receive(f) {
    switch (f.type) {
      case "welcome": return this.onWelcome(f);
      case "message": return this.onMessage(f);
      case "caught_up": return this.onCaughtUp(f);
      case "ack": return this.onAck(f);
      case "error": return this.onError(f);
      case "ok": return this.onOk(f);
      case "presence": return this.onPresence(f);
      case "typing": return this.onTyping(f);
      case "who": return this.onWho(f);
      case "history": return this.onHistory(f);
      case "rooms": return this.onRooms(f);
      case "edited": return this.onEdited(f);
      case "deleted": return this.onDeleted(f);
      case "reacted": return this.onReacted(f);
      case "read": return this.onRead(f);
      case "receipt": return this.onReceipt(f);
      case "results": this.emit("results", f); return;
      case "settings": return this.onSettings(f);
      case "room_info": return this.onRoomInfo(f);
      case "blocks": this.blocks = Array.isArray(f.nicks) ? f.nicks : []; this.emit("change"); return;
      case "ping": this.send({ type: "pong", ref: f.ref }); return;
      case "bye":
        // A server ban or an admin's kick: no reconnecting; the login form says why.
        if (f.reason === "banned") { this.wanted = false; this.ending = "This account is banned from this server. Ask its admin if you think this is a mistake."; }
        if (f.reason === "kicked") { this.wanted = false; this.ending = "A server admin ended this session. You can log in again."; }
        return;
      default: return; // frames this client does not use (pong)
    }
  }

  onWelcome(f) {
    this.phase = "backlog";
    this.nick = f.nick;
    this.account = !!f.account;
    this.resumed = this.loggedIn; // an automatic reconnect, not a login from the form
    this.loggedIn = true;
    this.attempt = 0;
    save("nick", f.nick);
    const rooms = new Set(f.rooms || []);
    if (this.account && typeof f.settings?.receipts === "boolean") {
      save("receipts." + fold(f.nick), f.settings.receipts);  // the account's true setting
    }
    for (const c of [...this.conversations.values()]) {
      if (c.kind === "room" && c.key !== LOBBY && !rooms.has(c.name)) {
        this.conversations.delete(c.key);  // kicked or banned while away
        if (this.active === c.key) this.active = LOBBY;
      }
    }
    for (const room of rooms) this.conversation(roomKey(room), room);
    if (this.account) {
      const known = load("dms." + fold(f.nick), []);
      for (const name of Array.isArray(known) ? known : []) if (typeof name === "string") this.conversation(dmKey(name), name);
    }
    for (const c of this.conversations.values()) { c.dividerBefore = null; c.unreadBefore = c.unread; }
    if (f.motd && !this.motdShown) { this.motdShown = true; this.notice(LOBBY, f.motd); }
    this.status("Catching up…");
    if (this.register) {
      const frame = { type: "register", password: this.register.password, ref: "register" };
      if (this.register.invite) frame.invite = this.register.invite;
      this.send(frame);
    }
    this.emit("welcome", { motd: f.motd || "" });
  }

  onCaughtUp(f) {
    this.phase = "live";
    this.summary = f;
    if (f.unread) {
      // Version 1.1: the server counts the backlog after the account's read markers, so
      // what another device read meanwhile is not unread here.
      for (const c of this.conversations.values()) c.unread = c.unreadBefore;
      for (const [name, n] of Object.entries(f.unread)) {
        const c = name.startsWith("@") ? this.conversation(dmKey(name.slice(1)), name.slice(1)) : this.conversations.get(roomKey(name));
        if (c) c.unread += n;
      }
    }
    // The account's read markers (issue 15): where it read each conversation, on any
    // device; the "new since you were away" line goes after what was read.
    const me = fold(this.nick);
    for (const [name, upto] of Object.entries(f.markers || {})) {
      const c = this.conversations.get(name.startsWith("@") ? dmKey(name.slice(1)) : roomKey(name));
      if (!c || typeof upto !== "number") continue;
      c.readUpto = Math.max(c.readUpto, upto);
      if (c.dividerBefore !== null && c.dividerBefore <= c.readUpto) {
        const next = c.messages.find((m) => m.replay && m.id > c.readUpto && fold(m.from) !== me);
        c.dividerBefore = next ? next.id : null;
      }
    }
    // Stored DM receipts (issue 15): how far each has my DMs, also while this page was closed.
    for (const [name, state] of Object.entries(f.receipts || {})) {
      if (name.startsWith("@")) this.storedReceipts(this.conversation(dmKey(name.slice(1)), name.slice(1)), state);
    }
    const open = this.conversations.get(this.active);
    if (open && !document.hidden) open.unread = 0;
    this.status(`Connected as ${this.nick}` + (this.account ? "" : " (guest)"));
    this.flush();
    this.refreshMembers();
    this.askBlocks();
    this.scheduleSeen();
    this.scheduleRead();
    this.emit("caughtup", f);
    this.emit("change");
  }

  onOk(f) {
    if (f.ref === "register") {
      this.password = this.register.password;
      this.register = null;
      this.account = true;
      this.status(`Connected as ${this.nick}`);
      this.rememberDms();
      this.refreshMembers();
      this.emit("account", { ok: true, text: `“${this.nick}” is now registered: log in with this password next time.` });
      this.emit("change");
      return;
    }
    if (f.ref === "passwd") {
      if (this.password !== null) this.password = this.newPassword;
      this.newPassword = null;
      this.emit("account", { ok: true, text: "Password changed: use the new one next time you log in." });
      return;
    }
    const req = this.requests.get(f.ref);
    if (req) {
      this.requests.delete(f.ref);
      if (req.what === "block" || req.what === "unblock") this.askBlocks();
      if (req.what === "invite") this.notice(roomKey(req.room), `${req.nick} is invited to #${req.room}.`);
      this.emit("moderated", { ok: true, ...req });
      return;
    }
    if (typeof f.ref === "string" && f.ref.startsWith("join:")) {
      const room = f.ref.slice(5);
      this.conversation(roomKey(room), room);
      this.switchTo(roomKey(room));
    }
    if (typeof f.ref === "string" && f.ref.startsWith("leave:")) {
      this.conversations.delete(roomKey(f.ref.slice(6)));
      if (this.conversations.has(this.active)) this.emit("change");
      else this.switchTo(LOBBY);
    }
  }

  onError(f) {
    if (f.ref === "hello") {
      if (this.loggedIn && (f.code === "nick_taken" || f.code === "rate_limited")) {
        // Our own dropped session may still hold the nick: try again later.
        this.drop();
        this.retry(f.retry_after ? f.retry_after * 1000 : undefined);
        return;
      }
      this.wanted = false;
      this.drop();
      this.emit("loginfailed", { text: explainError(f.code, f.message, this.nick, !!this.register, f.reason, f.until), code: f.code });
      return;
    }
    if (f.ref === "register") {
      const late = this.register && this.register.late;
      this.register = null;
      const text = explainError(f.code, f.message, this.nick, true, f.reason);
      if (late) this.emit("account", { ok: false, text });
      else this.notice(LOBBY, text + " You are in as a guest.");
      return;
    }
    if (f.ref === "passwd") {
      this.newPassword = null;
      this.emit("account", { ok: false, text: explainPasswd(f.code, f.message) });
      return;
    }
    if (f.ref === "rooms") {
      this.emit("rooms", { text: `The room list is not available: ${f.message || f.code}.` });
      return;
    }
    const req = this.requests.get(f.ref);
    if (req) {
      this.requests.delete(f.ref);
      const text = explainModeration(req.what, req.nick, f.code, f.reason, f.message);
      this.emit("moderated", { ok: false, text, ...req });
      return;
    }
    const item = this.outbox.find((o) => o.cid === f.ref);
    if (item && item.act && !RETRYABLE.has(f.code)) {
      this.acked(item.cid);
      const room = item.key.startsWith("room:") ? item.key.slice(5) : null;
      this.notice(item.key, f.code === "forbidden" && room && (f.reason === "muted" || f.reason === "announce")
        ? explainRoom(room, f.code, f.reason, f.until, f.message) + " Nothing changed."
        : explainAction(item.act, f.code, f.reason, f.message));
      return;
    }
    if (item) {
      if (RETRYABLE.has(f.code)) {
        const wait = (f.retry_after ?? 1) * 1000;
        setTimeout(() => this.flush(), wait);
      } else {
        item.failed = f.code === "forbidden" && item.kind === "room"
          ? explainRoom(item.target, f.code, f.reason, f.until, f.message)
          : f.message || f.code;
        this.saveOutbox();
        this.emit("change");
      }
      return;
    }
    if (typeof f.ref === "string" && f.ref.startsWith("history:")) {
      const c = this.conversations.get(f.ref.slice(8));
      if (c && f.code === "rate_limited") {
        // Out of command budget: ask again later.
        c.loading = false;
        setTimeout(() => this.loadEarlier(c.key), (f.retry_after ?? 1) * 1000);
        return;
      }
      if (c) { c.loading = false; c.more = false; }
    }
    if (typeof f.ref === "string" && (f.ref.startsWith("before:") || f.ref.startsWith("after:"))) {
      // A jump's page or a gap's page was refused: out of command budget (ask again
      // later), or the conversation is gone.
      const frame = this.pageFrames.get(f.ref);
      if (f.code === "rate_limited" && frame) {
        setTimeout(() => this.send(frame), (f.retry_after ?? 1) * 1000);
        return;
      }
      this.pageFrames.delete(f.ref);
      const c = this.conversations.get(f.ref.split(":").slice(1, -1).join(":"));
      if (c) c.loading = false;
      if (c && c.reveal) {
        const { id } = c.reveal;
        c.reveal = null;
        this.emit("reveal", { conversation: c, id, found: false, error: f.message || f.code });
      }
      if (c && !c.reveal) this.emit("change");
      return;
    }
    if (f.ref === "search" || f.ref === "receipts") {
      this.emit(f.ref === "search" ? "results" : "problem", { error: true, text: f.message || f.code });
      return;
    }
    if (typeof f.ref === "string" && (f.ref.startsWith("join:") || f.ref.startsWith("leave:"))) {
      const text = f.ref.startsWith("join:") && f.code === "forbidden" ? explainRoom(f.ref.slice(5), f.code, f.reason, f.until, f.message) : f.message || f.code;
      this.emit("problem", { text });
      return;
    }
    if (f.code === "no_such_user" && typeof f.ref === "string" && f.ref.startsWith("history:")) return;
    if (!f.ref) this.notice(this.active, `Server: ${f.message || f.code}`);
  }

  keyOf(m) {
    if (m.room) return roomKey(m.room);
    const other = fold(m.from) === fold(this.nick) ? m.to : m.from;
    return dmKey(other);
  }

  otherOf(m) {
    return fold(m.from) === fold(this.nick) ? m.to : m.from;
  }

  addMessage(m) {
    if (typeof m.id !== "number" || this.ids.has(m.id)) return null;
    this.ids.add(m.id);
    if (typeof m.body !== "string") m.body = "";  // a deleted message has none
    if (!Array.isArray(m.reactions)) m.reactions = [];
    this.byId.set(m.id, m);
    const key = this.keyOf(m);
    const c = this.conversation(key, m.room ?? this.otherOf(m));
    const list = c.messages;
    let i = list.length;
    while (i > 0 && list[i - 1].id > m.id) i -= 1;
    list.splice(i, 0, m);
    return c;
  }

  onMessage(m) {
    const c = this.addMessage(m);
    if (m.cid) this.acked(m.cid);
    if (!c) return;
    if (m.id > this.maxId) this.maxId = m.id;
    const mine = fold(m.from) === fold(this.nick);
    if (m.replay && c.dividerBefore === null && !mine) c.dividerBefore = m.id;
    const hidden = document.hidden;
    if (!mine && (c.key !== this.active || hidden)) c.unread += 1;
    if (!mine) c.typing.delete(fold(m.from));
    const mention = !mine && this.mentionsMe(m);
    if (!mine && !m.replay && hidden && (c.kind === "dm" || mention)) this.emit("notify", { message: m, conversation: c });
    this.scheduleSeen();
    if (c.key === this.active) this.scheduleRead();
    this.emit("message", { message: m, conversation: c, mention });
    this.emit("change");
  }

  /** Whether message `m` mentions this user: the server's `mentions` (1.1), or @nick in the body. */
  mentionsMe(m) {
    const me = fold(this.nick);
    return mentions(m.body, this.nick) || (m.mentions || []).some((n) => fold(n) === me);
  }

  /** An event of the message stream (1.1): its id moves `seen` like a message's; false if known. */
  event(f) {
    if (typeof f.id !== "number" || this.ids.has(f.id)) return false;
    this.ids.add(f.id);
    if (f.id > this.maxId) this.maxId = f.id;
    this.scheduleSeen();
    return true;
  }

  onEdited(f) {
    if (!this.event(f)) return;
    const m = this.byId.get(f.target);
    if (!m || m.deleted) return;
    m.body = f.body;
    m.edited = f.ts;
    const me = fold(this.nick);
    const c = this.conversations.get(this.keyOf(m));
    if ((f.mentions || []).some((n) => fold(n) === me)) {
      m.mentions = (m.mentions || []).concat(this.nick);
      if (!f.replay && document.hidden && c) this.emit("notify", { message: m, conversation: c });
    }
    this.emit("change");
  }

  onDeleted(f) {
    if (!this.event(f)) return;
    const m = this.byId.get(f.target);
    if (!m) return;
    m.deleted = true;
    m.body = "";
    m.reactions = [];
    this.emit("change");
  }

  onReacted(f) {
    if (!this.event(f)) return;
    const m = this.byId.get(f.target);
    if (!m || m.deleted) return;
    const who = fold(f.from);
    let r = m.reactions.find((x) => x.emoji === f.emoji);
    if (!r) { r = { emoji: f.emoji, nicks: [] }; m.reactions.push(r); }
    const had = r.nicks.some((n) => fold(n) === who);
    if (f.on !== false && !had) r.nicks.push(f.from);
    if (f.on === false) r.nicks = r.nicks.filter((n) => fold(n) !== who);
    m.reactions = m.reactions.filter((x) => x.nicks.length);
    this.emit("change");
  }

  /** A guest took another nick (ircmsg): member lists follow, the rooms it shares are told. */
  renamed(f) {
    const folded = fold(f.nick);
    if (folded === fold(this.nick)) this.nick = f.new;
    for (const c of this.conversations.values()) {
      if (!c.members || !c.members.some((u) => fold(u.nick) === folded)) continue;
      c.members = c.members.map((u) => (fold(u.nick) === folded ? { ...u, nick: f.new } : u));
      this.notice(c.key, `${f.nick} is now known as ${f.new}`);
    }
  }

  /** Whether this user has reaction `emoji` on message `m`. */
  reacted(m, emoji) {
    const me = fold(this.nick);
    return m.reactions.some((r) => r.emoji === emoji && r.nicks.some((n) => fold(n) === me));
  }

  /** Another device of this account read a conversation up to `upto` (1.1). */
  onRead(f) {
    const c = f.room ? this.conversations.get(roomKey(f.room)) : this.conversation(dmKey(f.with), f.with);
    if (!c || typeof f.upto !== "number") return;
    c.readUpto = Math.max(c.readUpto, f.upto);
    const me = fold(this.nick);
    const left = c.messages.filter((m) => m.id > c.readUpto && fold(m.from) !== me).length;
    c.unread = Math.min(c.unread, left);
    this.emit("change");
  }

  /** Stored DM receipts {delivered, read} of conversation `c` (caught_up, history). */
  storedReceipts(c, state) {
    if (typeof state?.delivered === "number") c.delivered = Math.max(c.delivered, state.delivered);
    if (typeof state?.read === "number") c.seenBy = Math.max(c.seenBy, state.read);
  }

  /** The account's settings, changed on another device (issue 15). */
  onSettings(f) {
    if (!this.account || typeof f.receipts !== "boolean") return;
    save("receipts." + fold(this.nick), f.receipts);
    this.emit("change");
  }

  /** A DM receipt (1.1): the other party's device has, or they read, my DMs up to `upto`. */
  onReceipt(f) {
    if (typeof f.with !== "string" || typeof f.upto !== "number") return;
    const c = this.conversation(dmKey(f.with), f.with);
    if (f.state === "read") c.seenBy = Math.max(c.seenBy, f.upto);
    c.delivered = Math.max(c.delivered, f.upto);
    this.emit("change");
  }

  onPresence(f) {
    if (f.event === "nick") return this.renamed(f);
    const c = this.conversations.get(roomKey(f.room));
    const me = fold(f.nick) === fold(this.nick);
    if (me && f.event === "invite" && !c) {
      this.notice(LOBBY, `${f.by} invited you to #${f.room}: join it from the menu (#${f.room}).`);
      return;
    }
    if (!c) return;
    if (me && (f.event === "kick" || f.event === "ban")) return this.removed(c, f);
    if (f.event === "grant") {
      if (me) c.role = f.role || "member"; else c.roles.set(fold(f.nick), f.role || "member");
    }
    if (me && f.event === "mute") c.mutedUntil = f.until || "";
    if (me && f.event === "unmute") c.mutedUntil = null;
    const gone = f.event === "leave" || f.event === "kick" || f.event === "ban";
    if (c.members && (gone || f.event === "join")) {
      const folded = fold(f.nick);
      c.members = c.members.filter((u) => fold(u.nick) !== folded);
      if (f.event === "join") c.members.push({ nick: f.nick, account: true });
      c.members.sort((a, b) => fold(a.nick).localeCompare(fold(b.nick)));
    }
    const said = PRESENCE_WORDS[f.event];
    if (said) {
      const by = f.by ? ` by ${f.by}` : "";
      const why = f.reason ? `: ${f.reason}` : "";
      this.notice(c.key, `${f.nick} ${said}${f.event === "join" || f.event === "leave" ? "" : by + why}`);
    }
    this.emit("change");
  }

  /** I was kicked or banned from room `c`: it leaves the list, the lobby says why. */
  removed(c, f) {
    this.conversations.delete(c.key);
    const why = f.reason ? `: ${f.reason}` : "";
    const till = f.event === "ban" ? (f.until ? ` until ${localUntil(f.until)}` : " until it is lifted") : "";
    this.notice(LOBBY, `You were ${f.event === "ban" ? "banned" : "kicked"} from #${c.name}${f.by ? ` by ${f.by}` : ""}${till}${why}.`);
    if (this.active === c.key) this.switchTo(LOBBY); else this.emit("change");
  }

  /** A room's settings (§12): on join (with my role), and when someone changes them. */
  onRoomInfo(f) {
    const c = this.conversations.get(roomKey(f.room));
    if (!c) return;
    const before = c.info;
    takeRoomInfo(c, f);
    if (f.by && before) {
      const said = [];
      if (before.topic !== c.info.topic) said.push(c.info.topic ? `set the topic to “${c.info.topic}”` : "cleared the topic");
      if (before.private !== c.info.private) said.push(c.info.private ? "made the room private" : "opened the room to everyone");
      if (before.announce !== c.info.announce) said.push(c.info.announce ? "let only the owner and mods speak" : "let everyone speak");
      if (before.retention_days !== c.info.retention_days) said.push(c.info.retention_days ? `set the room to keep messages ${c.info.retention_days} days` : "left keeping messages to the server");
      if (before.keyed !== c.info.keyed || before.key !== c.info.key) said.push(c.info.keyed ? "set a key to join" : "removed the key");
      if (before.limit !== c.info.limit) said.push(c.info.limit ? `let at most ${c.info.limit} be in the room at once` : "lifted the limit of people");
      if (said.length) this.notice(c.key, `${f.by} ${said.join(", ")}.`);
    }
    this.emit("change");
  }

  /** What I may do in room `c` to `nick` (protocol §12): {mod, grant} by my role and theirs. */
  rights(c, nick) {
    const mine = RANKS[c.role] ?? 0;
    const theirs = RANKS[c.roles.get(fold(nick)) || "member"];
    const other = fold(nick) !== fold(this.nick);
    return {
      mod: other && mine >= RANKS.mod && theirs < mine,
      grant: other && mine >= RANKS.owner && theirs < mine,
      settings: mine >= RANKS.mod,
      flags: mine >= RANKS.owner,
    };
  }

  askBlocks() { if (this.phase === "live") this.send({ type: "blocks", ref: "blocks" }); }

  isBlocked(nick) { return (this.blocks || []).some((n) => fold(n) === fold(nick)); }

  /** Send a moderation or block request; its answer comes as a "moderated" event. False offline. */
  request(what, frame, nick = "", room = "") {
    if (this.phase !== "live") return false;
    this.asked += 1;
    const ref = `mod:${this.asked}`;
    this.requests.set(ref, { what, nick, room });
    return this.send({ type: what === "settings" ? "room" : what, ...frame, ref });
  }

  onTyping(f) {
    const c = this.conversations.get(f.room ? roomKey(f.room) : dmKey(f.from));
    if (!c) return;
    c.typing.set(fold(f.from), { nick: f.from, until: Date.now() + TYPING_TTL });
    this.emit("typing");
    setTimeout(() => this.emit("typing"), TYPING_TTL + 50);
  }

  typingText(key) {
    const c = this.conversations.get(key);
    if (!c) return "";
    const now = Date.now();
    const who = [...c.typing.values()].filter((t) => t.until > now).map((t) => t.nick);
    if (!who.length) return "";
    if (who.length === 1) return `${who[0]} is typing…`;
    if (who.length <= 3) return `${who.join(", ")} are typing…`;
    return "Several people are typing…";
  }

  onWho(f) {
    const c = this.conversations.get(roomKey(f.room));
    if (!c) return;
    c.members = [...f.users].sort((a, b) => fold(a.nick).localeCompare(fold(b.nick)));
    // Each one's role, the room's settings and mine (protocol §12.4): no second `join`.
    c.roles = new Map(f.users.map((u) => [fold(u.nick), typeof u.role === "string" && Object.hasOwn(RANKS, u.role) ? u.role : "member"]));
    if (typeof f.topic === "string") takeRoomInfo(c, f);
    else if (typeof f.role === "string" && Object.hasOwn(RANKS, f.role)) c.role = f.role;
    this.emit("change");
  }

  onHistory(f) {
    const key = f.room ? roomKey(f.room) : dmKey(f.with);
    const c = this.conversations.get(key);
    if (!c) return;
    let added = 0;
    const ids = [];
    for (const m of f.messages || []) {
      if (typeof m.id === "number") ids.push(m.id);
      if (this.addMessage(m)) added += 1;
    }
    if (f.with && f.receipts) this.storedReceipts(c, f.receipts);
    const ref = typeof f.ref === "string" ? f.ref : "";
    this.pageFrames.delete(ref);
    if (ref.startsWith("after:")) {
      // A page newer than a gap's start (issue 15): the gap closes, or moves up.
      c.gaps.delete(Number(ref.split(":").pop()));
      const top = ids.length ? Math.max(...ids) : 0;
      if (f.more && ids.length === added) c.gaps.add(top);
      c.loading = false;
    } else if (ref.startsWith("before:")) {
      // The older half of a page around a jump's target.
      const low = ids.length ? Math.min(...ids) : Infinity;
      const below = c.messages.filter((m) => m.id < low);
      if (f.more && below.length) c.gaps.add(below[below.length - 1].id);
      if (!below.length) c.more = !!f.more;
    } else {
      c.more = !!f.more;
      c.loading = false;
    }
    this.emit("history", { conversation: c, added });
    this.emit("change");
    if (c.reveal && (ref.startsWith("after:") || ref.startsWith("before:")) && --c.reveal.waiting === 0) {
      const { id } = c.reveal;
      c.reveal = null;
      this.emit("reveal", { conversation: c, id, found: this.byId.has(id) });
    }
  }

  onRooms(f) {
    this.roomList = { rooms: Array.isArray(f.rooms) ? f.rooms : [], truncated: !!f.truncated };
    this.emit("rooms", {});
  }

  notice(key, text) {
    const c = this.conversations.get(key);
    if (!c) return;
    c.notices = (c.notices || []).concat({ text, after: c.messages.length ? c.messages[c.messages.length - 1].id : 0 }).slice(-50);
    this.emit("change");
  }

  scheduleSeen() {
    if (this.seenTimer || this.phase !== "live") return;
    this.seenTimer = setTimeout(() => {
      this.seenTimer = null;
      if (this.maxId > this.seenSent && this.send({ type: "seen", upto: this.maxId })) this.seenSent = this.maxId;
    }, SEEN_DELAY);
  }

  /** Tell the account's devices the open conversation is read, once it is on screen. */
  scheduleRead() {
    if (this.readTimer || this.phase !== "live" || !this.account) return;
    const wait = Math.max(READ_DELAY, this.readAt + READ_EVERY - Date.now());
    this.readTimer = setTimeout(() => {
      this.readTimer = null;
      const c = this.conversations.get(this.active);
      if (!c || document.hidden || this.phase !== "live") return;
      const upto = c.lastId();
      if (upto <= Math.max(c.readSent, c.readUpto)) return;
      const frame = { type: "read", upto, ref: "read", ...(c.kind === "room" ? { room: c.name } : { with: c.name }) };
      if (this.send(frame)) { c.readSent = upto; c.readUpto = Math.max(c.readUpto, upto); this.readAt = Date.now(); }
    }, wait);
  }

  refreshMembers() {
    const c = this.conversations.get(this.active);
    if (c && c.kind === "room" && this.phase === "live") this.send({ type: "who", room: c.name, ref: `who:${c.name}` });
  }

  // --- what the user does --------------------------------------------------------

  switchTo(key) {
    const c = this.conversations.get(key);
    if (!c) return;
    this.active = key;
    c.unread = 0;
    this.scheduleRead();
    this.refreshMembers();
    if (c.messages.length < 30 && c.more) this.loadEarlier(key);
    this.emit("switched");
    this.emit("change");
  }

  loadEarlier(key = this.active) {
    const c = this.conversations.get(key);
    if (!c || c.loading || !c.more || this.phase !== "live") return;
    c.loading = true;
    const frame = { type: "history", limit: 50, ref: `history:${key}` };
    if (c.kind === "room") frame.room = c.name; else frame.with = c.name;
    const oldest = c.oldestId();
    if (oldest !== null) frame.before = oldest;
    this.send(frame);
  }

  /** Ask for the room list; false when offline (the answer comes as a "rooms" event). */
  listRooms() {
    return this.phase === "live" && this.send({ type: "rooms", ref: "rooms" });
  }

  /** Register the nick this guest session uses; false when offline. */
  registerNick(password, invite) {
    if (this.phase !== "live" || this.account) return false;
    const frame = { type: "register", password, ref: "register" };
    if (invite) frame.invite = invite;
    this.register = { password, invite, late: true };
    return this.send(frame);
  }

  /** Change this account's password; false when offline. */
  changePassword(old, password) {
    if (this.phase !== "live" || !this.account) return false;
    this.newPassword = password;
    return this.send({ type: "passwd", old, new: password, ref: "passwd" });
  }

  /** Join `room`; `key`: the room's key, if it has one (§12.6). */
  join(room, key = "") {
    const frame = { type: "join", room, ref: `join:${room.toLowerCase()}` };
    if (key) frame.key = key;
    this.send(frame);
  }

  leave(room) { this.send({ type: "leave", room, ref: `leave:${room}` }); }

  openDm(nick) {
    const key = dmKey(nick);
    this.conversation(key, nick);
    this.switchTo(key);
  }

  /** Open conversation `key` at message `id`: if it is not loaded, load a page around it
   *  (`before` and `after`, issue 15); what lies between it and the rest is a gap. */
  showMessage(key, id) {
    const c = this.conversations.get(key);
    if (!c) return;
    if (key !== this.active) this.switchTo(key);
    if (this.byId.has(id) || this.phase !== "live") {
      this.emit("reveal", { conversation: c, id, found: this.byId.has(id) });
      return;
    }
    c.reveal = { id, waiting: 2 };
    const where = c.kind === "room" ? { room: c.name } : { with: c.name };
    this.sendPage({ type: "history", ...where, before: id + 1, limit: AROUND, ref: `before:${key}:${id}` });
    this.sendPage({ type: "history", ...where, after: id, limit: AROUND, ref: `after:${key}:${id}` });
  }

  /** Send a history request that is asked again if the command budget refuses it. */
  sendPage(frame) {
    this.pageFrames.set(frame.ref, frame);
    this.send(frame);
  }

  /** Load the messages after gap `after` of conversation `key` (newer than a jump's page). */
  loadGap(key, after) {
    const c = this.conversations.get(key);
    if (!c || c.loading || !c.gaps.has(after) || this.phase !== "live") return;
    c.loading = true;
    const where = c.kind === "room" ? { room: c.name } : { with: c.name };
    this.sendPage({ type: "history", ...where, after, limit: 50, ref: `after:${key}:${after}` });
  }

  /** Search what this account may see (1.1); false when offline. The answer is a "results" event. */
  search(q, before = null) {
    if (this.phase !== "live") return false;
    const frame = { type: "search", q, limit: 20, ref: "search" };
    if (before) frame.before = before;
    return this.send(frame);
  }

  /** Turn DM receipts on or off for this account (1.1); false when offline. */
  setReceipts(on) {
    if (this.phase !== "live" || !this.account) return false;
    save("receipts." + fold(this.nick), on);
    return this.send({ type: "receipts", on, ref: "receipts" });
  }

  receiptsOn() { return this.account && load("receipts." + fold(this.nick), false) === true; }  // the server's, since welcome

  /** Queue an edit, a deletion or a reaction of message `m`: kept and resent like a message. */
  act(m, act, fields) {
    this.queue({ key: this.keyOf(m), act, id: m.id, ...fields });
  }

  sendText(body, replyTo = null) {
    const c = this.conversations.get(this.active);
    if (!c) return;
    this.queue({ key: c.key, kind: c.kind, target: c.name, body, reply_to: replyTo });
  }

  queue(fields) {
    const rand = crypto.getRandomValues(new Uint32Array(2));
    const item = {
      cid: `w-${Date.now().toString(36)}-${rand[0].toString(36)}${rand[1].toString(36)}`,
      nick: fold(this.nick), failed: null, ...fields,
    };
    this.outbox.push(item);
    this.saveOutbox();
    if (this.phase === "live") this.transmit(item);
    else if (this.wanted) this.offlineStatus();
    this.emit("change");
  }

  transmit(item) {
    if (this.phase !== "live" || item.failed) return;
    let frame;
    if (item.act === "edit") frame = { type: "edit", id: item.id, body: item.body };
    else if (item.act === "delete") frame = { type: "delete", id: item.id };
    else if (item.act === "react") frame = { type: "react", id: item.id, emoji: item.emoji, on: item.on };
    else if (item.kind === "room") frame = { type: "say", room: item.target, body: item.body };
    else frame = { type: "dm", to: item.target, body: item.body };
    if (item.reply_to) frame.reply_to = item.reply_to;
    this.send({ ...frame, cid: item.cid, ref: item.cid });
  }

  flush() {
    for (const item of this.outbox) if (item.nick === fold(this.nick)) {
      if (item.kind === "dm" && !item.act) this.conversation(item.key, item.target);
      this.transmit(item);
    }
  }

  onAck(f) { if (f.cid) this.acked(f.cid); }

  acked(cid) {
    const before = this.outbox.length;
    this.outbox = this.outbox.filter((o) => o.cid !== cid);
    if (this.outbox.length !== before) { this.saveOutbox(); this.emit("change"); }
  }

  dismiss(cid) { this.acked(cid); }

  pending(key) { return this.outbox.filter((o) => o.key === key && !o.act && o.nick === fold(this.nick)); }

  pendingCount() { return this.outbox.filter((o) => o.nick === fold(this.nick) && !o.failed).length; }

  saveOutbox() { save("outbox", this.outbox); }

  typed(hasText) {
    const c = this.conversations.get(this.active);
    if (!c || !hasText || this.phase !== "live") return;
    const now = Date.now();
    if (now - this.lastTyping < TYPING_EVERY) return;
    this.lastTyping = now;
    this.send(c.kind === "room" ? { type: "typing", room: c.name } : { type: "typing", to: c.name });
  }

  saveDraft(key, text) {
    const drafts = load("drafts", {});
    if (text) drafts[key] = text; else delete drafts[key];
    save("drafts", drafts);
  }

  draft(key) { return load("drafts", {})[key] || ""; }
}
