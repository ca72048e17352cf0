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
label { display: block; margin: .4rem 0; }
input[type=text], input[type=password], select { font: inherit; padding: .35rem .5rem; width: 100%;
  max-width: 22rem; border: 1px solid #c8ccd1; border-radius: 4px; }
button { font: inherit; padding: .35rem .9rem; border-radius: 4px; border: 1px solid #1f3a5f;
         background: #1f3a5f; color: #fff; cursor: pointer; }
button.danger { background: #b42318; border-color: #b42318; }
nav button { background: transparent; border-color: #dbe7f5; padding: .1rem .6rem; }
.card { background: #fff; border: 1px solid #e1e4e8; border-radius: 6px; padding: 1rem; margin: 0 0 1rem; }
.notice { background: #eef6ee; border-color: #9bc79b; }
.error { background: #fdeeee; border-color: #e3a3a3; }
.muted { color: #57606a; }
.status-ok { color: #1a7f37; } .status-bad { color: #b42318; }
.qr svg { width: 100%; max-width: 320px; height: auto; background: #fff; }
code.uri { word-break: break-all; display: block; background: #fff; padding: .5rem; border: 1px solid #e1e4e8; }
.hidden { display: none; }
.pager a { margin-right: 1rem; }
)css";

const std::string_view kJs = R"js(
'use strict';
// Pairing page: count the window down, poll the status every 2 s, and remove the
// QR code and URI (they hold the device's secret) once paired or expired.
(function () {
  var live = document.getElementById('pair-live');
  if (!live) { return; }
  var url = live.getAttribute('data-status-url');
  var remaining = parseInt(live.getAttribute('data-remaining'), 10) || 0;
  var countdown = document.getElementById('pair-countdown');
  var state = document.getElementById('pair-state');
  var passkey = document.getElementById('pair-passkey');
  var done = false;

  function dropSecret() {
    ['pair-qr', 'pair-uri'].forEach(function (id) {
      var el = document.getElementById(id);
      if (el && el.parentNode) { el.parentNode.removeChild(el); }
    });
  }
  function finish(text, cls) {
    done = true;
    dropSecret();
    state.textContent = text;
    state.className = cls;
    countdown.textContent = '';
  }
  function show() {
    var m = Math.floor(remaining / 60), s = remaining % 60;
    countdown.textContent = m + ':' + (s < 10 ? '0' : '') + s;
  }
  function poll() {
    if (done) { return; }
    fetch(url, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) {
        if (!j || done) { return; }
        remaining = j.window_remaining;
        if (j.passkey) {
          passkey.textContent = 'The phone asks for a passkey: ' + j.passkey;
          passkey.className = 'card notice';
        }
        if (j.used) { finish('Paired! The phone has sent its first command.', 'card notice'); }
        else if (remaining <= 0) { finish('The pairing window has closed.', 'card error'); }
      })
      .catch(function () {});
  }
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
