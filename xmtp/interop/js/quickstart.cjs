// quickstart.cjs messages a bridge with xmtp-js 12.1.0 and prints its
// reply: the snippet `bridge dev` prints, and what the end-to-end tests run.
//
// Usage (from the repository root, after `npm ci --prefix xmtp/interop/js`):
//   node xmtp/interop/js/quickstart.cjs <bridgeAddress> [text] [apiUrl]
//     Messages the bridge from a throwaway identity and prints its reply.
//   node xmtp/interop/js/quickstart.cjs listen [apiUrl]
//     Something for a bridge to talk to: an identity whose wallet key is
//     kept in .data/quickstart-listen.json (mode 0600), so its address is
//     the same on every run, that prints its address and then every
//     message it receives, until stopped.
//   node xmtp/interop/js/quickstart.cjs address
//     Prints the address of that identity, alone on a line (making its key
//     when missing), for `bridge send`.
// text defaults to "hello" and apiUrl to http://127.0.0.1:5555, the local
// XMTP node of `bridge dev`. It prints one JSON line per step on stdout
// ({"event":"ready"|"sent"|"reply"|"message", ...}); a send exits non-zero
// when no reply arrives within QUICKSTART_TIMEOUT_MS (default 60000).
'use strict'

const fs = require('fs')
const path = require('path')
const { Client } = require('@xmtp/xmtp-js')
const { privateKeyToAccount, generatePrivateKey } = require('viem/accounts')

const timeoutMs = Number(process.env.QUICKSTART_TIMEOUT_MS || 60000)
const listenFile = path.join('.data', 'quickstart-listen.json')

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

// wallet is what xmtp-js signs its identity key with.
function wallet(privateKey) {
  const account = privateKeyToAccount(privateKey)
  return {
    getAddress: async () => account.address,
    signMessage: async (m) => account.signMessage({ message: typeof m === 'string' ? m : { raw: Uint8Array.from(m) } }),
  }
}

// listenKey loads the listening identity's wallet key, or makes and keeps
// one. With the same wallet, xmtp-js loads the same identity key from the
// network, so the address and its contact stay the same.
function listenKey() {
  try {
    const saved = JSON.parse(fs.readFileSync(listenFile, 'utf8'))
    if (/^0x[0-9a-f]{64}$/.test(saved.privateKey)) return saved.privateKey
    throw new Error(`${listenFile} holds no privateKey; delete it to make a new identity`)
  } catch (e) {
    if (e.code !== 'ENOENT') throw e
  }
  const privateKey = generatePrivateKey()
  fs.mkdirSync(path.dirname(listenFile), { recursive: true, mode: 0o700 })
  const address = privateKeyToAccount(privateKey).address
  fs.writeFileSync(listenFile, JSON.stringify({ address, privateKey }) + '\n', { mode: 0o600, flag: 'wx' })
  return privateKey
}

async function listen(apiUrl = 'http://127.0.0.1:5555') {
  const xmtp = await Client.create(wallet(listenKey()), { env: 'local', apiUrl, persistConversations: false })
  emit({ event: 'ready', address: xmtp.address })
  const since = new Date(Date.now() - 1000)
  const seen = new Set()
  for (;;) {
    for (const convo of await xmtp.conversations.list()) {
      for (const m of await convo.messages({ startTime: since })) {
        if (seen.has(m.id) || m.senderAddress === xmtp.address) continue
        seen.add(m.id)
        emit({
          event: 'message',
          id: m.id,
          sender: m.senderAddress,
          text: typeof m.content === 'string' ? m.content : null,
          contentType: m.contentType ? m.contentType.toString() : null,
          sentAt: m.sent.toISOString(),
        })
      }
    }
    await new Promise((r) => setTimeout(r, 300))
  }
}

async function send(bridge, text = 'hello', apiUrl = 'http://127.0.0.1:5555') {
  if (!/^0x[0-9a-fA-F]{40}$/.test(bridge || '')) {
    throw new Error('usage: node quickstart.cjs <bridgeAddress> [text] [apiUrl] | listen [apiUrl] | address')
  }
  // A throwaway identity.
  const xmtp = await Client.create(wallet(generatePrivateKey()), { env: 'local', apiUrl, persistConversations: false })
  console.log(JSON.stringify({ event: 'ready', address: xmtp.address }))

  const deadline = Date.now() + timeoutMs
  while (!(await xmtp.canMessage(bridge))) {
    if (Date.now() > deadline) throw new Error(`${bridge} is not on this XMTP network`)
    await new Promise((r) => setTimeout(r, 200))
  }
  const conversation = await xmtp.conversations.newConversation(bridge)
  const sent = await conversation.send(text)
  console.log(JSON.stringify({ event: 'sent', id: sent.id, text, topic: conversation.topic }))

  // Wait for the bridge's reply on the same conversation.
  while (Date.now() < deadline) {
    const messages = await conversation.messages({ startTime: sent.sent })
    const reply = messages.find((m) => m.senderAddress === conversation.peerAddress && m.id !== sent.id)
    if (reply) {
      console.log(JSON.stringify({ event: 'reply', id: reply.id, sender: reply.senderAddress, text: reply.content }))
      await xmtp.close()
      return
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`no reply from ${bridge} within ${timeoutMs} ms`)
}

async function main() {
  const [first, ...rest] = process.argv.slice(2)
  if (first === 'listen') return listen(...rest)
  if (first === 'address') return void process.stdout.write(privateKeyToAccount(listenKey()).address + '\n')
  return send(first, ...rest)
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`quickstart.cjs: ${e && e.message ? e.message : e}\n`)
    process.exit(1)
  }
)
