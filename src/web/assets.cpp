// SPDX-License-Identifier: GPL-3.0-or-later
#include "web/assets.h"

namespace bzs::web::assets {

const std::string_view kCss = R"css(
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, sans-serif; color: #1b1f23; background: #f6f7f9; }
header { background: #1f3a5f; color: #fff; padding: .6rem 1rem; display: flex; flex-wrap: wrap;
         align-items: center; gap: .5rem 1rem; }
header .brand { font-weight: 600; }
nav { display: flex; flex-wrap: wrap; gap: .25rem .75rem; align-items: center; }
nav a { color: #dbe7f5; text-decoration: none; padding: .2rem 0; }
nav a.active { color: #fff; border-bottom: 2px solid #fff; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.4rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid #e1e4e8; vertical-align: top; }
.scroll { overflow-x: auto; }
form.inline { display: inline; }
.row-actions { white-space: nowrap; }
.row-actions form.inline { margin-left: .5rem; }
label { display: block; margin: .4rem 0; }
input[type=text], input[type=password], select { font: inherit; padding: .35rem .5rem; width: 100%;
  max-width: 22rem; border: 1px solid #c8ccd1; border-radius: 4px; }
button { font: inherit; padding: .35rem .9rem; border-radius: 4px; border: 1px solid #1f3a5f;
         background: #1f3a5f; color: #fff; cursor: pointer; }
button.danger { background: #b42318; border-color: #b42318; }
nav button { background: transparent; border-color: #dbe7f5; padding: .1rem .6rem; }
.card { background: #fff; border: 1px solid #e1e4e8; border-radius: 6px; padding: 1rem; margin: 0 0 1rem; }
.card > :first-child { margin-top: 0; } .card > :last-child { margin-bottom: 0; }
.notice { background: #eef6ee; border-color: #9bc79b; }
.error { background: #fdeeee; border-color: #e3a3a3; }
.muted { color: #57606a; }
.status-ok { color: #1a7f37; } .status-bad { color: #b42318; }
.qr svg { width: 100%; max-width: 320px; height: auto; background: #fff; }
code.uri { word-break: break-all; display: block; background: #fff; padding: .5rem; border: 1px solid #e1e4e8; }
.hidden { display: none; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
           white-space: nowrap; }
.pager a { margin-right: 1rem; }
)css";

const std::string_view kJs = R"js(
'use strict';
// Pairing page: count the code's time down, poll the device's pairing state every
// 2 s, and say when the phone paired or the code expired. The QR code and links
// (the one-time code) leave the page once they are of no use. No code is ever
// fetched: the state endpoint does not carry it.
(function () {
  var live = document.getElementById('pair-live');
  if (!live) { return; }
  var url = live.getAttribute('data-status-url');
  var remaining = parseInt(live.getAttribute('data-remaining'), 10) || 0;
  var countdown = document.getElementById('pair-countdown');
  var state = document.getElementById('pair-state');
  var passkey = document.getElementById('pair-passkey');
  var done = live.getAttribute('data-state') !== 'pending' || remaining <= 0;

  // A code shown in answer to a POST: move the address bar to the device's
  // pairing page, so that reloading shows its state instead of posting again.
  var pageUrl = live.getAttribute('data-page-url');
  if (pageUrl && window.location.pathname !== pageUrl && window.history.replaceState) {
    window.history.replaceState(null, '', pageUrl);
  }

  function remove(id) {
    var el = document.getElementById(id);
    if (el && el.parentNode) { el.parentNode.removeChild(el); }
  }
  function finish(text, cls, keepNewCode) {
    done = true;
    remove('pair-qr');
    remove('pair-uri');
    if (!keepNewCode) { remove('pair-new-code'); }
    state.textContent = text;
    state.className = cls;
  }
  function show() {
    if (!countdown) { return; }
    var m = Math.floor(remaining / 60), s = remaining % 60;
    countdown.textContent = m + ':' + (s < 10 ? '0' : '') + s;
  }
  function poll() {
    if (done) { return; }
    fetch(url, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) {
        if (!j || done) { return; }
        if (j.passkey) {
          passkey.textContent = 'The phone asks for a passkey: ' + j.passkey;
          passkey.className = 'card notice';
        }
        if (j.state === 'active') {
          finish('Paired as ' + j.name + '.', 'card notice', false);
        } else if (j.state === 'revoked') {
          finish('This device is revoked.', 'card error', false);
        } else {
          remaining = j.code_remaining;
          if (remaining <= 0) {
            finish('Code expired \u2014 get a new code.', 'card error', true);
          } else {
            show();
          }
        }
      })
      .catch(function () {});
  }
  if (done) { return; }
  show();
  setInterval(function () {
    if (done) { return; }
    if (remaining > 0) { remaining -= 1; }
    show();
    if (remaining <= 0) { poll(); }
  }, 1000);
  setInterval(poll, 2000);
})();
)js";

}  // namespace bzs::web::assets
