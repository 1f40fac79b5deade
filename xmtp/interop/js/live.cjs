// live.cjs is a live consumer of a bridge on the `ws` package: it connects
// to GET /v1/bridges/{id}/live with the API key as a browser would (the
// subprotocols jsonrpc and bearer.<key>), answers every `message` with a
// JSON-RPC `reply` of "live: <content>" and an `ack`, and exits after
// <count> replies were announced sent by `status` notifications.
//
// Usage: node live.cjs <wsUrl> <apiKey> <count>
// It prints one JSON line per step on stdout ({"event":"open"|"message"|
// "replied"|"status", ...}) and exits non-zero on any JSON-RPC error or
// when nothing happens within LIVE_TIMEOUT_MS (default 60000).
'use strict'

const WebSocket = require('ws')

const [url, key, countArg = '1'] = process.argv.slice(2)
const count = Number(countArg)
const timeoutMs = Number(process.env.LIVE_TIMEOUT_MS || 60000)

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function fail(msg) {
  process.stderr.write(`live.cjs: ${msg}\n`)
  process.exit(1)
}

const ws = new WebSocket(url, ['jsonrpc', 'bearer.' + key])
let seq = 0
let sent = 0
const replies = new Set()
const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs)

function call(method, params) {
  seq++
  ws.send(JSON.stringify({ jsonrpc: '2.0', id: seq, method, params }))
}

ws.on('open', () => emit({ event: 'open', protocol: ws.protocol }))
ws.on('unexpected-response', (_req, res) => fail(`upgrade refused with status ${res.statusCode}`))
ws.on('error', (e) => fail(e.message))
ws.on('close', (code, reason) => {
  if (sent < count) fail(`closed with ${code} ${reason}`)
})
ws.on('message', (data) => {
  const f = JSON.parse(data.toString())
  if (f.error) fail(`json-rpc error ${f.error.code}: ${f.error.message}`)
  if (f.method === 'message') {
    emit({ event: 'message', id: f.params.id, sender: f.params.sender, text: f.params.content })
    call('reply', { id: f.params.id, content: 'live: ' + f.params.content })
    call('ack', { id: f.params.id })
    return
  }
  if (f.result && f.result.messageId) {
    replies.add(f.result.messageId)
    emit({ event: 'replied', id: f.result.messageId })
    return
  }
  if (f.method === 'status' && replies.has(f.params.messageId)) {
    emit({ event: 'status', id: f.params.messageId, text: f.params.status })
    if (f.params.status === 'sent' && ++sent >= count) {
      clearTimeout(timer)
      ws.close(1000, 'done')
      setTimeout(() => process.exit(0), 100)
    }
  }
})
