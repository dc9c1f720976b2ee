// Hutong checkout: follows the payment, places the buyer's choice, starts the wallet, and
// returns to the merchant. The page is rendered by the server; whenever the payment changes,
// the script reloads it rather than drawing the new state itself.
(function () {
  'use strict';
  var dataEl = document.getElementById('checkout-data');
  if (!dataEl) return;
  var D = JSON.parse(dataEl.textContent);
  var S = D.status;
  var M = D.messages || {};
  var messageEl = document.getElementById('message');
  var busy = false;    // a choice is being placed: polling must not reload under it
  var leaving = false; // navigating to a wallet: nothing may reload the page any more

  function say(text) {
    if (!messageEl) return;
    messageEl.textContent = text || '';
    messageEl.hidden = !text;
  }

  function actionType(st) { return st.next_action ? st.next_action.type : ''; }

  // reload shows the payment as the server now renders it, dropping a stale ?error= message.
  function reload() {
    if (leaving) return;
    var q = new URLSearchParams(window.location.search);
    q.delete('error');
    var s = q.toString();
    window.location.replace(window.location.pathname + (s ? '?' + s : ''));
  }

  // Polling: every poll_ms while the payment is open; the page reloads when it changes.
  var pollTimer = null;
  var started = Date.now();
  function schedule(ms) {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, ms);
  }
  function poll() {
    pollTimer = null;
    fetch(D.base + '/status?lang=' + D.lang, { cache: 'no-store', credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) { if (!r.ok) throw new Error('status ' + r.status); return r.json(); })
      .then(function (st) {
        if (busy || leaving) { schedule(nextDelay()); return; }
        if (st.status !== S.status || st.state !== S.state || actionType(st) !== actionType(S)) { reload(); return; }
        schedule(nextDelay());
      })
      .catch(function () { schedule(nextDelay() * 2); });
  }
  function nextDelay() {
    // After ten minutes a buyer is probably gone: poll gently.
    return Date.now() - started > 600000 ? 5000 : (D.poll_ms || 1500);
  }

  // Choosing a method: fetch, then act on the placed order.
  function choose(provider, channel, button) {
    if (busy) return;
    busy = true;
    if (button) button.disabled = true;
    say('');
    fetch(D.base + '/choose?lang=' + D.lang, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ provider: provider, channel: channel })
    }).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    }).then(function (res) {
      busy = false;
      if (!res.ok) {
        if (button) button.disabled = false;
        var e = res.body && res.body.error;
        say(e && e.message ? e.message : M.err_unavailable);
        if (e && (e.code === 'method_chosen' || e.code === 'payment_state' || e.code === 'expired')) setTimeout(reload, 2000);
        return;
      }
      S = res.body;
      act(S, true);
    }).catch(function () {
      busy = false;
      if (button) button.disabled = false;
      say(M.err_network);
    });
  }

  // act starts what the placed order needs; fresh is true right after the buyer chose.
  function act(st, fresh) {
    var na = st.next_action;
    if (!na) { reload(); return; }
    if (na.type === 'redirect' && na.url && fresh) {
      leaving = true;
      if (pollTimer) clearTimeout(pollTimer);
      say(M.redirecting);
      window.location.assign(na.url);
    } else if (na.type === 'wechat_jsapi' && D.env === 'wechat') {
      payWeChat(na.params);
    } else {
      reload();
    }
  }

  // WeChat JSAPI: WeixinJSBridge is injected by WeChat (or, in sandbox mode, the sandbox's
  // emulation script); it may arrive after this script runs.
  var bridgeWait = null;
  function payWeChat(params) {
    function invoke() {
      if (bridgeWait) { clearTimeout(bridgeWait); bridgeWait = null; }
      window.WeixinJSBridge.invoke('getBrandWCPayRequest', params, function (res) {
        var m = (res && res.err_msg) || '';
        var button = document.getElementById('pay-wechat');
        if (button) button.disabled = false;
        if (m === 'get_brand_wcpay_request:ok') {
          // The wallet says paid; the truth comes from the gateway, which we now ask.
          say(M.confirming);
          schedule(0);
        } else if (/:cancel$/.test(m)) {
          say(M.wechat_cancel); // the Pay button stays for another try
        } else {
          say(M.wechat_fail);
        }
      });
    }
    if (window.WeixinJSBridge && window.WeixinJSBridge.invoke) { invoke(); return; }
    document.addEventListener('WeixinJSBridgeReady', invoke, { once: true });
    bridgeWait = setTimeout(function () { say(M.wechat_unavailable); }, 5000);
  }

  // Final states: count down and return to the merchant.
  function countdown() {
    var el = document.getElementById('countdown');
    if (!S.final || !S.return_url || !el) return;
    var n = D.return_delay;
    var tick = function () {
      if (n <= 0) { leaving = true; window.location.assign(S.return_url); return; }
      el.textContent = (M.returning_in || '').replace('{n}', String(n));
      n--;
      setTimeout(tick, 1000);
    };
    tick();
  }

  // Forms post with fetch; without this script they post normally and the server redirects back.
  Array.prototype.forEach.call(document.querySelectorAll('form.choose'), function (form) {
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var b = form.querySelector('button[data-provider]');
      choose(b.getAttribute('data-provider'), b.getAttribute('data-channel'), b);
    });
  });
  var jsapiButton = document.querySelector('#pay-wechat[data-action="jsapi"]');
  if (jsapiButton) {
    jsapiButton.addEventListener('click', function () {
      if (S.next_action) { jsapiButton.disabled = true; payWeChat(S.next_action.params); }
    });
  }

  if (S.final) {
    countdown();
    return;
  }
  schedule(D.poll_ms || 1500);
  document.addEventListener('visibilitychange', function () { if (!document.hidden) schedule(0); });
  if (D.returned) return;
  if (D.auto_choose) {
    // Inside a wallet's own browser there is one way to pay: start it at once.
    var b = document.getElementById(D.auto_choose.id);
    choose(D.auto_choose.provider, D.auto_choose.channel, b);
  } else if (S.state === 'pending' && actionType(S) === 'wechat_jsapi' && D.env === 'wechat') {
    payWeChat(S.next_action.params);
  }
})();
