// Hutong WeChat Pay sandbox: an emulated WeChat JS bridge.
//
// Inside WeChat, pages pay with WeixinJSBridge.invoke('getBrandWCPayRequest', params, cb) and mini
// programs with wx.requestPayment({...}). This script provides both for pages under test: it checks
// the parameters with the sandbox, shows a payment sheet (#wx-bridge-confirm, with #wx-bridge-pay
// and #wx-bridge-cancel), pays on confirm, and reports back as WeChat does. Styles are set through
// the CSSOM, which a Content-Security-Policy without 'unsafe-inline' still allows.
(function () {
  'use strict';
  var SANDBOX = __SANDBOX_ORIGIN__;
  if (window.WeixinJSBridge && window.WeixinJSBridge.hutongSandbox) return;

  var busy = false; // one payment sheet at a time, as in WeChat
  var configuredAppId = '';

  function post(path, body) {
    return fetch(SANDBOX + path, {
      method: 'POST',
      mode: 'cors',
      credentials: 'omit',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body)
    }).then(function (res) {
      return res.json().then(
        function (data) { return { ok: res.ok, status: res.status, data: data || {} }; },
        function () { return { ok: res.ok, status: res.status, data: {} }; });
    }, function (err) {
      return { ok: false, status: 0, data: { message: 'network error: ' + err } };
    });
  }

  function styled(tag, id, style, text) {
    var el = document.createElement(tag);
    if (id) el.id = id;
    for (var k in style) if (Object.prototype.hasOwnProperty.call(style, k)) el.style[k] = style[k];
    if (text != null) el.textContent = text;
    return el;
  }

  // confirmPayment shows the payment sheet and resolves true (pay) or false (cancel).
  function confirmPayment(order) {
    return new Promise(function (resolve) {
      var overlay = styled('div', 'wx-bridge-confirm', {
        position: 'fixed', left: '0', top: '0', right: '0', bottom: '0', zIndex: '2147483647',
        background: 'rgba(0,0,0,0.55)', display: 'flex', alignItems: 'flex-end', justifyContent: 'center',
        fontFamily: 'sans-serif'
      });
      overlay.setAttribute('role', 'dialog');
      overlay.setAttribute('aria-modal', 'true');
      overlay.setAttribute('aria-label', 'WeChat Pay');
      var sheet = styled('div', '', {
        background: '#fff', color: '#111', width: '100%', maxWidth: '28rem', boxSizing: 'border-box',
        borderRadius: '12px 12px 0 0', padding: '1.25rem 1.25rem 1.5rem', textAlign: 'center'
      });
      sheet.appendChild(styled('div', '', { color: '#666', fontSize: '0.9rem' }, '微信支付（沙箱）· WeChat Pay sandbox'));
      sheet.appendChild(styled('div', 'wx-bridge-description', { margin: '0.8rem 0 0.2rem' }, order.description || ''));
      sheet.appendChild(styled('div', 'wx-bridge-amount', { fontSize: '2rem', fontWeight: 'bold', margin: '0 0 1rem' },
        '¥' + (order.amount || '')));
      var pay = styled('button', 'wx-bridge-pay', {
        display: 'block', width: '100%', padding: '0.75rem', fontSize: '1.1rem', border: '0', borderRadius: '6px',
        background: '#07c160', color: '#fff', marginBottom: '0.6rem', cursor: 'pointer'
      }, '确认支付 / Pay');
      var cancel = styled('button', 'wx-bridge-cancel', {
        display: 'block', width: '100%', padding: '0.6rem', fontSize: '1rem', border: '1px solid #ccc',
        borderRadius: '6px', background: '#fff', color: '#111', cursor: 'pointer'
      }, '取消 / Cancel');
      pay.type = 'button';
      cancel.type = 'button';
      sheet.appendChild(pay);
      sheet.appendChild(cancel);
      overlay.appendChild(sheet);
      var settled = false;
      function done(yes) {
        if (settled) return;
        settled = true;
        if (overlay.parentNode) overlay.parentNode.removeChild(overlay);
        resolve(yes);
      }
      pay.addEventListener('click', function () { done(true); });
      cancel.addEventListener('click', function () { done(false); });
      (document.body || document.documentElement).appendChild(overlay);
      try { pay.focus(); } catch (e) { /* focus is a nicety */ }
    });
  }

  // pay runs one payment and resolves {result: 'ok'|'cancel'|'fail', desc}.
  function pay(p) {
    p = p || {};
    if (busy) return Promise.resolve({ result: 'fail', desc: 'another payment is in progress' });
    busy = true;
    var ts = p.timeStamp != null ? p.timeStamp : p.timestamp; // wx.chooseWXPay spells it timestamp
    var body = {
      appId: p.appId || configuredAppId, timeStamp: ts == null ? '' : String(ts), nonceStr: p.nonceStr,
      'package': p['package'], signType: p.signType, paySign: p.paySign
    };
    return post('/sandbox/wechatpay/jsapi/verify', body).then(function (v) {
      if (!v.ok) return { result: 'fail', desc: v.data.message || 'verification failed' };
      return confirmPayment(v.data).then(function (yes) {
        if (!yes) return { result: 'cancel' };
        return post('/sandbox/wechatpay/jsapi/pay', body).then(function (r) {
          return r.ok ? { result: 'ok' } : { result: 'fail', desc: r.data.message || 'payment failed' };
        });
      });
    }).then(function (r) { busy = false; return r; },
      function (e) { busy = false; return { result: 'fail', desc: String(e) }; });
  }

  function call(fn, arg) {
    if (typeof fn !== 'function') return;
    try { fn(arg); } catch (e) { setTimeout(function () { throw e; }, 0); }
  }

  window.WeixinJSBridge = {
    hutongSandbox: true,
    invoke: function (name, params, cb) {
      if (name !== 'getBrandWCPayRequest') {
        setTimeout(function () { call(cb, { err_msg: name + ':fail_not_supported_in_sandbox' }); }, 0);
        return;
      }
      pay(params).then(function (r) {
        var res = { err_msg: 'get_brand_wcpay_request:' + r.result };
        if (r.desc) res.err_desc = r.desc;
        call(cb, res);
      });
    },
    call: function () {},
    on: function () {}
  };

  // wxPay adapts a callback-style wx API (mini program wx.requestPayment, JS-SDK wx.chooseWXPay).
  // Cancelling is a failure with "fail cancel" in mini programs; a cancel callback is called if given.
  function wxPay(api, o) {
    o = o || {};
    var promise = pay(o).then(function (r) {
      var res = { errMsg: api + ':ok' };
      if (r.result === 'cancel') res = { errMsg: api + ':fail cancel' };
      if (r.result === 'fail') res = { errMsg: api + ':fail ' + (r.desc || '') };
      if (r.result === 'ok') call(o.success, res);
      else if (r.result === 'cancel' && typeof o.cancel === 'function') call(o.cancel, res);
      else call(o.fail, res);
      call(o.complete, res);
      if (r.result !== 'ok') throw res;
      return res;
    });
    if (o.success || o.fail || o.cancel || o.complete) {
      promise['catch'](function () {});
      return undefined;
    }
    return promise; // promise style, as newer base libraries allow
  }

  var wx = window.wx = window.wx || {};
  wx.requestPayment = function (o) { return wxPay('requestPayment', o); };
  wx.chooseWXPay = function (o) { return wxPay('chooseWXPay', o); };
  if (!wx.config) wx.config = function (c) { configuredAppId = (c && c.appId) || ''; };
  if (!wx.ready) wx.ready = function (fn) { setTimeout(fn, 0); };
  if (!wx.error) wx.error = function () {};

  var ev;
  try {
    ev = new Event('WeixinJSBridgeReady');
  } catch (e) {
    ev = document.createEvent('Event');
    ev.initEvent('WeixinJSBridgeReady', true, true);
  }
  document.dispatchEvent(ev);
})();
