// Message bodies become DOM nodes made with textContent only: a body is never HTML.
// Fenced blocks (```) become <pre> in monospace (the bot's game boards); http(s) links
// become <a rel="noopener noreferrer">; nothing else is a link.

const LINK = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?)\]}]+$/;

/** Split a body into runs of [text, isCode], as the desktop app does (split_fences). */
export function splitFences(body) {
  const runs = [];
  let current = [];
  let code = false;
  for (const line of body.split("\n")) {
    const trimmed = line.trimStart();
    if (trimmed.startsWith("```")) {
      const rest = trimmed.slice(3).trimEnd();
      if (!code && rest.endsWith("```") && rest.length > 3) {
        if (current.length) runs.push([current.join("\n"), false]);
        current = [];
        runs.push([rest.slice(0, -3), true]);
        continue;
      }
      if (current.length || code) runs.push([current.join("\n"), code]);
      current = [];
      code = !code;
      continue;
    }
    current.push(line);
  }
  if (current.length) runs.push([current.join("\n"), code]);
  return runs.filter(([text, isCode]) => text || isCode);
}

/** A safe link for `href`, or null: only absolute http: and https: URLs pass. */
export function safeUrl(text) {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/** Append `text` to `parent` as text nodes, with http(s) URLs as links and mentions marked. */
export function appendLinked(parent, text, names = null) {
  let last = 0;
  for (const match of text.matchAll(LINK)) {
    let raw = match[0];
    const trail = raw.match(TRAILING);
    if (trail) raw = raw.slice(0, raw.length - trail[0].length);
    const href = safeUrl(raw);
    if (!href) continue;
    if (match.index > last) appendText(parent, text.slice(last, match.index), names);
    const a = document.createElement("a");
    a.href = href;
    a.textContent = raw;
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    parent.append(a);
    last = match.index + raw.length;
  }
  if (last < text.length) appendText(parent, text.slice(last), names);
}

const AT = /@([\p{L}\p{M}\p{N}_-]+)/gu;

/** Append `text` as text nodes, each @nick of `names` (folded nick -> class) in a <mark>. */
function appendText(parent, text, names) {
  let last = 0;
  if (names && names.size) {
    for (const match of text.matchAll(AT)) {
      const cls = names.get(fold(match[1]));
      if (!cls) continue;
      if (match.index > last) parent.append(document.createTextNode(text.slice(last, match.index)));
      const mark = document.createElement("mark");
      mark.className = cls;
      mark.textContent = match[0];
      parent.append(mark);
      last = match.index + match[0].length;
    }
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

/** The DOM of one message body: spans of text and <pre> blocks; `names` marks @mentions. */
export function renderBody(body, names = null) {
  const out = document.createElement("span");
  out.className = "body";
  for (const [text, isCode] of splitFences(body)) {
    if (isCode) {
      const pre = document.createElement("pre");
      pre.textContent = text;
      out.append(pre);
    } else {
      const span = document.createElement("span");
      appendLinked(span, text, names);
      out.append(span);
    }
  }
  return out;
}

/** Whether `body` mentions `nick` as @nick (word boundary, case-insensitive). */
export function mentions(body, nick) {
  if (!nick) return false;
  const folded = fold(nick);
  for (const m of body.matchAll(/@([\p{L}\p{M}\p{N}_-]+)/gu)) {
    if (fold(m[1]) === folded) return true;
  }
  return false;
}

/** Nicks are compared after NFC and case folding (lower case is the close browser match). */
export function fold(nick) {
  return nick.normalize("NFC").toLowerCase();
}
